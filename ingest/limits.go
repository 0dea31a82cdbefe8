package ingest

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"
)

// Limits bounds the work one inbound message can cause. A pre-scan, one
// linear pass over the raw bytes, enforces them before enmime sees the
// message: what is within a limit is kept, what is past it is cut, and
// every cut is recorded in Mail.Cuts. Zero fields take the defaults of
// DefaultLimits. The defaults are far above real mail: header blocks are
// rarely over 64 KiB, single header fields under 16 KiB (but for the
// References of long threads), MIME parts a few hundred at most, nesting
// under 10.
type Limits struct {
	// HeaderBytes is the most bytes of the top-level header block kept,
	// counting each field as it is after the cuts below. Fields past it
	// are dropped, except the first of each field the desk reads (From,
	// To, Subject, Content-Type, Auto-Submitted, List-Id, ...). A MIME
	// part whose header is larger is dropped. It also bounds how much of
	// a delivery status report (message/delivery-status) is read: the
	// groups past it are not read, and the cut is noted. Defaults to
	// 256 KiB.
	HeaderBytes int
	// FieldBytes is the most bytes of one header field's unfolded value;
	// a longer value is cut at a character boundary (an address or
	// Message-ID list after its last whole entry). Defaults to 64 KiB.
	FieldBytes int
	// References is how many entries of References are kept, the first
	// ones, and apart from them how many of In-Reply-To. Defaults to 100.
	References int
	// Addresses is how many addresses are kept of To, of Cc, of Reply-To,
	// of each forwarding header (Delivered-To, X-Original-To, ...) and of
	// the failed recipients of a bounce, the first ones. It is also how
	// many per-recipient groups of a delivery status report are read:
	// the groups past it are not read, and the cut is noted. Defaults to
	// 100.
	Addresses int
	// Received is how many Received fields, the topmost (newest hops),
	// are read for their "for <address>" clause (routing mail of an
	// intake mailbox), the first 2 KiB of each. Defaults to 30.
	Received int
	// Parts is how many MIME parts (at any depth) are read; the message
	// is cut before the delimiter of the next part and its open
	// multiparts closed. Defaults to 500.
	Parts int
	// PartFields is the most fields of one MIME part header, counting
	// every line that does not start with white space (malformed lines
	// too: enmime notes each). A part whose header has more is dropped
	// whole, up to its next delimiter, and the drop noted: real part
	// headers have under 10 fields, and each field costs enmime about
	// 100 bytes, so 500 parts of 60,000 empty fields would cost 3 GB.
	// Defaults to 100.
	PartFields int
	// Depth is how deep multiparts may nest, the top-level multipart
	// being 1; a multipart part that would nest deeper is dropped with
	// everything inside it. Defaults to 20.
	Depth int
	// NestedBytes bounds the bytes of the body times the multiparts
	// around them: enmime reads every byte once per enclosing multipart
	// (about 10 ns a time), so 20 MB nested 19 deep costs as much as
	// 380 MB flat. Past it the message is cut at that line and its open
	// multiparts closed. Defaults to 64 MiB: a 25 MB message nested 2
	// deep (a signed mail with an attachment), under 1 s of CPU.
	NestedBytes int
	// SubjectBytes is the most bytes of the decoded subject, cut at a
	// character boundary. Defaults to 998 (the line limit of RFC 5322).
	SubjectBytes int
	// Deadline is the wall-clock time one parse may take: a backstop, as
	// the limits above already bound the work (BenchmarkHostile: about 1 s
	// at the most on an idle core). The pre-scan checks it every few
	// thousand lines and the parse before each of its steps (pre-scan,
	// header decoding, MIME parse, parts); past it the parse stops with
	// ErrParseDeadline. enmime itself cannot be interrupted. Wall-clock
	// time depends on the machine's load (a 24 MB mail took over 5 s on
	// two cores shared by the whole test suite), so the default leaves
	// room. Defaults to 30s.
	Deadline time.Duration
}

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits {
	return Limits{
		HeaderBytes:  256 << 10,
		FieldBytes:   64 << 10,
		References:   100,
		Addresses:    100,
		Received:     30,
		Parts:        500,
		PartFields:   100,
		Depth:        20,
		NestedBytes:  64 << 20,
		SubjectBytes: 998,
		Deadline:     30 * time.Second,
	}
}

