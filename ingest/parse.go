// Package ingest turns one fetched message into a decision for the ticket
// store: raw RFC 5322 bytes are parsed (MIME per RFC 2045-2049, encoded
// words per RFC 2047, parameters per RFC 2231), classified (auto-replies per
// RFC 3834, bounces per RFC 3464 and RFC 6522, list mail per RFC 2369 and
// RFC 2919), threaded onto a ticket (reply keys, In-Reply-To and References
// per RFC 5322 section 3.6.4) and handed to the store as one
// ticket.Delivery.
//
// The package declares the small Store interface it needs and imports
// neither the IMAP adapter nor the store nor the job queue.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/textproto"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/inbucket/html2text"
	"github.com/jhillyerd/enmime/v2"
	"github.com/servicedesk/servicedesk/ticket"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
)

// Mail is a parsed message.
type Mail struct {
	MessageID  string   // "<id@host>" with brackets; "" if none
	InReplyTo  []string // bracketed ids
	References []string // every entry, bracketed; comma-joined and whitespace-less forms tolerated
	From       string   // bare lower-cased address
	FromName   string
	ReplyTo    []string // bare lower-cased addresses
	Sender     string   // bare lower-cased address
	To, Cc     []string // bare lower-cased addresses
	// Forwarded holds the addresses of the forwarding headers Delivered-To,
	// X-Delivered-To, X-Original-To, X-Forwarded-To, Envelope-To and
	// X-Envelope-To, bare and lower-cased.
	Forwarded []string
	// Recipients lists the addresses the headers name as recipients, in
	// the order routing reads them (RecipientHeaders), each header's
	// first Limits.Addresses; a Received field gives its "for <addr>"
	// clause. Routing an intake mailbox's mail to its desk reads it.
	Recipients []Recipient
	Subject    string // decoded
	Date       time.Time
	Text       string // text/plain body, else the HTML body converted to text
	HTML       string
	// Attachments holds attachments and inline parts with Data, SHA256 (hex)
	// and Size set. Parts that cannot be decoded (uuencode, BinHex) are kept
	// as they are.
	Attachments []ticket.Attachment
	// Header holds every header of the top-level message with canonical
	// keys and decoded values.
	Header textproto.MIMEHeader
	// Warnings says what the lenient parse had to forgive.
	Warnings []string
	// Cuts says what the parse left out to stay within its Limits, one
	// human line each, e.g. "References: kept 100 of 40000 entries".
	Cuts []string

	dsn dsnInfo
}

// dsnInfo is what Parse found of a delivery status report.
type dsnInfo struct {
	reportType     string               // report-type of a multipart/report
	deliveryStatus bool                 // a message/delivery-status part exists
	actions        []string             // Action of every per-recipient field group
	recipients     []string             // failed (or, without Action, all) recipients
	seen           map[string]bool      // recipients, for dedup
	dropped        int                  // recipients past Limits.Addresses
	original       textproto.MIMEHeader // headers of the embedded original, decoded
	originalRaw    map[string]string    // References, Reply-To, From of the original, undecoded
}

// maxWarnings bounds Warnings so that a hostile message cannot grow it.
const maxWarnings = 20

func (m *Mail) warn(format string, args ...any) {
	if len(m.Warnings) < maxWarnings {
		m.Warnings = append(m.Warnings, fmt.Sprintf(format, args...))
	}
}

// Parse parses raw RFC 5322 bytes within DefaultLimits; it is
// ParseContext without a context.
func Parse(raw []byte) (*Mail, error) {
	return ParseContext(context.Background(), raw, Limits{})
}

