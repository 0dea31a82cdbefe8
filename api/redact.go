package api

import (
	"bytes"
	"encoding/json"
	"html"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Obfuscate hides an address the way a guest sees it: a little of the
// local part, "***", "@", a little of the first domain label, "***" and the
// top-level domain: alice@customer.test -> al***@cu***.test. "A little" is
// the first two characters of a part of four or more, the first one of a
// part of two or three and nothing of a part of one, so that no part is
// ever shown whole: ab@cd.io -> a***@c***.io, a@b.io -> ***@***.io. The
// quotes of a quoted local part are left out: "john doe"@customer.test ->
// jo***@cu***.test; an address literal is hidden whole:
// bob@[192.168.1.20] -> bo***@[***].
func Obfuscate(addr string) string {
	return string(appendObfuscated(nil, addr))
}

// appendObfuscated appends Obfuscate(addr) to dst.
func appendObfuscated(dst []byte, addr string) []byte {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return append(appendPrefix(dst, addr), "***"...)
	}
	local, domain := addr[:at], addr[at+1:]
	if len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"' {
		local = local[1 : len(local)-1]
	}
	dst = append(appendPrefix(dst, local), "***@"...)
	if strings.HasPrefix(domain, "[") {
		return append(dst, "[***]"...)
	}
	first, rest, dotted := strings.Cut(domain, ".")
	dst = append(appendPrefix(dst, first), "***"...)
	if dotted {
		dst = append(dst, '.')
		dst = append(dst, rest[strings.LastIndexByte(rest, '.')+1:]...)
	}
	return dst
}

// appendPrefix appends to dst what Obfuscate keeps of part, a local part
// or a domain label: its first two characters (runes) when it has four or
// more, one when it has two or three, none when it has one. Quoting
// backslashes are not counted. What an earlier obfuscation kept (at most
// two characters before "***") is kept as it is, so that obfuscating twice
// changes nothing.
func appendPrefix(dst []byte, part string) []byte {
	trimmed := strings.TrimRight(part, "*")
	n := 0 // characters in trimmed, counted up to 4
	for _, r := range trimmed {
		if r != '\\' {
			n++
		}
		if n == 4 {
			break
		}
	}
	keep := 0
	switch {
	case len(part)-len(trimmed) >= 3 && n <= 2:
		keep = n // an earlier obfuscation
	case n >= 4:
		keep = 2
	case n >= 2:
		keep = 1
	}
	for _, r := range trimmed {
		if keep == 0 {
			break
		}
		if r == '\\' {
			continue
		}
		dst = utf8.AppendRune(dst, r)
		keep--
	}
	return dst
}

// findAddresses appends to out the [start, end) offsets in text of
// everything that looks like an address, in order and not overlapping: a
// local part, "@", and a domain of one or more labels or an address
// literal ([192.168.1.20]). The local part is an RFC 5322 dot-atom (UTF-8
// letters, marks, digits and symbols allowed, RFC 6531; not spaces, quotes
// or brackets) or a quoted string on one line ("john doe"@customer.test).
// "*" is allowed in the domain and the local part so that redacting twice
// gives the same text. It scans out from each "@", in time linear in
// len(text).
func findAddresses(out [][2]int, text string) [][2]int {
	floor := 0 // the end of the previous match
	for off := 0; off < len(text); {
		i := strings.IndexByte(text[off:], '@')
		if i < 0 {
			break
		}
		at := off + i
		off = at + 1
		end := domainEnd(text, at+1)
		if end == at+1 || at == floor {
			continue
		}
		start := quotedStart(text, floor, at)
		if start < 0 {
			start = at
			if text[at-1] == '"' { // a stray quote: over-redact rather than leave the address
				start--
			}
			for start > floor {
				r, n := utf8.DecodeLastRuneInString(text[floor:start])
				if !isAtext(r) {
					break
				}
				start -= n
			}
			if start == at || start == at-1 && text[start] == '"' {
				continue
			}
		}
		out = append(out, [2]int{start, end})
		floor, off = end, end
	}
	return out
}