// WithDefaults fills the zero fields of l from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	return Limits{
		HeaderBytes:  cmp.Or(l.HeaderBytes, d.HeaderBytes),
		FieldBytes:   cmp.Or(l.FieldBytes, d.FieldBytes),
		References:   cmp.Or(l.References, d.References),
		Addresses:    cmp.Or(l.Addresses, d.Addresses),
		Received:     cmp.Or(l.Received, d.Received),
		Parts:        cmp.Or(l.Parts, d.Parts),
		PartFields:   cmp.Or(l.PartFields, d.PartFields),
		Depth:        cmp.Or(l.Depth, d.Depth),
		NestedBytes:  cmp.Or(l.NestedBytes, d.NestedBytes),
		SubjectBytes: cmp.Or(l.SubjectBytes, d.SubjectBytes),
		Deadline:     cmp.Or(l.Deadline, d.Deadline),
	}
}

// ErrParseDeadline is returned (wrapped) by ParseContext when a parse runs
// past Limits.Deadline. The machine's load may be to blame as much as the
// mail: jobs tries such a message once more, then dead-letters it.
var ErrParseDeadline = errors.New("parse exceeded its deadline")

// maxCuts and maxCutBytes bound Mail.Cuts: at most 20 notes of at most
// 2 KiB in all, so that the ledger reason they go into stays a line.
const (
	maxCuts     = 20
	maxCutBytes = 2 << 10
)

func (m *Mail) cut(format string, args ...any) {
	if len(m.Cuts) >= maxCuts {
		return
	}
	note := fmt.Sprintf(format, args...)
	used := 0
	for _, c := range m.Cuts {
		used += len(c)
	}
	if used+len(note) > maxCutBytes {
		return
	}
	m.Cuts = append(m.Cuts, note)
}

// maxNoteName is how much of a header name a note quotes.
const maxNoteName = 40

// noteName is a header name as a cut note or warning quotes it.
func noteName(name string) string {
	name = strings.ToValidUTF8(name, "?")
	if len(name) <= maxNoteName {
		return name
	}
	return name[:maxNoteName] + "…"
}

// checkEvery is how many lines the pre-scan reads between two looks at
// the context and the deadline.
const checkEvery = 4096

// prescan is one bounded, linear pass over a raw message.
type prescan struct {
	lim   Limits
	m     *Mail
	check func(step string) error // context and deadline
	lines int
	// subjectSize is the unfolded size of the raw Subject when it was
	// cut to FieldBytes (the note is written with the decoded subject).
	subjectSize int
}

func (s *prescan) tick() error {
	s.lines++
	if s.lines%checkEvery == 0 {
		return s.check("pre-scan")
	}
	return nil
}

// listKind is how a field's entries are counted and cut.
type listKind int

const (
	listNone listKind = iota
	listIDs
	listAddrs
)

func kindOf(name string) listKind {
	switch name {
	case "References", "In-Reply-To":
		return listIDs
	case "To", "Cc", "Reply-To", "X-Failed-Recipients":
		return listAddrs
	}
	for _, f := range forwardHeaders {
		if name == f {
			return listAddrs
		}
	}
	return listNone
}

// listKinds is kindOf as a map, for lookups by a []byte name.
var listKinds = func() map[string]listKind {
	m := map[string]listKind{}
	for _, name := range listFields {
		m[name] = kindOf(name)
	}
	return m
}()

// listFields are the fields whose entries are counted, in the order
// their cuts are noted.
var listFields = append([]string{"References", "In-Reply-To", "To", "Cc", "Reply-To", "X-Failed-Recipients"}, forwardHeaders...)

// readFields are the fields the desk reads: past HeaderBytes the first of
// each is still kept.
var readFields = map[string]bool{
	"From": true, "To": true, "Cc": true, "Reply-To": true, "Sender": true, "Subject": true,
	"Date": true, "Message-Id": true, "In-Reply-To": true, "References": true,
	"Mime-Version": true, "Content-Type": true, "Content-Transfer-Encoding": true,
	"Content-Disposition": true, "Auto-Submitted": true, "X-Autoreply": true,
	"X-Autorespond": true, "X-Autoresponse": true, "X-Auto-Reply-From": true,
	"Precedence": true, "X-Loop": true, "X-Ms-Exchange-Inbox-Rules-Loop": true,
	"List-Id": true, "List-Unsubscribe": true, "Return-Path": true,
	"X-Auto-Response-Suppress": true, "X-Failed-Recipients": true,
	"Delivered-To": true, "X-Delivered-To": true, "X-Original-To": true,
	"X-Forwarded-To": true, "Envelope-To": true, "X-Envelope-To": true,
	VerificationHeader: true,
	// Routing mail of an intake mailbox (RecipientHeaders).
	"Received": true, "X-Forwarded-For": true,
	"X-Ms-Exchange-Forwardingloop": true,
}