// ParseContext parses raw RFC 5322 bytes within lim (zero fields take
// DefaultLimits). It never panics. A pre-scan bounds the message before
// the MIME parser sees it and records what it cut in Mail.Cuts. A leading
// mbox "From " line and lines inside the header block that are not
// headers are dropped (with a warning); a MIME structure that cannot be
// read at all leaves the body as plain text. Parse fails only when nothing
// usable remains (no header and no body), when ctx ends (the error wraps
// ctx.Err(): temporary, try again later) or when the parse runs past
// lim.Deadline (the error wraps ErrParseDeadline: permanent).
func ParseContext(ctx context.Context, raw []byte, lim Limits) (m *Mail, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("parse message: internal error: %v", r)
		}
	}()
	lim = lim.WithDefaults()
	deadline := time.Now().Add(lim.Deadline)
	check := func(step string) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("parse message: %s: %w", step, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("parse message: %s: %w (%s)", step, ErrParseDeadline, lim.Deadline)
		}
		return nil
	}
	if err := check("start"); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("parse message: empty message")
	}
	m = &Mail{Header: textproto.MIMEHeader{}}
	s := &prescan{lim: lim, m: m, check: check}
	h, body, err := s.bound(raw)
	if err != nil {
		return nil, err
	}
	if err := check("decode header"); err != nil {
		return nil, err
	}
	declared := topCharset(h.fields)
	for _, f := range h.fields {
		m.Header.Add(f.name, decodeHeader(f.value, declared))
	}
	m.fillEnvelope(h.fields, declared, s)
	if err := check("MIME parse"); err != nil {
		return nil, err
	}
	env, err := readEnvelope(newEnmimeParser(false), io.MultiReader(bytes.NewReader(h.block), bytes.NewReader(body)))
	if err == nil && !declaredCharsetsHeld(env.Root) {
		if len(body) > maxRedetect {
			m.warn("a declared charset does not fit the text; the message is over %d bytes, so it is not read again with charset detection", maxRedetect)
		} else {
			// A declared charset did not fit the bytes: read the message
			// again with enmime's detection on every text part, the first
			// reading let go before.
			env = nil
			if err := check("MIME parse with charset detection"); err != nil {
				return nil, err
			}
			env, err = readEnvelope(newEnmimeParser(true), io.MultiReader(bytes.NewReader(h.block), bytes.NewReader(body)))
		}
	}
	if err == nil {
		if err := check("MIME parts"); err != nil {
			return nil, err
		}
	}
	if err := m.parseBody(env, err, body, declared, lim, check); err != nil {
		return nil, err
	}
	m.sanitize()
	return m, nil
}

// bound is the pre-scan of a whole message: the top-level header within
// the limits and the body with its MIME structure bounded, as enmime is
// to read them (h.block, then body).
func (s *prescan) bound(raw []byte) (h headerScan, body []byte, err error) {
	if h, err = s.scanHeader(raw); err != nil {
		return h, nil, err
	}
	if len(h.fields) == 0 && len(bytes.TrimSpace(h.body)) == 0 {
		return h, nil, errors.New("parse message: no header and no body")
	}
	body = h.body
	if tops := topBoundaries(h.block); len(tops) > 0 {
		if body, err = s.scanBody(h.body, tops); err != nil {
			return h, nil, err
		}
	}
	return h, body, nil
}

// field is one unfolded header field with its raw value.
type field struct {
	name  string
	value []byte
}

var headerName = regexp.MustCompile(`^[!-9;-~]+:`)

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// topCharset is the charset parameter of the top-level Content-Type, the
// best guess for raw 8-bit bytes in headers.
func topCharset(hdr []field) string {
	for _, f := range hdr {
		if f.name != "Content-Type" {
			continue
		}
		if c := charsetParam.FindSubmatch(f.value); c != nil {
			return strings.ToLower(string(c[1]))
		}
	}
	return ""
}

var charsetParam = regexp.MustCompile(`(?i)charset\s*=\s*"?([A-Za-z0-9_.:+-]+)`)