// maxQuotedLocal bounds how far back a quoted local part is looked for;
// RFC 5321 allows 64 octets.
const maxQuotedLocal = 256

// quotedStart returns where the quoted local part ending right before
// text[at] (an "@") starts, not before floor, or -1 when there is none.
func quotedStart(text string, floor, at int) int {
	if at-floor < 3 || text[at-1] != '"' {
		return -1
	}
	for i := at - 2; i >= max(floor, at-maxQuotedLocal); i-- {
		switch text[i] {
		case '\r', '\n':
			return -1
		case '"':
			bs := 0 // an odd number of backslashes before it escapes it
			for j := i - 1; j >= floor && text[j] == '\\'; j-- {
				bs++
			}
			if bs%2 == 0 {
				if i == at-2 {
					return -1 // ""@: empty
				}
				return i
			}
		}
	}
	return -1
}

// domainEnd returns the end of the domain that starts at text[from]: labels
// of domain characters separated by single dots, or an address literal;
// from when there is none.
func domainEnd(text string, from int) int {
	if from < len(text) && text[from] == '[' {
		return literalEnd(text, from)
	}
	end, i := from, from
	for i < len(text) {
		labelStart := i
		for i < len(text) {
			r, n := utf8.DecodeRuneInString(text[i:])
			if !isDomainChar(r) {
				break
			}
			i += n
		}
		if i == labelStart {
			break
		}
		end = i
		if i+1 < len(text) && text[i] == '.' {
			i++
			continue
		}
		break
	}
	return end
}

// maxAddressLiteral bounds an address literal (RFC 5321 4.1.3):
// "[IPv6:" and a full IPv6 address take 46 characters.
const maxAddressLiteral = 64

// literalEnd returns the end of the address literal starting at text[from]
// ("["): up to and with its "]", or, when it is not closed (cut short),
// the end of its characters; from when there is none.
func literalEnd(text string, from int) int {
	i := from + 1
	for ; i < len(text) && i <= from+maxAddressLiteral; i++ {
		c := text[i]
		switch {
		case c == ']':
			if i == from+1 {
				return from
			}
			return i + 1
		case isHex(c), 'g' <= c && c <= 'z', 'G' <= c && c <= 'Z', c == '.', c == ':', c == '-', c == '*':
			continue
		}
		break
	}
	if i == from+1 {
		return from
	}
	return i
}

// isAtext reports whether r may be part of a dot-atom local part.
func isAtext(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r]&atext != 0
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.So)
}

// isDomainChar reports whether r may be part of a domain label.
func isDomainChar(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r]&domainChar != 0
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N)
}

// Classes of ASCII bytes, as bits of asciiClass.
const (
	atext      = 1 << iota // may be part of a dot-atom local part
	domainChar             // may be part of a domain label
	escapeByte             // may start something decodeOnce decodes or drops
)

var asciiClass = func() (t [utf8.RuneSelf]byte) {
	for c := range t {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if alnum || strings.IndexByte("!#$%&'*+/=?^_`{|}~.-", byte(c)) >= 0 {
			t[c] |= atext
		}
		if alnum || c == '-' || c == '*' {
			t[c] |= domainChar
		}
		if strings.IndexByte("&%=\\<", byte(c)) >= 0 {
			t[c] |= escapeByte
		}
	}
	return t
}()

// maxRedactRounds bounds how often RedactText goes over a value, and
// maxDecodeLevels how many levels of nested encoding (%2540, &amp;#64;)
// one view decodes. Each round and level is one pass over the value, so
// RedactText takes time linear in len(s): at most maxRedactRounds × 2
// views × (maxDecodeLevels + 1) passes, each with constant work per byte
// and per match.
const (
	maxRedactRounds = 4
	maxDecodeLevels = 4
)

