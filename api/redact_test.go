package api

import (
	"encoding/json"
	"testing"
)

func TestObfuscate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"plain", "alice@customer.test", "al***@cu***.test"},
		{"subdomain keeps only first label and tld", "bob.smith@mail.customer.co.uk", "bo***@ma***.uk"},
		{"short local part", "a@b.test", "a***@b***.test"},
		{"single-label domain", "root@localhost", "ro***@lo***"},
		{"utf-8 runes, not bytes", "jürgen@müller.test", "jü***@mü***.test"},
		{"no at sign", "alice", "al***"},
		{"already obfuscated is stable", "al***@cu***.test", "al***@cu***.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Obfuscate(tt.in); got != tt.want {
				t.Errorf("Obfuscate(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string // a Go string, encoded to JSON before redaction
		want string // the decoded string after redaction
	}{
		{"bare address", "alice@customer.test", "al***@cu***.test"},
		{"display name", "Alice <alice@customer.test>", "Alice <al***@cu***.test>"},
		{"after newline escape", "Hi\nalice@customer.test\n", "Hi\nal***@cu***.test\n"},
		{"after escaped quote", `"alice@customer.test"`, `"al***@cu***.test"`},
		{"after escaped backslash", `\alice@customer.test`, `\al***@cu***.test`},
		{"after backslash and newline", "\\\nalice@customer.test", "\\\nal***@cu***.test"},
		{"after unicode escape", "\u2028alice@customer.test", "\u2028al***@cu***.test"},
		{"after tab escape", "\tbob@x.test", "\tbo***@x***.test"},
		{"trailing dot ends sentence", "write to bob@x.test.", "write to bo***@x***.test."},
		{"plus sub-address", "support+r1-2s-abc@example.test", "su***@ex***.test"},
		{"several", "a1@x.test, b2@y.test", "a1***@x***.test, b2***@y***.test"},
		{"message-id", "<abc123@mail.customer.test>", "<ab***@ma***.test>"},
		{"mailto link in html", `<a href="mailto:alice@customer.test">x</a>`, `<a href="mailto:al***@cu***.test">x</a>`},
		{"no address", "no at sign here, nor @ alone", "no at sign here, nor @ alone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			enc, err := json.Marshal(map[string]string{"v": tt.in})
			if err != nil {
				t.Fatal(err)
			}
			red := Redact(enc)
			var got map[string]string
			if err := json.Unmarshal(red, &got); err != nil {
				t.Fatalf("Redact(%s) = %s: not valid JSON any more: %v", enc, red, err)
			}
			if got["v"] != tt.want {
				t.Errorf("Redact of %q = %q, want %q", tt.in, got["v"], tt.want)
			}
			if again := Redact(red); string(again) != string(red) {
				t.Errorf("Redact is not idempotent: %s then %s", red, again)
			}
		})
	}
}