func (m *Mail) fillEnvelope(hdr []field, declared string, s *prescan) {
	get := func(name string) []byte {
		for _, f := range hdr {
			if f.name == name {
				return f.value
			}
		}
		return nil
	}
	all := func(name string) [][]byte {
		var vs [][]byte
		for _, f := range hdr {
			if f.name == name {
				vs = append(vs, f.value)
			}
		}
		return vs
	}

	lim := s.lim
	if ids := messageIDs(get("Message-Id")); len(ids) > 0 {
		m.MessageID = ids[0]
	}
	m.InReplyTo = capList(messageIDs(get("In-Reply-To")), lim.References)
	var refs uniq
	for _, v := range all("References") {
		refs.add(messageIDs(v)...)
	}
	m.References = capList(refs.list, lim.References)
	if from := m.addresses(get("From"), declared); len(from) > 0 {
		m.From, m.FromName = from[0].Address, from[0].Name
	}
	addrs := func(names ...string) []string {
		var u uniq
		for _, name := range names {
			for _, v := range all(name) {
				for _, a := range m.addresses(v, declared) {
					u.add(a.Address)
				}
			}
		}
		return u.list
	}
	m.ReplyTo = capList(addrs("Reply-To"), lim.Addresses)
	if s := m.addresses(get("Sender"), declared); len(s) > 0 {
		m.Sender = s[0].Address
	}
	m.To = capList(addrs("To"), lim.Addresses)
	m.Cc = capList(addrs("Cc"), lim.Addresses)
	m.Forwarded = capList(addrs(forwardHeaders...), lim.Addresses*len(forwardHeaders))
	m.fillRecipients(all, addrs, lim)
	subject := strings.TrimSpace(decodeHeader(get("Subject"), declared))
	if len(subject) > lim.SubjectBytes || s.subjectSize > 0 {
		m.cut("Subject: kept %d of %d bytes", len(ticket.TruncateUTF8(subject, lim.SubjectBytes)), max(len(subject), s.subjectSize))
		subject = ticket.TruncateUTF8(subject, lim.SubjectBytes)
	}
	m.Subject = subject
	if d := strings.TrimSpace(string(get("Date"))); d != "" {
		t, err := parseDate(d)
		if err != nil {
			m.warn("unparseable Date %q", truncate(d, 40))
		}
		m.Date = t
	}
}

var forwardHeaders = []string{"Delivered-To", "X-Delivered-To", "X-Original-To", "X-Forwarded-To", "Envelope-To", "X-Envelope-To"}

// appendUnique appends the non-empty vs that list (compared without
// case) does not hold yet. One call costs len(list)+len(vs); to collect
// many values one by one, use uniq.
func appendUnique(list []string, vs ...string) []string {
	u := uniq{list: list}
	u.add(vs...)
	return u.list
}

// uniq collects non-empty strings in order, without duplicates compared
// without case, in time linear in their number.
type uniq struct {
	list []string
	seen map[string]struct{}
}

func (u *uniq) add(vs ...string) {
	if u.seen == nil {
		u.seen = make(map[string]struct{}, len(u.list)+len(vs))
		for _, v := range u.list {
			u.seen[strings.ToLower(v)] = struct{}{}
		}
	}
	for _, v := range vs {
		if v == "" {
			continue
		}
		k := strings.ToLower(v)
		if _, dup := u.seen[k]; dup {
			continue
		}
		u.seen[k] = struct{}{}
		u.list = append(u.list, v)
	}
}

// capList keeps the first n entries of list (the pre-scan has recorded
// the cut of the raw entries already).
func capList(list []string, n int) []string {
	if len(list) > n {
		return list[:n:n]
	}
	return list
}

var (
	bracketed = regexp.MustCompile(`<([^<>\s]+)>`)
	bareAddr  = regexp.MustCompile(`[^\s<>,;:"()\[\]\\]+@[^\s<>,;:"()\[\]\\]+`)
)

// messageIDs reads a Message-ID list leniently: "<a@b> <c@d>", "<a@b>,<c@d>"
// and "<a@b><c@d>" all give both; ids without brackets are bracketed.
func messageIDs(v []byte) []string {
	s := strings.ToValidUTF8(string(v), "")
	var ids uniq
	for _, sm := range bracketed.FindAllStringSubmatch(s, -1) {
		ids.add("<" + sm[1] + ">")
	}
	if len(ids.list) > 0 {
		return ids.list
	}
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if strings.Contains(tok, "@") {
			ids.add("<" + strings.Trim(tok, "<>") + ">")
		}
	}
	return ids.list
}

// addresses parses an address list leniently: encoded words (even with raw
// 8-bit bytes) become quoted strings first, raw 8-bit text becomes UTF-8,
// and when net/mail still refuses, bare addresses are picked out.
func (m *Mail) addresses(v []byte, declared string) []*mail.Address {
	if len(bytes.TrimSpace(v)) == 0 {
		return nil
	}
	s := quoteEncodedWords(v, declared)
	list, err := (&mail.AddressParser{}).ParseList(s)
	if err != nil {
		list = nil
		for _, a := range bareAddr.FindAllString(s, -1) {
			list = append(list, &mail.Address{Address: a})
		}
		if len(list) == 0 {
			m.warn("no address in %q", truncate(s, 40))
		}
	}
	out := list[:0]
	for _, a := range list {
		a.Address = strings.ToLower(strings.TrimSpace(a.Address))
		a.Name = strings.TrimSpace(a.Name)
		if a.Address != "" {
			out = append(out, a)
		}
	}
	return out
}

