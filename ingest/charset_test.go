package ingest

import (
	"strings"
	"testing"

	"golang.org/x/text/encoding/charmap"
)

// TestParseCharsets states when Parse trusts a part's declared charset
// and when it falls back to detection.
func TestParseCharsets(t *testing.T) {
	t.Parallel()
	german := strings.Repeat("Grüße aus München, die Lieferung für Straße zwölf ist überfällig. ", 4)
	latin1, err := charmap.ISO8859_1.NewEncoder().String(german)
	if err != nil {
		t.Fatalf("encode ISO-8859-1: %v", err)
	}
	mail := func(contentType, body string) []byte {
		hdr := "From: a@customer.test\r\nTo: support@acme.test\r\nSubject: s\r\nMessage-ID: <c@customer.test>\r\nMIME-Version: 1.0\r\n"
		if contentType != "" {
			hdr += "Content-Type: " + contentType + "\r\nContent-Transfer-Encoding: 8bit\r\n"
		}
		return []byte(hdr + "\r\n" + body + "\r\n")
	}
	tests := []struct {
		name, contentType, body string
	}{
		{"a declared charset that fits is used as declared", "text/plain; charset=iso-8859-1", latin1},
		{"UTF-8 declared as US-ASCII is detected", "text/plain; charset=us-ascii", german},
		{"ISO-8859-1 declared as UTF-8 falls back to detection, then Windows-1252", "text/plain; charset=utf-8", latin1},
		{"an unknown charset falls back to detection, then Windows-1252", "text/plain; charset=x-no-such-charset", latin1},
		{"8-bit text without a declaration is detected", "", latin1},
		{"UTF-8 without a declaration is detected", "", german},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := Parse(mail(tt.contentType, tt.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			wantContains(t, "Text", m.Text, "Grüße aus München")
		})
	}
}
