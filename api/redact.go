package api

import (
	"bytes"
	"encoding/json"
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Obfuscate hides an address the way a guest sees it: the first two
// characters of the local part, "***", "@", the first two characters of the
// first domain label, "***" and the top-level domain:
// alice@customer.test -> al***@cu***.test. The quotes of a quoted local
// part are left out: "john doe"@customer.test -> jo***@cu***.test.
func Obfuscate(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return prefix(addr) + "***"
	}
	local, domain := addr[:at], addr[at+1:]
	if len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"' {
		local = strings.ReplaceAll(local[1:len(local)-1], `\`, "")
	}
	labels := strings.Split(domain, ".")
	out := prefix(local) + "***@" + prefix(labels[0]) + "***"
	if len(labels) > 1 {
		out += "." + labels[len(labels)-1]
	}
	return out
}

// prefix returns the first two characters (runes) of s, leaving out the
// stars of an earlier obfuscation.
func prefix(s string) string {
	s = strings.TrimRight(s, "*")
	n := 0
	for i := range s {
		if n == 2 {
			return s[:i]
		}
		n++
	}
	return s
}

// findAddresses returns the [start, end) offsets in text of everything
// that looks like an address, in order and not overlapping: a local part,
// "@", and a domain of one or more labels. The local part is an RFC 5322
// dot-atom (UTF-8 letters, marks, digits and symbols allowed, RFC 6531;
// not spaces, quotes or brackets) or a quoted string on one line
// ("john doe"@customer.test). "*" is allowed in the domain and the local
// part so that redacting twice gives the same text. It scans out from each
// "@", in time linear in len(text).
func findAddresses(text string) [][2]int {
	var out [][2]int
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
// of domain characters separated by single dots; from when there is none.
func domainEnd(text string, from int) int {
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

// isAtext reports whether r may be part of a dot-atom local part.
func isAtext(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
			strings.ContainsRune("!#$%&'*+/=?^_`{|}~.-", r)
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.So)
}

// isDomainChar reports whether r may be part of a domain label.
func isDomainChar(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '*'
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N)
}

// maxRedactRounds bounds how often RedactText goes over a value: each
// round decodes one more level of nested encoding (%2540, &amp;#64;).
const maxRedactRounds = 4