var encodedWord = regexp.MustCompile(`=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=`)

// quoteEncodedWords decodes the encoded words of an address header into
// quoted strings (so a decoded comma stays inside the display name) and the
// rest into UTF-8.
func quoteEncodedWords(v []byte, declared string) string {
	var b strings.Builder
	inQuote := false
	open := false // a quoted word is written without its closing quote yet
	last := 0
	locs := encodedWord.FindAllSubmatchIndex(v, -1)
	for i, loc := range locs {
		between := v[last:loc[0]]
		if i > 0 && locs[i-1][1] == last && len(bytes.TrimSpace(between)) == 0 {
			between = nil // whitespace between adjacent encoded words
		}
		joined := i > 0 && between == nil
		if open && !joined {
			b.WriteByte('"')
			open = false
		}
		inQuote = writeTracked(&b, toUTF8(between, declared), inQuote)
		word := decodeWord(v[loc[2]:loc[3]], v[loc[4]:loc[5]], v[loc[6]:loc[7]])
		word = quoteEscaper.Replace(word)
		switch {
		case inQuote, open:
			// Inside a quoted string, or joined to the previous word,
			// whose quoted string stays open.
			b.WriteString(word)
		default:
			b.WriteString(`"` + word)
			open = true
		}
		last = loc[1]
	}
	if open {
		b.WriteByte('"')
	}
	writeTracked(&b, toUTF8(v[last:], declared), inQuote)
	return b.String()
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func writeTracked(b *strings.Builder, s string, inQuote bool) bool {
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case r == '\\':
			escaped = true
		case r == '"':
			inQuote = !inQuote
		}
	}
	b.WriteString(s)
	return inQuote
}

// decodeHeader decodes a header value: encoded words (RFC 2047, tolerating
// raw 8-bit bytes inside them) by their declared charset, raw 8-bit text as
// UTF-8 if valid, else by the message's declared charset, else as
// Windows-1252.
func decodeHeader(v []byte, declared string) string {
	var b strings.Builder
	last := 0
	locs := encodedWord.FindAllSubmatchIndex(v, -1)
	for i, loc := range locs {
		between := v[last:loc[0]]
		if !(i > 0 && locs[i-1][1] == last && len(bytes.TrimSpace(between)) == 0) {
			b.WriteString(toUTF8(between, declared))
		}
		b.WriteString(decodeWord(v[loc[2]:loc[3]], v[loc[4]:loc[5]], v[loc[6]:loc[7]]))
		last = loc[1]
	}
	b.WriteString(toUTF8(v[last:], declared))
	return b.String()
}

func decodeWord(charset, enc, text []byte) string {
	var data []byte
	if enc[0] == 'b' || enc[0] == 'B' {
		clean := bytes.TrimRight(bytes.Map(func(r rune) rune {
			if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '=' {
				return r
			}
			return -1
		}, text), "=")
		d, err := base64.RawStdEncoding.DecodeString(string(clean))
		if err != nil {
			return string(text) // keep the undecodable word as it is
		}
		data = d
	} else {
		data = make([]byte, 0, len(text))
		for i := 0; i < len(text); i++ {
			c := text[i]
			switch {
			case c == '_':
				data = append(data, ' ')
			case c == '=' && i+2 < len(text) && isHex(text[i+1]) && isHex(text[i+2]):
				h, _ := hex.DecodeString(string(text[i+1 : i+3]))
				data = append(data, h...)
				i += 2
			default:
				data = append(data, c)
			}
		}
	}
	cs, _, _ := strings.Cut(string(charset), "*") // RFC 2231 language suffix
	return convert(data, strings.ToLower(cs))
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// toUTF8 converts raw header text: ASCII and valid UTF-8 as they are, else
// the declared charset, else Windows-1252.
func toUTF8(b []byte, declared string) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return convert(b, declared)
}

