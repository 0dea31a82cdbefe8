package ingest

import "testing"

// TestDecodeUTF7 states how UTF-7 (RFC 2152) text decodes, the examples
// of the RFC first.
func TestDecodeUTF7(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"RFC 2152: A<NOT IDENTICAL TO><ALPHA>.", "A+ImIDkQ.", "A\u2262\u0391.", true},
		{"RFC 2152: Hi Mom -<WHITE SMILING FACE>-!", "Hi Mom -+Jjo--!", "Hi Mom -\u263a-!", true},
		{"RFC 2152: the Japanese word nihongo", "+ZeVnLIqe-", "日本語", true},
		{"plus minus is a plus sign", "1 +- 1 = 2", "1 + 1 = 2", true},
		{"a run ends at a character that is not base64", "Gr+APwA3w-e aus M+APw-nchen", "Grüße aus München", true},
		{"a surrogate pair is one character", "+2D3eAA-", "\U0001F600", true},
		{"plain ASCII is itself", "Hello", "Hello", true},
		{"an 8-bit byte is not UTF-7", "Gr\xfc\xdfe", "", false},
		{"leftover bits that are not zero are not UTF-7", "+AP3-", "", false},
		{"an unpaired surrogate is not UTF-7", "+2D0-", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := decodeUTF7([]byte(tt.in))
			if got != tt.want || ok != tt.ok {
				t.Fatalf("decodeUTF7(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}