// RedactText obfuscates every address in s, a decoded value (a subject, a
// body, a file name, an address list entry), and returns the result.
//
// Addresses are looked for in what a reader or a browser would see, not
// only in the raw characters: HTML character references (bob&#64;x.test,
// &#x40;, &#00000064;, &commat;, also without the semicolon where HTML
// allows it), percent-escapes (carol%40x.test, also nested as %2540),
// quoted-printable left undecoded (bob=40x.test), \u0040 escapes, the
// full-width at sign, quoted local parts ("john doe"@x.test), address
// literals (bob@[192.168.1.20]) and addresses cut up by HTML tags
// (bob<span>@</span>x.test). The whole original span of a match, escapes
// and tags included, is replaced by the obfuscated address.
// RedactText(RedactText(s)) == RedactText(s), and a value that is already
// redacted is given back as it is, without a copy.
func RedactText(s string) string {
	if !mayHoldAddress(s) {
		return s
	}
	r := redactors.Get().(*redactor)
	defer r.release()
	for range maxRedactRounds {
		out := r.view(s, false)
		out = r.view(out, true)
		if out == s {
			break
		}
		s = out
	}
	return s
}

// mayHoldAddress reports whether s has an at sign or anything that may
// decode to one.
func mayHoldAddress(s string) bool {
	return strings.ContainsAny(s, "@&%=\\\uff20\ufe6b")
}

// redactor holds the buffers of RedactText, reused from one view, level
// and call to the next so that redacting a value allocates little more
// than its result.
type redactor struct {
	maps    [2]mapping // the decoded views' origins, used in turn
	text    strings.Builder
	out     []byte   // the redacted value being built
	addr    []byte   // one obfuscated address
	matches [][2]int // the addresses of one view
}

// mapping tells where each byte of a decoded text came from: byte i from
// the original bytes start[i] to end[i] (an escape decodes to bytes that
// all share its span).
type mapping struct{ start, end []int32 }

var redactors = sync.Pool{New: func() any { return new(redactor) }}

// maxPooledBuffer is the largest buffer (in elements) a redactor keeps
// between calls; a larger one, left by a long value, is dropped.
const maxPooledBuffer = 1 << 20

func (r *redactor) release() {
	if cap(r.maps[0].start) > maxPooledBuffer || cap(r.maps[1].start) > maxPooledBuffer ||
		cap(r.out) > maxPooledBuffer || cap(r.matches) > maxPooledBuffer/16 {
		return
	}
	redactors.Put(r)
}

// view decodes s (character references, percent, quoted-printable and \u
// escapes; and HTML tags dropped when stripTags), finds the addresses in
// the decoded text and replaces their original spans in s. It returns s
// itself when every address in it is already obfuscated.
func (r *redactor) view(s string, stripTags bool) string {
	d := decoded{text: s}
	for level := range maxDecodeLevels {
		next, changed := r.decodeOnce(d, stripTags, &r.maps[level%2])
		if !changed {
			break
		}
		d = next
	}
	r.matches = findAddresses(r.matches[:0], d.text)
	if len(r.matches) == 0 {
		return s
	}
	out := r.out[:0]
	changed := false
	last, prevEnd := 0, 0 // what is written of s; the end of the previous match's span
	for _, m := range r.matches {
		ds, de := m[0], m[1]
		from, to := d.startOf(ds), d.endOf(de-1)
		if from < prevEnd { // inside the span of the previous match's last escape
			from = prevEnd
		}
		if from >= to {
			continue
		}
		prevEnd = to
		r.addr = appendObfuscated(r.addr[:0], d.text[ds:de])
		if string(r.addr) == s[from:to] {
			continue // already obfuscated: s[from:to] stays as it is
		}
		out = append(out, s[last:from]...)
		out = append(out, r.addr...)
		last, changed = to, true
	}
	if !changed {
		return s
	}
	out = append(out, s[last:]...)
	r.out = out
	return string(out)
}

// decoded is a decoded view of an original string: byte i of text came
// from the original bytes start[i] to end[i]; nil start and end mean text
// is the original.
type decoded struct {
	text       string
	start, end []int32
}

// startOf and endOf give the original span of decoded byte i; without a
// mapping (nothing decoded yet) the text is the original.
func (d decoded) startOf(i int) int {
	if d.start == nil {
		return i
	}
	return int(d.start[i])
}