// rawField is a header field as read: the raw byte ranges of its lines
// (line endings included; more than one range only when a dropped line
// sits between its lines) and the size of its unfolded value. The
// pre-scan reuses one rawField for every field line; name is set only
// for a field that is kept or counted.
type rawField struct {
	key   []byte // canonical name
	name  string // canonical, once needed
	spans [][2]int
	size  int
}

// maxSpans bounds the ranges of one field: a continuation line after more
// dropped lines than this is dropped too.
const maxSpans = 64

// maxNameBytes is the longest header name read: RFC 5322 recommends lines
// of at most 78 characters, so a longer name is no header field but a
// malformed line.
const maxNameBytes = 76

func (f *rawField) rawSize() int {
	n := 0
	for _, sp := range f.spans {
		n += sp[1] - sp[0]
	}
	return n
}

// chunks calls fn with the unfolded value of f piece by piece: the first
// line after the colon and leading blanks, then each continuation line
// without its line ending. fn returns false to stop.
func (f *rawField) chunks(raw []byte, fn func([]byte) bool) {
	first := true
	for _, sp := range f.spans {
		rest := raw[sp[0]:sp[1]]
		for len(rest) > 0 {
			line := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				line, rest = rest[:i+1], rest[i+1:]
			} else {
				rest = nil
			}
			content := bytes.TrimRight(line, "\r\n")
			if first {
				_, v, _ := bytes.Cut(content, []byte(":"))
				content = bytes.TrimLeft(v, " \t")
				first = false
			}
			if !fn(content) {
				return
			}
		}
	}
}

// value returns the first n bytes of f's unfolded value.
func (f *rawField) value(raw []byte, n int) []byte {
	out := make([]byte, 0, min(n, f.size))
	f.chunks(raw, func(c []byte) bool {
		out = append(out, c[:min(len(c), n-len(out))]...)
		return len(out) < n
	})
	return out
}

// headerScan is the top-level header block after the pre-scan.
type headerScan struct {
	fields []field // kept, cut values
	body   []byte  // raw bytes after the header block
	block  []byte  // the kept header block, blank line included, for enmime
	none   bool    // the message has no header block: all of it is body
}

// listCount tracks one kind of list field across its fields.
type listCount struct {
	kept, total int
}

// headerKeep is what scanHeader has kept so far.
type headerKeep struct {
	block    bytes.Buffer
	fields   []field
	keptRead map[string]bool
	counts   map[string]*listCount
	over     bool // past HeaderBytes
	dropped  int  // fields dropped past HeaderBytes
	droppedB int
}

// count is the list count of the field named key.
func (k *headerKeep) count(key []byte) *listCount {
	c := k.counts[string(key)]
	if c == nil {
		c = &listCount{}
		k.counts[string(key)] = c
	}
	return c
}

// fieldName reports whether content starts a header field and returns its
// name: 1 to maxNameBytes printable ASCII characters but the colon, then a
// colon. long reports a name that is too long.
func fieldName(content []byte) (name []byte, long bool) {
	for i, c := range content {
		switch {
		case c == ':':
			if i == 0 {
				return nil, false
			}
			return content[:i], false
		case c < '!' || c > '~':
			return nil, false
		case i >= maxNameBytes:
			return nil, true
		}
	}
	return nil, false
}