// RedactText obfuscates every address in s, a decoded value (a subject, a
// body, a file name, an address list entry), and returns the result.
//
// Addresses are looked for in what a reader or a browser would see, not
// only in the raw characters: HTML character references (bob&#64;x.test,
// &#x40;, &commat;, also without the semicolon where HTML allows it),
// percent-escapes (carol%40x.test, also nested as %2540), \u0040 escapes,
// the full-width at sign, quoted local parts ("john doe"@x.test) and
// addresses cut up by HTML tags (bob<span>@</span>x.test). The whole
// original span of a match, escapes and tags included, is replaced by the
// obfuscated address. RedactText(RedactText(s)) == RedactText(s).
func RedactText(s string) string {
	if !mayHoldAddress(s) {
		return s
	}
	for range maxRedactRounds {
		out := redactView(s, false)
		out = redactView(out, true)
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
	return strings.ContainsAny(s, "@&%\\\uff20\ufe6b")
}

// redactView decodes s (character references, percent and \u escapes; and
// HTML tags dropped when stripTags), finds the addresses in the decoded
// text and replaces their original spans in s.
func redactView(s string, stripTags bool) string {
	d := decoded{text: s}
	for range maxRedactRounds {
		next, changed := d.decodeOnce(stripTags)
		if !changed {
			break
		}
		d = next
	}
	matches := findAddresses(d.text)
	if len(matches) == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, m := range matches {
		ds, de := m[0], m[1]
		from, to := d.startOf(ds), d.endOf(de-1)
		if from < last { // inside the span of the previous match's last escape
			from = last
		}
		if from >= to {
			continue
		}
		b.WriteString(s[last:from])
		b.WriteString(Obfuscate(d.text[ds:de]))
		last = to
	}
	b.WriteString(s[last:])
	return b.String()
}

// decoded is a decoded view of an original string: byte i of text came
// from the original bytes start[i] to end[i] (an escape decodes to bytes
// that all share its span); nil start and end mean text is the original.
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
// drops HTML tags and comments. It reports whether anything changed.
func (d decoded) decodeOnce(stripTags bool) (decoded, bool) {
	s := d.text
	out := decoded{start: make([]int32, 0, len(s)), end: make([]int32, 0, len(s))}
	var b strings.Builder
	b.Grow(len(s))
	changed := false
	nextGT := -1 // index of the next '>' at or after a '<', cached
	emit := func(text string, from, to int) {
		b.WriteString(text)
		for range len(text) {
			out.start = append(out.start, int32(d.startOf(from)))
			out.end = append(out.end, int32(d.endOf(to-1)))
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '&':
			if r, n := charRef(s[i:]); n > 0 {
				emit(r, i, i+n)
				i += n
				changed = true
				continue
			}
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			emit(string([]byte{unhex(s[i+1])<<4 | unhex(s[i+2])}), i, i+3)
			i += 3
			changed = true
			continue
		case c == '\\' && i+5 < len(s) && s[i+1] == 'u' && isHex(s[i+2]) && isHex(s[i+3]) && isHex(s[i+4]) && isHex(s[i+5]):
			r := rune(unhex(s[i+2]))<<12 | rune(unhex(s[i+3]))<<8 | rune(unhex(s[i+4]))<<4 | rune(unhex(s[i+5]))
			emit(string(r), i, i+6)
			i += 6
			changed = true
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
				i = nextGT + 1 // the tag decodes to nothing
				changed = true
				continue
			}
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == '\uff20' || r == '\ufe6b' { // full-width and small at signs
				emit("@", i, i+n)
				i += n
				changed = true
				continue
			}
			if unicode.Is(unicode.Cf, r) { // invisible: soft hyphen, zero-width space, joiners, BOM
				i += n
				changed = true
				continue
			}
		}
		b.WriteByte(c)
		out.start = append(out.start, int32(d.startOf(i)))
		out.end = append(out.end, int32(d.endOf(i)))
		i++
	}
	if !changed {
		return d, false
	}
	out.text = b.String()
	return out, true
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
// starts with '&'): numeric (&#64; &#x40;, the semicolon optional as in
// HTML) or named (&commat;). It returns the decoded text and the length of
// the reference, or 0 when s does not start with one.
func charRef(s string) (string, int) {
	if len(s) > 2 && s[1] == '#' {
		i, base := 2, 10
		if s[2] == 'x' || s[2] == 'X' {
			i, base = 3, 16
		}
		v, digits := 0, 0
		for ; i < len(s) && digits < 8; i++ {
			c := s[i]
			if base == 10 && '0' <= c && c <= '9' || base == 16 && isHex(c) {
				v = v*base + int(unhex(c))
				digits++
				continue
			}
			break
		}
		if digits == 0 {
			return "", 0
		}
		if i < len(s) && s[i] == ';' {
			i++
		}
		if v == 0 || v > utf8.MaxRune || 0xD800 <= v && v <= 0xDFFF {
			return "\uFFFD", i
		}
		return string(rune(v)), i
	}
	end := strings.IndexByte(s[:min(len(s), 34)], ';') // the longest names have 31 characters
	if end < 2 {
		return "", 0
	}
	for _, c := range []byte(s[1:end]) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return "", 0
		}
	}
	ref := s[:end+1]
	if out := html.UnescapeString(ref); out != ref {
		return out, end + 1
	}
	return "", 0
}

// Redact obfuscates every address in b, encoded JSON, and returns the
// result; b is not changed. Each string of the JSON (keys included) is
// decoded, passed through RedactText and encoded again, so valid JSON
// stays valid JSON and addresses hidden behind JSON escapes (\u0040) are
// found too. It is the last pass over every answer a guest gets, so that a
// new field that forgets its typed redaction still hides its addresses.
// Input that is not JSON is treated as text.
func Redact(b []byte) []byte {
	if !json.Valid(b) {
		return []byte(RedactText(string(b)))
	}
	var out []byte // nil until something changes
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
		if !mayHoldAddress(string(lit)) {
			continue
		}
		var s string
		if err := json.Unmarshal(lit, &s); err != nil {
			continue
		}
		red := RedactText(s)
		if red == s {
			continue
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
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