func (d decoded) endOf(i int) int {
	if d.end == nil {
		return i + 1
	}
	return int(d.end[i])
}

// decodeOnce decodes one level of escapes in d.text and, when stripTags,
// drops HTML tags and comments, into a new view whose mapping is written
// to into (which must not be d's). It reports whether anything changed;
// nothing is allocated or written until something does.
func (r *redactor) decodeOnce(d decoded, stripTags bool, into *mapping) (decoded, bool) {
	s := d.text
	b := &r.text
	started := false
	var starts, ends []int32
	// begin copies s[:i], unchanged, when the first escape is found at i.
	begin := func(i int) {
		started = true
		b.Reset()
		b.Grow(len(s))
		b.WriteString(s[:i])
		starts, ends = into.start[:0], into.end[:0]
		for j := range i {
			starts = append(starts, int32(d.startOf(j)))
			ends = append(ends, int32(d.endOf(j)))
		}
	}
	// emit writes decoded text that came from s[from:to].
	emit := func(text string, from, to int) {
		if !started {
			begin(from)
		}
		b.WriteString(text)
		st, en := int32(d.startOf(from)), int32(d.endOf(to-1))
		for range len(text) {
			starts = append(starts, st)
			ends = append(ends, en)
		}
	}
	var one [utf8.UTFMax]byte
	emitRune := func(r rune, from, to int) {
		n := utf8.EncodeRune(one[:], r)
		emit(string(one[:n]), from, to) // does not escape: no allocation
	}
	nextGT := -1 // index of the next '>' at or after a '<', cached
	for i := 0; i < len(s); {
		if !started { // skip what cannot start an escape
			for i < len(s) && s[i] < utf8.RuneSelf && asciiClass[s[i]]&escapeByte == 0 {
				i++
			}
			if i == len(s) {
				break
			}
		}
		c := s[i]
		switch {
		case c == '&':
			if text, r, n := charRef(s[i:]); n > 0 {
				if text == "" {
					emitRune(r, i, i+n)
				} else {
					emit(text, i, i+n)
				}
				i += n
				continue
			}
		case (c == '%' || c == '=') && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			// a percent-escape, or quoted-printable left undecoded
			one[0] = unhex(s[i+1])<<4 | unhex(s[i+2])
			emit(string(one[:1]), i, i+3) // a byte, not a rune: %C3%A9 is "é"
			i += 3
			continue
		case c == '=' && (strings.HasPrefix(s[i+1:], "\n") || strings.HasPrefix(s[i+1:], "\r\n")):
			// a quoted-printable soft line break decodes to nothing
			n := 2
			if s[i+1] == '\r' {
				n = 3
			}
			if !started {
				begin(i)
			}
			i += n
			continue
		case c == '\\' && i+5 < len(s) && s[i+1] == 'u' && isHex(s[i+2]) && isHex(s[i+3]) && isHex(s[i+4]) && isHex(s[i+5]):
			r := rune(unhex(s[i+2]))<<12 | rune(unhex(s[i+3]))<<8 | rune(unhex(s[i+4]))<<4 | rune(unhex(s[i+5]))
			emitRune(r, i, i+6)
			i += 6
			continue
		case c == '<' && stripTags && i+1 < len(s) && isTagStart(s[i+1]):
			if nextGT < i {
				nextGT = strings.IndexByte(s[i:], '>')
				if nextGT < 0 {
					nextGT = len(s) // no tag closes any more
				} else {
					nextGT += i
				}
			}
			if nextGT < len(s) {
				if !started {
					begin(i)
				}
				i = nextGT + 1 // the tag decodes to nothing
				continue
			}
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == '\uff20' || r == '\ufe6b' { // full-width and small at signs
				emit("@", i, i+n)
				i += n
				continue
			}
			if unicode.Is(unicode.Cf, r) { // invisible: soft hyphen, zero-width space, joiners, BOM
				if !started {
					begin(i)
				}
				i += n
				continue
			}
			if started {
				emit(s[i:i+n], i, i+n)
			}
			i += n
			continue
		}
		if started {
			b.WriteByte(c)
			starts = append(starts, int32(d.startOf(i)))
			ends = append(ends, int32(d.endOf(i)))
		}
		i++
	}
	if !started {
		return d, false
	}
	into.start, into.end = starts, ends
	return decoded{text: b.String(), start: starts, end: ends}, true
}