// canonicalKey writes the canonical form of a header name to dst, as
// textproto.CanonicalMIMEHeaderKey would give it, without allocating.
func canonicalKey(dst, name []byte) []byte {
	dst = append(dst[:0], name...)
	for _, c := range dst {
		if !isTokenByte(c) {
			return dst // returned as it is, like textproto
		}
	}
	upper := true
	for i, c := range dst {
		switch {
		case upper && 'a' <= c && c <= 'z':
			dst[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			dst[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return dst
}

func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// scanHeader reads the top-level header block leniently and within the
// limits, in one pass that holds one field at a time: past HeaderBytes a
// field is only counted, unless it is the first of a field the desk
// reads. A leading mbox "From " line, continuation lines before any
// field, lines that are not fields and names over maxNameBytes are
// dropped with a warning.
func (s *prescan) scanHeader(raw []byte) (headerScan, error) {
	var (
		cur       rawField
		have      bool // cur holds a field
		first     = true
		pos       = 0
		hdrBytes  = 0
		k         = headerKeep{keptRead: map[string]bool{}, counts: map[string]*listCount{}}
		longNames int
	)
	for pos < len(raw) {
		if err := s.tick(); err != nil {
			return headerScan{}, err
		}
		end := len(raw)
		if i := bytes.IndexByte(raw[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := raw[pos:end]
		content := bytes.TrimRight(line, "\r\n")
		start := pos
		pos = end
		hdrBytes += len(line)
		if len(content) == 0 {
			break
		}
		if first && bytes.HasPrefix(content, []byte("From ")) {
			s.m.warn("dropped mbox From_ line")
			first = false
			continue
		}
		if content[0] == ' ' || content[0] == '\t' {
			first = false
			switch last := len(cur.spans) - 1; {
			case !have:
				s.m.warn("dropped continuation line before any header")
			case cur.spans[last][1] == start:
				cur.spans[last][1] = end
				cur.size += len(content)
			case len(cur.spans) < maxSpans:
				cur.spans = append(cur.spans, [2]int{start, end})
				cur.size += len(content)
			default:
				s.m.warn("dropped continuation line of %s past %d dropped lines", noteName(string(cur.key)), maxSpans)
			}
			continue
		}
		name, long := fieldName(content)
		if name == nil {
			if first && !have && !long {
				s.m.warn("message has no header block")
				// An empty header for enmime, lest it read the body as one.
				return headerScan{body: raw, block: []byte("\r\n"), none: true}, nil
			}
			first = false
			if long {
				longNames++
				s.m.warn("dropped header line with a name over %d bytes: %q", maxNameBytes, truncate(string(content), 40))
			} else {
				s.m.warn("dropped malformed header line %q", truncate(string(content), 40))
			}
			continue
		}
		first = false
		if have {
			s.keepField(raw, &cur, &k)
		}
		have = true
		cur.key = canonicalKey(cur.key, name)
		cur.name = ""
		cur.spans = append(cur.spans[:0], [2]int{start, end})
		cur.size = len(bytes.TrimLeft(content[len(name)+1:], " \t"))
	}
	if have {
		s.keepField(raw, &cur, &k)
	}
	for _, name := range listFields {
		if c := k.counts[name]; c != nil && c.kept < c.total {
			what := "addresses"
			if kindOf(name) == listIDs {
				what = "entries"
			}
			s.m.cut("%s: kept %d of %d %s", name, c.kept, c.total, what)
		}
	}
	if longNames > 0 {
		s.m.cut("header block: dropped %d lines whose name is over %d bytes", longNames, maxNameBytes)
	}
	if k.dropped > 0 {
		s.m.cut("header block: kept %d of %d bytes, dropped %d fields (%d bytes) past %d bytes",
			k.block.Len(), hdrBytes, k.dropped, k.droppedB, s.lim.HeaderBytes)
	}
	k.block.WriteString("\r\n") // the blank line as enmime reads it, whatever it was
	return headerScan{fields: k.fields, body: raw[pos:], block: k.block.Bytes()}, nil
}

// keepField applies the limits to one field read and keeps it or counts
// it as dropped.
func (s *prescan) keepField(raw []byte, f *rawField, k *headerKeep) {
	if k.over && (!readFields[string(f.key)] || k.keptRead[string(f.key)]) {
		// Past HeaderBytes: counted only, without a copy.
		if kind := listKinds[string(f.key)]; kind != listNone {
			total, _, _, _ := countEntries(raw, f, kind, 0, 0)
			k.count(f.key).total += total
		}
		k.dropped++
		k.droppedB += f.rawSize()
		return
	}
	f.name = string(f.key)
	value, line, cut := s.cutField(raw, f, k.counts)
	if line == nil && cut { // nothing of it is kept
		return
	}
	size := len(line)
	if !cut {
		size = f.rawSize()
	}
	if k.over || k.block.Len()+size > s.lim.HeaderBytes {
		k.over = true
		if !readFields[f.name] || k.keptRead[f.name] {
			k.dropped++
			k.droppedB += size
			return
		}
	}
	k.keptRead[f.name] = true
	if cut {
		k.block.Write(line)
	} else {
		for _, sp := range f.spans {
			k.block.Write(raw[sp[0]:sp[1]])
		}
		if !bytes.HasSuffix(k.block.Bytes(), []byte("\n")) {
			k.block.WriteString("\r\n")
		}
	}
	k.fields = append(k.fields, field{name: f.name, value: value})
}

// cutField applies the list and size limits to one field. It returns the
// field's (possibly cut) unfolded value, the header line to write in
// place of the raw lines when it was cut, and whether it was cut. A field
// cut to nothing returns a nil line and cut true.
func (s *prescan) cutField(raw []byte, f *rawField, counts map[string]*listCount) (value, line []byte, cut bool) {
	keep := f.size
	suffix := ""
	if kind := kindOf(f.name); kind != listNone {
		limit := s.lim.Addresses
		if kind == listIDs {
			limit = s.lim.References
		}
		c := counts[f.name]
		if c == nil {
			c = &listCount{}
			counts[f.name] = c
		}
		total, kept, end, group := countEntries(raw, f, kind, max(limit-c.kept, 0), s.lim.FieldBytes)
		c.total += total
		c.kept += kept
		if kept < total {
			if kept == 0 {
				return nil, nil, true
			}
			keep = end
			if group {
				suffix = ";"
			}
		}
	}
	if keep > s.lim.FieldBytes {
		keep = s.lim.FieldBytes
		if f.name == "Subject" {
			s.subjectSize = f.size
		} else {
			defer func() { s.m.cut("%s: kept %d of %d bytes", noteName(f.name), len(value), f.size) }()
		}
	}
	if keep == f.size {
		return f.value(raw, keep), nil, false
	}
	value = f.value(raw, keep)
	if i := lastRuneStart(value); i < len(value) && !utf8.FullRune(value[i:]) {
		value = value[:i] // do not split a character
	}
	value = append(value, suffix...)
	line = make([]byte, 0, len(f.name)+len(value)+4)
	line = append(append(append(append(line, f.name...), ": "...), value...), "\r\n"...)
	return value, line, true
}

func lastRuneStart(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return len(b)
}

// countEntries counts the entries of a list field in one pass: Message-IDs
// as messageIDs reads them (bracketed ids, else bare tokens with an @),
// addresses as the top-level comma-separated items of an address list. It
// returns the total, how many are kept (at most limit, each ending within
// maxBytes of the unfolded value), where the kept ones end, and whether
// that end is inside an address group (which then needs its ";").
func countEntries(raw []byte, f *rawField, kind listKind, limit, maxBytes int) (total, kept, end int, group bool) {
	var (
		off int
		// Message-IDs
		bracketStart           = -1 // offset of an open '<', -1 if none
		brTotal, brKept, brEnd int
		tokStart               = -1
		tokAt                  bool
		tkTotal, tkKept, tkEnd int
		// addresses
		inQuote, escaped, angle bool
		comment                 int
		inGroup                 bool
		item                    bool // the current item has content
	)
	keepID := func(n *int, k *int, e *int, at int) {
		*n++
		if *k < limit && at <= maxBytes {
			*k++
			*e = at
		}
	}
	endItem := func(at int) {
		if item {
			total++
			if kept < limit && at <= maxBytes {
				kept++
				end = at
				group = inGroup
			}
		}
		item = false
	}
	f.chunks(raw, func(c []byte) bool {
		for i, b := range c {
			at := off + i
			if kind == listIDs {
				switch {
				case b == '<':
					bracketStart = at
				case b == '>':
					if bracketStart >= 0 && at > bracketStart+1 {
						keepID(&brTotal, &brKept, &brEnd, at+1)
					}
					bracketStart = -1
				case b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == '\v' || b == '\f':
					bracketStart = -1
				}
				if b == ',' || b == ' ' || b == '\t' {
					if tokStart >= 0 && tokAt {
						keepID(&tkTotal, &tkKept, &tkEnd, at)
					}
					tokStart, tokAt = -1, false
				} else {
					if tokStart < 0 {
						tokStart = at
					}
					tokAt = tokAt || b == '@'
				}
				continue
			}
			switch {
			case escaped:
				escaped = false
			case b == '\\' && (inQuote || comment > 0):
				escaped = true
			case inQuote:
				inQuote = b != '"'
			case comment > 0:
				if b == '(' {
					comment++
				} else if b == ')' {
					comment--
				}
			case b == '"':
				inQuote, item = true, true
			case b == '(':
				comment++
			case angle:
				angle = b != '>'
			case b == '<':
				angle, item = true, true
			case b == ',':
				endItem(at)
			case b == ':' && !inGroup:
				item = false // a group's display name is not an address
				inGroup = true
			case b == ';' && inGroup:
				endItem(at)
				inGroup = false
			case b != ' ' && b != '\t':
				item = true
			}
		}
		off += len(c)
		return true
	})
	if kind == listIDs {
		if tokStart >= 0 && tokAt {
			keepID(&tkTotal, &tkKept, &tkEnd, off)
		}
		if brTotal > 0 {
			return brTotal, brKept, brEnd, false
		}
		return tkTotal, tkKept, tkEnd, false
	}
	endItem(off)
	return total, kept, end, group
}

// openBoundary is a multipart boundary that may be open for enmime.
type openBoundary struct {
	delim []byte // "--" + boundary
	term  []byte // "--" + boundary + "--"
	depth int    // the deepest the multiparts with this boundary may nest
}

// scanBody bounds the MIME structure of the body: at most Parts parts,
// multiparts nested at most Depth deep, part headers at most HeaderBytes
// and PartFields fields, at most NestedBytes of work.
//
// It never counts fewer parts than enmime reads, whatever the bytes:
// enmime (boundary.go) starts a part at any line in which the first
// "--boundary" is followed by white space and "--boundary--" does not
// occur, wherever in the line, and it finds those lines after any
// carriage return or line feed, not only at a line start. So the pre-scan
// counts every line holding "--boundary" and white space for any boundary
// that may be open, reads what follows as a part header, and closes a
// multipart only where enmime surely does: at a line that starts with its
// "--boundary--". Part headers are read as enmime reads them
// (enmime.ReadHeader), every Content-Type of them. The body comes back as
// it is when nothing was cut.
func (s *prescan) scanBody(body []byte, tops []string) ([]byte, error) {
	const (
		inContent = iota
		inHeader
		skipping // a dropped part, until the next delimiter line
	)
	var (
		open       []openBoundary
		maxDepth   int // of open
		out        [][2]int
		parts      int
		tooDeep    int
		bigHeaders int
		manyFields int  // parts dropped past PartFields
		hdrFields  int  // fields of the part header being read
		cutAt      = -1 // where the part count or NestedBytes ran out
		overWork   bool // NestedBytes ran out
		work       int  // bytes times their depth, so far
		dropMore   int  // parts seen after cutAt
		mode       = inContent
		partStart  int  // start of the delimiter line of the part whose header is read
		hdrStart   int  // start of its header lines
		hdrDepth   int  // the deepest multipart its delimiter lines may belong to
		boundaryIn bool // its header mentions a boundary
		done       bool // the top-level multipart is closed: the rest is its epilogue
		pos        int
	)
	emit := func(a, b int) {
		if a >= b {
			return
		}
		if n := len(out); n > 0 && out[n-1][1] == a {
			out[n-1][1] = b
			return
		}
		out = append(out, [2]int{a, b})
	}
	setMax := func() {
		maxDepth = 0
		for _, o := range open {
			maxDepth = max(maxDepth, o.depth)
		}
	}
	// add opens the multiparts in bs at depth; false if they would be
	// too deep or too many.
	add := func(bs []string, depth int) bool {
		if depth > s.lim.Depth {
			return false
		}
		n := len(open)
	next:
		for _, b := range bs {
			for i := range open {
				if string(open[i].delim[2:]) == b {
					open[i].depth = max(open[i].depth, depth)
					continue next
				}
			}
			if len(open) >= s.lim.Depth {
				open = open[:n]
				return false
			}
			open = append(open, openBoundary{delim: []byte("--" + b), term: []byte("--" + b + "--"), depth: depth})
		}
		setMax()
		return true
	}
	add(tops, 1)
	// delimiter reports whether enmime may start a part at line, and the
	// deepest open multipart whose part it may be.
	delimiter := func(line []byte) (bool, int) {
		if !bytes.Contains(line, []byte("--")) {
			return false, 0
		}
		found, depth := false, 0
		for _, o := range open {
			if isDelimiterLine(line, o.delim, o.term) {
				found, depth = true, max(depth, o.depth)
			}
		}
		return found, depth
	}
	// closes removes the multiparts that line surely closes: it starts
	// with their "--boundary--". It reports whether the top-level
	// multipart, always open for enmime, is among them.
	closes := func(line []byte) (top bool) {
		if !bytes.HasPrefix(line, []byte("--")) {
			return false
		}
		kept := open[:0]
		for _, o := range open {
			if bytes.HasPrefix(line, o.term) {
				top = top || isTop(o.delim, tops)
				continue
			}
			kept = append(kept, o)
		}
		open = kept
		setMax()
		return top
	}
	for pos < len(body) && !done {
		if err := s.tick(); err != nil {
			return nil, err
		}
		start := pos
		end := len(body)
		if i := bytes.IndexByte(body[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := body[start:end]
		pos = end

		isDelim, depth := delimiter(line)
		if cutAt >= 0 { // counting what is dropped
			if isDelim {
				dropMore++
			} else if startsTopTerm(line, tops) {
				break
			}
			continue
		}
		if isDelim {
			parts++
			if parts > s.lim.Parts {
				cutAt, dropMore = start, 1
				if mode == inHeader {
					cutAt = partStart
				}
				continue
			}
		}
		switch mode {
		case inContent, skipping:
			if isDelim {
				// A new part; a line that is also a terminator closes
				// nothing here, to be safe.
				mode, partStart, hdrStart, hdrDepth, boundaryIn, hdrFields = inHeader, start, end, depth, false, 0
				continue
			}
			if bytes.HasPrefix(line, []byte("--")) && hasTerm(line, open) {
				if closes(line) {
					emit(start, len(body)) // the epilogue is kept as it is
					done = true
					continue
				}
				emit(start, end)
				mode = inContent
				continue
			}
			if mode == skipping {
				continue
			}
			if work += len(line) * maxDepth; work > s.lim.NestedBytes {
				cutAt, overWork = start, true
				continue
			}
			emit(start, end)
		case inHeader:
			if string(line) == "\r\n" || string(line) == "\n" {
				// The header is complete: what it declares opens.
				if boundaryIn {
					bs := partBoundaries(body[hdrStart:end])
					if len(bs) > 0 && !add(bs, hdrDepth+1) {
						tooDeep++
						mode = skipping
						continue
					}
				}
				emit(partStart, end)
				mode = inContent
				continue
			}
			if isDelim {
				// enmime may start the part here as well as at the line
				// that began the header: one header read both ways.
				hdrDepth = max(hdrDepth, depth)
			} else if startsTopTerm(line, tops) {
				emit(partStart, len(body)) // enmime is done here
				done = true
				continue
			}
			if work += len(line) * maxDepth; work > s.lim.NestedBytes {
				cutAt, overWork = partStart, true
				continue
			}
			if end-hdrStart > s.lim.HeaderBytes {
				bigHeaders++
				mode = skipping
				continue
			}
			if line[0] != ' ' && line[0] != '\t' {
				if hdrFields++; hdrFields > s.lim.PartFields {
					manyFields++
					mode = skipping
					continue
				}
			}
			boundaryIn = boundaryIn || containsFold(line, "boundary")
		}
	}
	if mode == inHeader && cutAt < 0 && !done {
		emit(partStart, len(body)) // a header without its blank line: a leaf
	}
	if tooDeep > 0 {
		s.m.cut("MIME: dropped %d multipart parts nested deeper than %d levels", tooDeep, s.lim.Depth)
	}
	if bigHeaders > 0 {
		s.m.cut("MIME: dropped %d parts whose header is over %d bytes", bigHeaders, s.lim.HeaderBytes)
	}
	if manyFields > 0 {
		s.m.cut("MIME: dropped %d parts whose header has over %d fields", manyFields, s.lim.PartFields)
	}
	switch {
	case overWork:
		s.m.cut("MIME: cut at byte %d of %d of the body: over %d bytes x nesting depth", cutAt, len(body), s.lim.NestedBytes)
	case cutAt >= 0:
		s.m.cut("MIME: kept %d of at least %d parts", s.lim.Parts, s.lim.Parts+dropMore)
	}
	if len(out) == 1 && out[0] == [2]int{0, len(body)} && cutAt < 0 {
		return body, nil
	}
	var b bytes.Buffer
	for _, r := range out {
		b.Write(body[r[0]:r[1]])
	}
	if cutAt >= 0 {
		if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
			b.WriteString("\r\n")
		}
		// Close the open multiparts, deepest first, with lines that start
		// no part.
		slices.SortStableFunc(open, func(a, b openBoundary) int { return b.depth - a.depth })
		for _, o := range open {
			line := append(append([]byte(nil), o.term...), "\r\n"...)
			if ok, _ := delimiter(line); !ok {
				b.Write(line)
			}
		}
	}
	return b.Bytes(), nil
}

// isDelimiterLine reports whether enmime may read line as a delimiter of
// the boundary: "--boundary" somewhere followed by white space (as
// unicode.IsSpace sees a byte), and no "--boundary--" anywhere.
func isDelimiterLine(line, delim, term []byte) bool {
	for rest := line; ; {
		i := bytes.Index(rest, delim)
		if i < 0 {
			return false
		}
		rest = rest[i+len(delim):]
		if len(rest) > 0 && unicode.IsSpace(rune(rest[0])) {
			return !bytes.Contains(line, term)
		}
	}
}

func hasTerm(line []byte, open []openBoundary) bool {
	for _, o := range open {
		if bytes.HasPrefix(line, o.term) {
			return true
		}
	}
	return false
}

func isTop(delim []byte, tops []string) bool {
	for _, t := range tops {
		if string(delim[2:]) == t {
			return true
		}
	}
	return false
}

// startsTopTerm reports whether line closes the top-level multipart.
func startsTopTerm(line []byte, tops []string) bool {
	for _, t := range tops {
		if len(line) >= len(t)+4 && string(line[:2]) == "--" && string(line[2:2+len(t)]) == t && string(line[2+len(t):4+len(t)]) == "--" {
			return true
		}
	}
	return false
}

func containsFold(b []byte, word string) bool {
	for i := 0; i+len(word) <= len(b); i++ {
		j := bytes.IndexAny(b[i:], word[:1]+strings.ToUpper(word[:1]))
		if j < 0 {
			return false
		}
		i += j
		if i+len(word) <= len(b) && strings.EqualFold(string(b[i:i+len(word)]), word) {
			return true
		}
	}
	return false
}

// partBoundaries reads a part header as enmime reads it and returns the
// boundary of every Content-Type in it that enmime would read as a
// multipart: with a boundary, and not text/plain or text/html. (enmime
// takes the first Content-Type; any may be the first for the part enmime
// finds, see scanBody.)
func partBoundaries(hdr []byte) []string {
	h, _ := enmime.ReadHeader(bufio.NewReader(bytes.NewReader(hdr)), discardErrors{})
	var out []string
	for k, vs := range h {
		if !strings.EqualFold(strings.TrimSpace(k), "Content-Type") {
			continue
		}
		for _, v := range vs {
			mtype, params, _, err := mediatype.ParseWithOptions(v, mediatype.ParseOptions{})
			if err != nil || params["boundary"] == "" || mtype == "text/plain" || mtype == "text/html" {
				continue
			}
			out = append(out, params["boundary"])
		}
	}
	return out
}

// topBoundaries is the boundary of the top-level header when enmime reads
// the body as multipart: the kept header block read as enmime reads it
// (enmime.ReadHeader), its first Content-Type a multipart/ type with a
// boundary (detectMultipartMessage). It returns no or one boundary.
func topBoundaries(block []byte) []string {
	h, _ := enmime.ReadHeader(bufio.NewReader(bytes.NewReader(block)), discardErrors{})
	mtype, params, _, err := mediatype.ParseWithOptions(h.Get("Content-Type"), mediatype.ParseOptions{})
	if err != nil || params["boundary"] == "" || !strings.HasPrefix(mtype, "multipart/") {
		return nil
	}
	return []string{params["boundary"]}
}

// discardErrors is an enmime.ErrorCollector that keeps nothing.
type discardErrors struct{}

func (discardErrors) AddError(string, string, ...any)   {}
func (discardErrors) AddWarning(string, string, ...any) {}
