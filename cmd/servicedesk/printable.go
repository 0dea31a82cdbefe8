package main

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What the CLI prints comes mostly from strangers: a subject, a sender, a
// file name, a server's answer. printable is the one helper every printer
// passes such text through, so that it cannot move the cursor, rewrite the
// screen or a row (CR, LF, ESC sequences), or reorder what the operator
// reads (bidi overrides, isolates and marks).

// printable makes s safe to print on one line of a terminal: tab, line
// breaks (CR, LF, CRLF, U+2028, U+2029) become a space; every other C0 and
// C1 control, DEL, bidi control and invalid UTF-8 byte becomes U+FFFD.
func printable(s string) string { return sanitize(s, false) }

// printableText is printable for multi-line text (a message body): a line
// break stays a line break, as "\n" (CRLF and a lone CR are made "\n").
func printableText(s string) string { return sanitize(s, true) }

func sanitize(s string, multiline bool) string {
	if isPlain(s) {
		return s
	}
	lineBreak := " "
	if multiline {
		lineBreak = "\n"
	}
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			b.WriteRune(utf8.RuneError) // an invalid byte: 0x9b alone is CSI to some terminals
		case r == '\r' && strings.HasPrefix(s[i+1:], "\n"):
			// CRLF is one line break: the LF writes it.
		case r == '\r', r == '\n', r == '\u2028', r == '\u2029':
			b.WriteString(lineBreak)
		case r == '\t':
			b.WriteByte(' ')
		case unicode.IsControl(r), isBidiControl(r):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isPlain reports whether s is printable ASCII, as nearly every field is:
// it is returned as it is.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// isBidiControl reports the characters that change the order in which a
// terminal shows text (Unicode's Bidi_Control property): the embeddings and
// overrides U+202A to U+202E, the isolates U+2066 to U+2069 and the marks
// U+200E, U+200F and U+061C.
func isBidiControl(r rune) bool {
	return unicode.Is(unicode.Bidi_Control, r)
}

// jsonForTerminal escapes in encoded JSON what encoding/json leaves raw
// but a terminal may obey: DEL, the C1 controls U+0080 to U+009F and the
// bidi controls (isBidiControl: U+202A to U+202E, U+2066 to U+2069,
// U+200E, U+200F, U+061C), which reorder what the operator reads
// (encoding/json escapes C0 and U+2028/U+2029 itself). They can only stand
// inside strings, where \u escapes mean the same: the data is unchanged.
func jsonForTerminal(b []byte) []byte {
	if bytes.IndexFunc(b, isRawTerminalControl) < 0 {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b))
	for _, r := range string(b) {
		if isRawTerminalControl(r) {
			fmt.Fprintf(&out, `\u%04x`, r)
			continue
		}
		out.WriteRune(r)
	}
	return out.Bytes()
}

func isRawTerminalControl(r rune) bool {
	return r == 0x7f || (r >= 0x80 && r <= 0x9f) || isBidiControl(r)
}