// validUTF8 is s if it is valid UTF-8, else s read as Windows-1252.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out, _ := charmap.Windows1252.NewDecoder().String(s)
	return out
}

// convert decodes data in charset; an unknown charset or invalid UTF-8
// falls back to UTF-8 if valid, else Windows-1252.
func convert(data []byte, charset string) string {
	if utf7Charsets[charset] {
		if out, ok := decodeUTF7(data); ok {
			return out
		}
	}
	if enc := lookupCharset(charset); enc != nil {
		if out, err := enc.NewDecoder().Bytes(data); err == nil && utf8.Valid(out) {
			return string(out)
		}
	}
	if utf8.Valid(data) {
		return string(data)
	}
	out, _ := charmap.Windows1252.NewDecoder().Bytes(data)
	return string(out)
}

func lookupCharset(charset string) encoding.Encoding {
	switch charset {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return nil // validity is checked by the caller
	}
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil
	}
	return enc
}

var dateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 2006 15:04 -0700",
	"Mon, 02 Jan 2006 15:04:05",
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 -0700 2006",
	time.RFC3339,
}

var dateComment = regexp.MustCompile(`\s*\([^)]*\)\s*$`)

func parseDate(s string) (time.Time, error) {
	if t, err := mail.ParseDate(s); err == nil {
		return t, nil
	}
	s = strings.Join(strings.Fields(dateComment.ReplaceAllString(s, "")), " ")
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("unparseable date")
}

// maxRedetect is the largest body read a second time, with charset
// detection, when a declared charset does not fit: a second reading
// doubles the cost of a parse (a 24 MB body took 3.7 s instead of 1.3 s).
// A larger body keeps its first reading, whose text that is not UTF-8 is
// read as Windows-1252.
const maxRedetect = 4 << 20

// newEnmimeParser is the MIME parser of ParseContext. With detect false,
// enmime trusts a text part's declared charset and guesses (gogs/chardet,
// about a third of the parse) only for parts that declare none; with
// detect true it guesses for every text part and prefers a confident
// guess to the declaration. ParseContext reads with detect false and
// again with true only when declaredCharsetsHeld says a declaration did
// not fit.
func newEnmimeParser(detect bool) *enmime.Parser {
	return enmime.NewParser(
		enmime.SetReadPartErrorPolicy(enmime.AllowCorruptTextPartErrorPolicy),
		enmime.MultipartWOBoundaryAsSinglePart(true),
		enmime.MaxStoredPartErrors(maxWarnings),
		// Its HTML-to-text conversion reads the whole HTML body at a cost
		// far above its size; htmlText bounds it.
		enmime.DisableTextConversion(true),
		enmime.DisableCharacterDetection(!detect),
	)
}

// declaredCharsetsHeld reports whether every text part that declares a
// charset decoded cleanly in it, as far as the decoded text shows: no
// unknown charset, valid UTF-8 without U+FFFD (a byte sequence the
// charset has no character for), and only ASCII from a part declared
// US-ASCII (enmime reads US-ASCII as Windows-1252, so 8-bit bytes there,
// often UTF-8 from a client that did not say so, would pass unseen).
// Parts without a declaration went through enmime's detection already.
func declaredCharsetsHeld(root *enmime.Part) bool {
	if root == nil {
		return true
	}
	held := true
	root.DepthMatchAll(func(p *enmime.Part) bool {
		if !held || !strings.HasPrefix(p.ContentType, "text/") || p.Charset == "" {
			return false
		}
		for _, e := range p.Errors {
			if e.Name == enmime.ErrorCharsetConversion {
				held = false
				return false
			}
		}
		switch {
		case !utf8.Valid(p.Content), bytes.Contains(p.Content, []byte("\uFFFD")):
			held = false
		case asciiCharsets[strings.ToLower(strings.TrimSpace(p.Charset))]:
			for _, c := range p.Content {
				if c >= utf8.RuneSelf {
					held = false
					break
				}
			}
		}
		return false
	})
	return held
}

