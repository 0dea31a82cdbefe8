package ingest

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// utf7Charsets are the names of UTF-7 (RFC 2152), which old Outlook
// versions put in encoded words and golang.org/x/text does not decode.
var utf7Charsets = map[string]bool{"utf-7": true, "utf7": true, "unicode-1-1-utf-7": true, "csunicode11utf7": true}

// decodeUTF7 decodes UTF-7 text (RFC 2152) to UTF-8 in one pass, the
// output no longer than twice the input. "+" opens a run of modified
// base64 (no padding) holding UTF-16 code units, closed by "-" (which is
// dropped) or any other character that is not base64; "+-" is a plus
// sign. ok is false for input that is not UTF-7: a byte over 127, a run
// whose leftover bits are not zero, or an unpaired surrogate.
func decodeUTF7(data []byte) (string, bool) {
	var b strings.Builder
	b.Grow(len(data))
	for i := 0; i < len(data); {
		c := data[i]
		if c >= utf8.RuneSelf {
			return "", false
		}
		if c != '+' {
			b.WriteByte(c)
			i++
			continue
		}
		i++
		if i < len(data) && data[i] == '-' {
			b.WriteByte('+')
			i++
			continue
		}
		var (
			bits  uint32
			nbits uint
			units []uint16
		)
		for ; i < len(data); i++ {
			v := base64Value(data[i])
			if v < 0 {
				break
			}
			bits = bits<<6 | uint32(v)
			nbits += 6
			if nbits >= 16 {
				nbits -= 16
				units = append(units, uint16(bits>>nbits))
				bits &= 1<<nbits - 1
			}
		}
		if nbits >= 6 || bits != 0 {
			return "", false
		}
		for _, r := range utf16.Decode(units) {
			if r == utf8.RuneError {
				return "", false
			}
			b.WriteRune(r)
		}
		if i < len(data) && data[i] == '-' {
			i++
		}
	}
	return b.String(), true
}

func base64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}
