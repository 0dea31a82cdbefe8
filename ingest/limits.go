package ingest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"

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
	// part whose header is larger is dropped. Defaults to 256 KiB.
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
	// the failed recipients of a bounce, the first ones. Defaults to 100.
	Addresses int
	// Parts is how many MIME parts (at any depth) are read; the message
	// is cut before the delimiter of the next part and its open
	// multiparts closed. Defaults to 500.
	Parts int
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
	// Deadline is the wall-clock time one parse may take. The pre-scan
	// checks it every few thousand lines and the parse before each of its
	// steps (pre-scan, header decoding, MIME parse, parts); past it the
	// parse stops with ErrParseDeadline, a permanent failure. enmime
	// itself cannot be interrupted: the pre-scan bounds its input so that
	// it cannot run long (see BenchmarkHostile). Defaults to 5s.
	Deadline time.Duration
}

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits {
	return Limits{
		HeaderBytes:  256 << 10,
		FieldBytes:   64 << 10,
		References:   100,
		Addresses:    100,
		Parts:        500,
		Depth:        20,
		NestedBytes:  64 << 20,
		SubjectBytes: 998,
		Deadline:     5 * time.Second,
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
		Parts:        cmp.Or(l.Parts, d.Parts),
		Depth:        cmp.Or(l.Depth, d.Depth),
		NestedBytes:  cmp.Or(l.NestedBytes, d.NestedBytes),
		SubjectBytes: cmp.Or(l.SubjectBytes, d.SubjectBytes),
		Deadline:     cmp.Or(l.Deadline, d.Deadline),
	}
}

// ErrParseDeadline is returned (wrapped) by ParseContext when a parse runs
// past Limits.Deadline. It is permanent: the same bytes would take as
// long again.
var ErrParseDeadline = errors.New("parse exceeded its deadline")

// maxCuts bounds Mail.Cuts.
const maxCuts = 20

func (m *Mail) cut(format string, args ...any) {
	if len(m.Cuts) < maxCuts {
		m.Cuts = append(m.Cuts, fmt.Sprintf(format, args...))
	}
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
}