func isTagStart(c byte) bool {
	return c == '/' || c == '!' || c == '?' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// charRef decodes the HTML character reference at the start of s (which
// starts with '&'): numeric (&#64; &#x40;, with any number of digits and
// the semicolon optional, as browsers read them) or named (&commat;). It
// returns the decoded text, or "" and the decoded rune, and the length of
// the reference; n is 0 when s does not start with one.
func charRef(s string) (text string, r rune, n int) {
	if len(s) > 2 && s[1] == '#' {
		i, base := 2, 10
		if s[2] == 'x' || s[2] == 'X' {
			i, base = 3, 16
		}
		v, digits := 0, 0
		for ; i < len(s); i++ {
			c := s[i]
			if !(base == 10 && '0' <= c && c <= '9' || base == 16 && isHex(c)) {
				break
			}
			digits++
			if v <= utf8.MaxRune { // past it, the value stays out of range
				v = v*base + int(unhex(c))
			}
		}
		if digits == 0 {
			return "", 0, 0
		}
		if i < len(s) && s[i] == ';' {
			i++
		}
		if v == 0 || v > utf8.MaxRune || 0xD800 <= v && v <= 0xDFFF {
			return "", utf8.RuneError, i
		}
		return "", rune(v), i
	}
	end := strings.IndexByte(s[:min(len(s), 34)], ';') // the longest names have 31 characters
	if end < 2 {
		return "", 0, 0
	}
	ref := s[:end+1]
	switch ref { // the frequent ones, without html.UnescapeString's allocation
	case "&amp;":
		return "&", 0, end + 1
	case "&lt;":
		return "<", 0, end + 1
	case "&gt;":
		return ">", 0, end + 1
	case "&quot;":
		return `"`, 0, end + 1
	case "&commat;":
		return "@", 0, end + 1
	case "&period;":
		return ".", 0, end + 1
	}
	for _, c := range []byte(s[1:end]) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return "", 0, 0
		}
	}
	if out := html.UnescapeString(ref); out != ref {
		return out, 0, end + 1
	}
	return "", 0, 0
}

// Redact obfuscates every address in b, encoded JSON, and returns the
// result; b is not changed. Each string of the JSON (keys included) is
// decoded, passed through RedactText and encoded again, so valid JSON
// stays valid JSON and addresses hidden behind JSON escapes (\u0040) are
// found too. It is the last pass over every answer a guest gets, so that a
// new field that forgets its typed redaction still hides its addresses; a
// string the typed redaction has already seen comes out of RedactText
// unchanged and is left as it is. Input that is not JSON is treated as
// text.
func Redact(b []byte) []byte {
	if !json.Valid(b) {
		return []byte(RedactText(string(b)))
	}
	var out []byte // nil until something changes
	var enc *json.Encoder
	var buf bytes.Buffer
	last := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		start, end := i, i+1
		for end < len(b) && b[end] != '"' {
			if b[end] == '\\' {
				end++
			}
			end++
		}
		i = end
		lit := b[start : end+1]
		if !mayHoldAddress(string(lit)) { // no allocation
			continue
		}
		var s string
		if bytes.IndexByte(lit, '\\') < 0 {
			s = string(lit[1 : len(lit)-1])
		} else if err := json.Unmarshal(lit, &s); err != nil {
			continue
		}
		red := RedactText(s)
		if red == s {
			continue
		}
		if enc == nil {
			enc = json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
		}
		buf.Reset()
		if err := enc.Encode(red); err != nil {
			continue
		}
		out = append(out, b[last:start]...)
		out = append(out, bytes.TrimRight(buf.Bytes(), "\n")...)
		last = end + 1
	}
	if out == nil {
		return append([]byte(nil), b...)
	}
	return append(out, b[last:]...)
}