// asciiCharsets are the names of US-ASCII (RFC 2046 section 4.1.2 and the
// IANA aliases).
var asciiCharsets = map[string]bool{
	"us-ascii": true, "ascii": true, "us": true, "iso646-us": true, "iso-ir-6": true,
	"ansi_x3.4-1968": true, "ansi_x3.4-1986": true, "iso_646.irv:1991": true,
	"cp367": true, "ibm367": true, "csascii": true,
}

// parseBody takes what enmime read of the bounded message; when it could
// not read it, the body is kept as plain text. It fails only when ctx
// ends or the deadline passes (see ParseContext).
func (m *Mail) parseBody(env *enmime.Envelope, err error, body []byte, declared string, lim Limits, check func(string) error) error {
	if err != nil {
		m.warn("MIME structure unreadable, body kept as text: %v", err)
		m.Text = toUTF8(body, declared)
		return nil
	}
	// Bytes that are still not UTF-8 (a declared charset that neither
	// held nor was out-guessed by detection, an unknown charset) are read
	// as Windows-1252, as in headers, rather than lost to U+FFFD.
	m.Text, m.HTML = validUTF8(env.Text), validUTF8(env.HTML)
	for _, e := range env.Errors {
		if e.Name == enmime.ErrorPlainTextFromHTML {
			continue
		}
		m.warn("%s", e.Error())
	}
	if m.Text == "" && m.HTML != "" {
		if err := check("HTML to text"); err != nil {
			return err
		}
		m.Text = m.htmlText(m.HTML)
	}
	if err := m.collectParts(env.Root, lim, check); err != nil {
		return err
	}
	if m.dsn.dropped > 0 {
		m.cut("bounce: kept %d of %d failed recipients", len(m.dsn.recipients), len(m.dsn.recipients)+m.dsn.dropped)
	}
	return nil
}

// maxHTMLText is how many bytes of an HTML body are converted to text
// when a message has no text/plain body: the conversion costs far more
// than the bytes (about 0.4 s and 60 MB a MB of tags), and a ticket reads
// the first pages only. The HTML itself is kept whole.
const maxHTMLText = 1 << 20

// htmlText converts the first maxHTMLText bytes of html to text, cut
// before a tag that the limit would split and at a character boundary.
func (m *Mail) htmlText(html string) string {
	src := html
	if len(src) > maxHTMLText {
		src = src[:maxHTMLText]
		if i := strings.LastIndexByte(src, '<'); i >= 0 && !strings.Contains(src[i:], ">") {
			src = src[:i]
		}
		src = ticket.TruncateUTF8(src, len(src))
		m.cut("HTML body: text taken from the first %d of %d bytes", len(src), len(html))
	}
	text, err := html2text.FromString(src)
	if err != nil {
		m.warn("HTML body not converted to text: %v", err)
		return ""
	}
	return text
}

func readEnvelope(p *enmime.Parser, r io.Reader) (env *enmime.Envelope, err error) {
	defer func() {
		if r := recover(); r != nil {
			env, err = nil, fmt.Errorf("mime parser panic: %v", r)
		}
	}()
	return p.ReadEnvelope(r)
}

// collectParts gathers attachments and inline parts (every leaf that is not
// a body text part) and the delivery status report, if any.
func (m *Mail) collectParts(root *enmime.Part, lim Limits, check func(string) error) error {
	if root == nil {
		return nil
	}
	if root.ContentType == "multipart/report" {
		if _, params, err := mime.ParseMediaType(m.Header.Get("Content-Type")); err == nil {
			m.dsn.reportType = strings.ToLower(params["report-type"])
		}
	}
	n := 0
	var failed error
	root.DepthMatchAll(func(p *enmime.Part) bool {
		if failed != nil {
			return false
		}
		if p.FirstChild != nil || strings.HasPrefix(p.ContentType, "multipart/") {
			return false
		}
		n++
		// A single-part message is its own body unless it is an
		// attachment (a scanner's or a phone's image/png, a text/plain
		// with Content-Disposition: attachment): then the ticket opens
		// with an empty text and the part as its attachment.
		isBody := (p.ContentType == "text/plain" || p.ContentType == "text/html" || p.ContentType == "") &&
			p.Disposition != "attachment" && p.FileName == ""
		if isBody {
			return false
		}
		switch p.ContentType {
		case "message/delivery-status", "message/global-delivery-status":
			m.dsn.deliveryStatus = true
			if len(m.dsn.actions) == 0 {
				m.parseDeliveryStatus(p.Content, lim)
			}
		case "message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers":
			if m.dsn.original == nil {
				m.dsn.original, m.dsn.originalRaw, failed = embeddedHeader(p.Content, lim, check)
			}
		}
		m.Attachments = append(m.Attachments, attachment(p, n))
		return false
	})
	return failed
}