// rawField is a header field as read: the raw byte ranges of its lines
// (line endings included; more than one range only when a dropped line
// sits between its lines) and the size of its unfolded value.
type rawField struct {
	name  string // canonical
	spans [][2]int
	size  int
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

// scanHeader reads the top-level header block leniently and within the
// limits. A leading mbox "From " line, continuation lines before any
// field and lines that are not fields are dropped with a warning.
func (s *prescan) scanHeader(raw []byte) (headerScan, error) {
	var (
		h         headerScan
		fields    []rawField
		first     = true
		pos       = 0
		hdrBytes  = 0
		blankLine = []byte("\r\n")
	)
	for pos < len(raw) {
		if err := s.tick(); err != nil {
			return h, err
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
			blankLine = line
			break
		}
		switch {
		case first && bytes.HasPrefix(content, []byte("From ")):
			s.m.warn("dropped mbox From_ line")
		case content[0] == ' ' || content[0] == '\t':
			if len(fields) == 0 {
				s.m.warn("dropped continuation line before any header")
				break
			}
			f := &fields[len(fields)-1]
			if last := &f.spans[len(f.spans)-1]; last[1] == start {
				last[1] = end
			} else {
				f.spans = append(f.spans, [2]int{start, end})
			}
			f.size += len(content)
		case headerName.Match(content):
			name, value, _ := bytes.Cut(content, []byte(":"))
			fields = append(fields, rawField{
				name:  textproto.CanonicalMIMEHeaderKey(string(name)),
				spans: [][2]int{{start, end}},
				size:  len(bytes.TrimLeft(value, " \t")),
			})
		default:
			if len(fields) == 0 && first {
				s.m.warn("message has no header block")
				return headerScan{body: raw, none: true}, nil
			}
			s.m.warn("dropped malformed header line %q", truncate(string(content), 40))
		}
		first = false
	}
	h.body = raw[pos:]

	var (
		block    bytes.Buffer
		dropped  int
		droppedB int
		keptRead = map[string]bool{}
		counts   = map[string]*listCount{}
		over     bool
	)
	for i := range fields {
		f := &fields[i]
		value, line, cut := s.cutField(raw, f, counts)
		if line == nil && cut { // nothing of it is kept
			continue
		}
		size := len(line)
		if !cut {
			for _, sp := range f.spans {
				size += sp[1] - sp[0]
			}
		}
		if over || block.Len()+size > s.lim.HeaderBytes {
			over = true
			if !readFields[f.name] || keptRead[f.name] {
				dropped++
				droppedB += size
				continue
			}
		}
		keptRead[f.name] = true
		if cut {
			block.Write(line)
		} else {
			for _, sp := range f.spans {
				block.Write(raw[sp[0]:sp[1]])
			}
			if !bytes.HasSuffix(block.Bytes(), []byte("\n")) {
				block.WriteString("\r\n")
			}
		}
		h.fields = append(h.fields, field{name: f.name, value: value})
	}
	for _, name := range listFields {
		if c := counts[name]; c != nil && c.kept < c.total {
			what := "addresses"
			if kindOf(name) == listIDs {
				what = "entries"
			}
			s.m.cut("%s: kept %d of %d %s", name, c.kept, c.total, what)
		}
	}
	if dropped > 0 {
		s.m.cut("header block: kept %d of %d bytes, dropped %d fields (%d bytes) past %d bytes",
			block.Len(), hdrBytes, dropped, droppedB, s.lim.HeaderBytes)
	}
	block.Write(blankLine)
	h.block = block.Bytes()
	return h, nil
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
			defer func() { s.m.cut("%s: kept %d of %d bytes", f.name, len(value), f.size) }()
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

// scanBody bounds the MIME structure of the body: at most Parts parts,
// multiparts nested at most Depth deep, part headers at most HeaderBytes.
// It mirrors how enmime reads boundaries: a part whose Content-Type has a
// boundary parameter and is not text/plain or text/html is a multipart,
// and a delimiter line of an outer multipart ends every inner one. The
// body comes back as it is when nothing was cut.
func (s *prescan) scanBody(body []byte, boundary string) ([]byte, error) {
	type level struct{ delim []byte } // "--" + boundary
	var (
		stack      = []level{{delim: []byte("--" + boundary)}}
		out        [][2]int // kept ranges of body
		parts      int
		tooDeep    int
		bigHeaders int
		cutAt      = -1 // where the part count or NestedBytes ran out
		overWork   bool // NestedBytes ran out
		work       int  // bytes times their depth, so far
		dropMore   int  // parts seen after cutAt
		skipping   bool // inside a dropped part, until a delimiter of the stack
		inHeader   bool // reading a part header
		preamble   = true
		partStart  int // start of the delimiter line of the part whose header is read
		hdr        []byte
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
	// match finds the outermost multipart whose delimiter (or
	// terminator) the line is.
	match := func(line []byte, anywhere bool) (k int, term bool) {
		for k, l := range stack {
			i := 0
			if anywhere && k == len(stack)-1 {
				if i = bytes.Index(line, l.delim); i < 0 {
					continue
				}
			} else if !bytes.HasPrefix(line, l.delim) {
				continue
			}
			rest := line[i+len(l.delim):]
			if bytes.HasPrefix(rest, []byte("--")) {
				return k, true
			}
			if len(rest) > 0 && isSpace(rest[0]) {
				return k, false
			}
		}
		return -1, false
	}
	for pos < len(body) {
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

		k := -1
		term := false
		if len(line) >= 2 && (line[0] == '-' || preamble) {
			k, term = match(line, preamble)
		}
		if cutAt >= 0 { // counting what is dropped
			if k >= 0 {
				stack = stack[:k+1]
				if term {
					stack = stack[:k]
					if len(stack) == 0 {
						break
					}
				} else {
					dropMore++
				}
			}
			continue
		}
		if k < 0 && !skipping {
			if work += len(line) * len(stack); work > s.lim.NestedBytes {
				cutAt, overWork = start, true
				if inHeader {
					cutAt = partStart
				}
				continue
			}
		}
		if k < 0 {
			switch {
			case skipping:
			case inHeader:
				if len(bytes.TrimRight(line, "\r\n")) > 0 {
					hdr = append(hdr, line...)
					if len(hdr) > s.lim.HeaderBytes {
						bigHeaders++
						inHeader, skipping, hdr = false, true, hdr[:0]
					}
					continue
				}
				inHeader = false
				if b, ok := multipartBoundary(hdr); ok {
					if len(stack) >= s.lim.Depth {
						tooDeep++
						skipping = true
						continue
					}
					stack = append(stack, level{delim: []byte("--" + b)})
					preamble = true
				}
				emit(partStart, end)
			default:
				emit(start, end)
			}
			continue
		}
		// A delimiter or terminator of multipart k ends every part and
		// multipart inside it.
		if inHeader {
			emit(partStart, start) // a header without its blank line: a leaf
			inHeader = false
		}
		skipping = false
		preamble = false
		stack = stack[:k+1]
		if term {
			stack = stack[:k]
			emit(start, end)
			if len(stack) == 0 { // the epilogue is kept as it is
				emit(end, len(body))
				break
			}
			continue
		}
		parts++
		if parts > s.lim.Parts {
			cutAt = start
			dropMore = 1
			continue
		}
		inHeader, partStart, hdr = true, start, hdr[:0]
	}
	if inHeader {
		emit(partStart, len(body))
	}
	if tooDeep > 0 {
		s.m.cut("MIME: dropped %d multipart parts nested deeper than %d levels", tooDeep, s.lim.Depth)
	}
	if bigHeaders > 0 {
		s.m.cut("MIME: dropped %d parts whose header is over %d bytes", bigHeaders, s.lim.HeaderBytes)
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
		for i := len(stack) - 1; i >= 0; i-- {
			b.Write(stack[i].delim)
			b.WriteString("--\r\n")
		}
	}
	return b.Bytes(), nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// multipartBoundary reports the boundary of a part header (raw lines)
// that enmime will read as a multipart: a Content-Type that parses, with a
// boundary, that is not text/plain or text/html.
func multipartBoundary(hdr []byte) (string, bool) {
	ct, ok := fieldValue(hdr, "Content-Type")
	if !ok {
		return "", false
	}
	mtype, params, _, err := mediatype.Parse(ct)
	if err != nil || params["boundary"] == "" || mtype == "text/plain" || mtype == "text/html" {
		return "", false
	}
	return params["boundary"], true
}

// topBoundary is the boundary of the top-level header when enmime reads
// the body as multipart.
func topBoundary(fields []field) (string, bool) {
	for _, f := range fields {
		if f.name != "Content-Type" {
			continue
		}
		mtype, params, _, err := mediatype.Parse(string(f.value))
		if err != nil || params["boundary"] == "" || !strings.HasPrefix(mtype, "multipart/") {
			return "", false
		}
		return params["boundary"], true
	}
	return "", false
}

// fieldValue is the unfolded value of the first field name in a raw
// header block.
func fieldValue(hdr []byte, name string) (string, bool) {
	var (
		b     strings.Builder
		found bool
	)
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
			line, hdr = hdr[:i+1], hdr[i+1:]
		} else {
			hdr = nil
		}
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			continue
		}
		if content[0] == ' ' || content[0] == '\t' {
			if found {
				b.Write(content)
			}
			continue
		}
		if found {
			break
		}
		n, v, ok := bytes.Cut(content, []byte(":"))
		if ok && strings.EqualFold(strings.TrimSpace(string(n)), name) {
			found = true
			b.Write(bytes.TrimLeft(v, " \t"))
		}
	}
	return b.String(), found
}
