package ticket

import (
	"unicode"
	"unicode/utf8"
)

// HiddenRune reports whether r must not appear in a file name shown to
// people: control characters and invisible format characters (Unicode
// category Cf), among them the bidi controls U+200E, U+200F, U+061C,
// U+202A-U+202E and U+2066-U+2069 that can make "invoice\u202Efdp.exe"
// look like "invoiceexe.pdf".
func HiddenRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// TruncateUTF8 cuts s to at most n bytes without splitting a character.
func TruncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