func (m *Mail) addDSNRecipient(action, final, original string, lim Limits) {
	action = strings.ToLower(strings.TrimSpace(action))
	m.dsn.actions = append(m.dsn.actions, action)
	if action != "" && action != "failed" {
		return
	}
	addr := final
	if addr == "" {
		addr = original
	}
	if _, a, ok := strings.Cut(addr, ";"); ok {
		addr = a
	}
	addr = strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
	if addr == "" || m.dsn.seen[addr] {
		return
	}
	if len(m.dsn.recipients) >= lim.Addresses {
		m.dsn.dropped++
		return
	}
	if m.dsn.seen == nil {
		m.dsn.seen = map[string]bool{}
	}
	m.dsn.seen[addr] = true
	m.dsn.recipients = append(m.dsn.recipients, addr)
}

// parseDeliveryStatus reads the per-recipient field groups of a
// message/delivery-status body (RFC 3464), wherever the part is, in one
// pass without copying it: at most lim.Addresses groups that name a
// recipient and at most lim.HeaderBytes bytes. Continuation lines are
// unfolded; of a field repeated in a group the first is read. What is
// left unread is noted as a cut.
func (m *Mail) parseDeliveryStatus(content []byte, lim Limits) {
	var (
		action, final, original []byte
		inField                 *[]byte // the field a continuation line extends
		groups                  int     // groups that name a recipient
		pos                     int
	)
	endGroup := func() {
		if len(final) > 0 || len(original) > 0 {
			groups++
			m.addDSNRecipient(string(action), string(final), string(original), lim)
		}
		action, final, original, inField = nil, nil, nil, nil
	}
	for pos < len(content) && groups < lim.Addresses {
		end := len(content)
		if i := bytes.IndexByte(content[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		if end > lim.HeaderBytes {
			break
		}
		line := bytes.TrimRight(content[pos:end], "\r\n")
		pos = end
		switch {
		case len(bytes.TrimSpace(line)) == 0:
			endGroup()
		case line[0] == ' ' || line[0] == '\t':
			if inField != nil {
				*inField = append(append(*inField, ' '), bytes.TrimSpace(line)...)
			}
		default:
			inField = nil
			name, value, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				continue
			}
			var f *[]byte
			switch name = bytes.TrimSpace(name); {
			case bytes.EqualFold(name, []byte("Action")):
				f = &action
			case bytes.EqualFold(name, []byte("Final-Recipient")):
				f = &final
			case bytes.EqualFold(name, []byte("Original-Recipient")):
				f = &original
			}
			if f != nil && *f == nil {
				*f = append([]byte{}, bytes.TrimSpace(value)...)
				inField = f
			}
		}
	}
	if groups < lim.Addresses {
		endGroup() // the last group, without its blank line
	}
	if pos < len(bytes.TrimRight(content, "\r\n \t")) {
		m.cut("bounce: read %d recipient groups, the first %d of %d bytes of the delivery status", groups, pos, len(content))
	}
}

// originalNames are the fields of an embedded original that a bounce is
// threaded by (BounceOriginal, Processor.thread).
var originalNames = [...]string{"Message-Id", "Reply-To", "References", "In-Reply-To", "From"}

// embeddedHeader reads the header block of an embedded message within the
// same limits as the top-level header and keeps only originalNames:
// decoded in the first map, raw and space-joined in the second.
func embeddedHeader(content []byte, lim Limits, check func(string) error) (textproto.MIMEHeader, map[string]string, error) {
	var scratch Mail
	s := &prescan{lim: lim, m: &scratch, check: check}
	hs, err := s.scanHeader(content)
	if err != nil {
		return nil, nil, err
	}
	h := textproto.MIMEHeader{}
	raw := map[string]string{}
	declared := topCharset(hs.fields)
	var joined [len(originalNames)]strings.Builder
	for _, f := range hs.fields {
		i := slices.Index(originalNames[:], f.name)
		if i < 0 {
			continue
		}
		h.Add(f.name, decodeHeader(f.value, declared))
		joined[i].WriteByte(' ')
		joined[i].Write(f.value)
	}
	for i, name := range originalNames {
		if joined[i].Len() > 0 {
			raw[name] = joined[i].String()
		}
	}
	return h, raw, nil
}

func attachment(p *enmime.Part, n int) ticket.Attachment {
	data := p.Content
	if data == nil {
		data = []byte{}
	}
	sum := sha256.Sum256(data)
	name := safeFilename(p.FileName)
	if name == "" {
		name = safeFilename(looseFilename(p))
	}
	if name == "" {
		name = fmt.Sprintf("part-%d%s", n, extension(p.ContentType))
	}
	ct := p.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	return ticket.Attachment{
		Filename:    name,
		ContentType: ct,
		Size:        int64(len(data)),
		SHA256:      hex.EncodeToString(sum[:]),
		Inline:      p.Disposition == "inline" || (p.Disposition == "" && p.ContentID != ""),
		ContentID:   strings.Trim(p.ContentID, "<> "),
		Data:        data,
	}
}

// looseFilename reads a file name that enmime's parameter parser did not
// find in a malformed Content-Disposition or Content-Type: a missing
// semicolon ("attachment filename=x.pdf"), name= in the disposition, an
// unclosed quote. It is "" when neither header names a file.
func looseFilename(p *enmime.Part) string {
	for _, h := range []string{"Content-Disposition", "Content-Type"} {
		v := p.Header.Get(h)
		if len(v) > maxQuoteLine {
			v = v[:maxQuoteLine]
		}
		if sm := looseName.FindStringSubmatch(v); sm != nil {
			name := strings.TrimSpace(sm[1] + sm[2] + sm[3])
			return decodeHeader([]byte(name), "")
		}
	}
	return ""
}

var looseName = regexp.MustCompile(`(?i)(?:^|[\s;])(?:file)?name\s*=\s*(?:"([^"]*)"?|'([^']*)'?|([^;]*))`)

// safeFilename keeps the last path element of a file name, as valid UTF-8
// without control or invisible format characters (ticket.HiddenRune:
// bidi overrides such as U+202E would show "invoice\u202Efdp.exe" as
// "invoiceexe.pdf").
func safeFilename(s string) string {
	s = strings.ToValidUTF8(s, "_")
	s = strings.Map(func(r rune) rune {
		if ticket.HiddenRune(r) {
			return -1
		}
		return r
	}, s)
	s = path.Base(strings.ReplaceAll(s, `\`, "/"))
	s = strings.TrimSpace(s)
	if len(s) > 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		s = s[1 : len(s)-1] // single quotes as if they were double
	}
	if s == "." || s == "/" || s == ".." {
		return ""
	}
	return s
}

func extension(contentType string) string {
	switch contentType {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "image/gif":
		return ".gif"
	case "text/plain":
		return ".txt"
	case "text/html":
		return ".html"
	case "text/calendar":
		return ".ics"
	case "application/pdf":
		return ".pdf"
	case "message/rfc822", "message/global":
		return ".eml"
	case "message/delivery-status", "message/global-delivery-status":
		return ".dsn"
	case "text/rfc822-headers":
		return ".txt"
	}
	return ".bin"
}

// sanitize makes every string storable: valid UTF-8 without NUL bytes
// (PostgreSQL text rejects both).
func (m *Mail) sanitize() {
	clean := func(s string) string {
		return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	}
	m.Subject, m.FromName = clean(m.Subject), clean(m.FromName)
	m.Text, m.HTML = clean(m.Text), clean(m.HTML)
	m.MessageID = clean(m.MessageID)
	for _, list := range [][]string{m.InReplyTo, m.References, m.ReplyTo, m.To, m.Cc, m.Forwarded} {
		for i := range list {
			list[i] = clean(list[i])
		}
	}
	m.From, m.Sender = clean(m.From), clean(m.Sender)
	for k, vs := range m.Header {
		for i := range vs {
			vs[i] = clean(vs[i])
		}
		m.Header[k] = vs
	}
}
