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
		{"short local part: nothing of a part of one character", "a@b.test", "***@***.test"},
		{"parts of two characters: the first only", "ab@cd.io", "a***@c***.io"},
		{"parts of three characters: the first only", "bob@abc.io", "b***@a***.io"},
		{"four characters: two", "dave@cust.io", "da***@cu***.io"},
		{"quoted local part", `"john doe"@customer.test`, "jo***@cu***.test"},
		{"quoted short local part, escapes not counted", `"\a\b"@customer.test`, "a***@cu***.test"},
		{"address literal", "bob@[192.168.1.20]", "b***@[***]"},
		{"IPv6 address literal", "bob@[IPv6:2001:db8::1]", "b***@[***]"},
		{"already obfuscated short parts are stable", "a***@c***.io", "a***@c***.io"},
		{"already obfuscated empty parts are stable", "***@***.test", "***@***.test"},
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
		{"after tab escape", "\tbob@x.test", "\tb***@***.test"},
		{"trailing dot ends sentence", "write to bob@x.test.", "write to b***@***.test."},
		{"plus sub-address", "support+r1-2s-abc@example.test", "su***@ex***.test"},
		{"several", "a1@x.test, b2@y.test", "a***@***.test, b***@***.test"},
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

func TestRedactText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"plain", "mail alice@customer.test now", "mail al***@cu***.test now"},
		{"quoted local part", `"john doe"@customer.test`, "jo***@cu***.test"},
		{"quoted local part with escaped quote", `"john \"jd\" doe"@customer.test`, "jo***@cu***.test"},
		{"quoted local part in a sentence", `write to "john doe"@customer.test, "quoted" words stay`, `write to jo***@cu***.test, "quoted" words stay`},
		{"decimal character reference", "bob&#64;customer.test", "b***@cu***.test"},
		{"decimal reference without semicolon", "bob&#64customer.test", "b***@cu***.test"},
		{"hex character reference", "bob&#x40;customer.test", "b***@cu***.test"},
		{"hex reference, capital X, zero padded", "bob&#X0040;customer.test", "b***@cu***.test"},
		{"named reference", "bob&commat;customer.test", "b***@cu***.test"},
		{"references in local part and domain", "&#98;ob&#64;customer&period;test", "b***@cu***.test"},
		{"percent escape", "carol%40customer.test", "ca***@cu***.test"},
		{"percent escape, lower case", "carol%40customer%2etest", "ca***@cu***.test"},
		{"nested percent escape", "carol%2540customer.test", "ca***@cu***.test"},
		{"escaped reference", "dave&amp;#64;customer.test", "da***@cu***.test"},
		{"mailto with percent escape", `<a href="mailto:carol%40customer.test">x</a>`, `<a href="mailto:ca***@cu***.test">x</a>`},
		{"unicode escape", `erin\u0040customer.test`, "er***@cu***.test"},
		{"full-width at sign", "frank\uff20customer.test", "fr***@cu***.test"},
		{"zero-width space before the at sign", "grace\u200b@customer.test", "gr***@cu***.test"},
		{"soft hyphen in the domain", "grace@cust\u00adomer.test", "gr***@cu***.test"},
		{"at sign in its own tag", "heidi<span>@</span>customer.test", "he***@cu***.test"},
		{"comment inside the address", "heidi@<!-- x -->customer.test", "he***@cu***.test"},
		{"address in an attribute stays in its tag", `<img alt="ivan@customer.test" src="x.png">`, `<img alt="iv***@cu***.test" src="x.png">`},
		{"tags around stay", "<b>ivan@customer.test</b>", "<b>iv***@cu***.test</b>"},
		{"escaped angle brackets", "&lt;judy&#64;customer.test&gt;", "&lt;ju***@cu***.test&gt;"},
		{"display name", "Alice <alice@customer.test>", "Alice <al***@cu***.test>"},
		{"unicode space is not part of the address", "\u2028alice@customer.test", "\u2028al***@cu***.test"},
		{"typographic quotes are not part of it", "“alice@customer.test”", "“al***@cu***.test”"},
		{"utf-8 local part and domain", "jürgen@müller.test", "jü***@mü***.test"},
		{"already obfuscated", "al***@cu***.test", "al***@cu***.test"},
		{"no address", "50% off & more @ home", "50% off & more @ home"},
		{"equals signs that are not quoted-printable", "a=b, x == y, color=#fff", "a=b, x == y, color=#fff"},
		{"decimal reference with many leading zeros", "bob&#00000000064;customer.test", "b***@cu***.test"},
		{"hex reference with many leading zeros", "bob&#x000000000040;customer.test", "b***@cu***.test"},
		{"reference out of range is U+FFFD, not an at sign", "bob&#99999999999999999999;customer.test", "bob&#99999999999999999999;customer.test"},
		{"address literal", "write to bob@[192.168.1.20] now", "write to b***@[***] now"},
		{"address literal, cut short", "bob@[192.168.1", "b***@[***]"},
		{"quoted-printable left undecoded", "bob=40customer.test", "b***@cu***.test"},
		{"quoted-printable, lower case and in the domain", "carol=40customer=2etest", "ca***@cu***.test"},
		{"quoted-printable soft line break", "carol@cust=\r\nomer.test", "ca***@cu***.test"},
		{"quoted-printable in an encoded word", "=?utf-8?q?bob=40customer.test?=", "=?***@cu***.test?="},
		{"percent-escaped UTF-8 stays UTF-8", "j%C3%BCrgen%40customer.test", "jü***@cu***.test"},
		{"short address", "mail ab@cd.io", "mail a***@c***.io"},
		{"a reference that is not one", "AT&T; 100%; &#; &#x; &nosuch;", "AT&T; 100%; &#; &#x; &nosuch;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := RedactText(tt.in)
			if got != tt.want {
				t.Errorf("RedactText(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := RedactText(got); again != got {
				t.Errorf("RedactText is not idempotent: %q, then %q", got, again)
			}
			// The same value inside JSON, as the last pass sees it.
			enc, _ := json.Marshal(map[string]string{"v": tt.in})
			var v map[string]string
			if err := json.Unmarshal(Redact(enc), &v); err != nil {
				t.Fatalf("Redact(%s) is not valid JSON any more: %v", enc, err)
			}
			if v["v"] != tt.want {
				t.Errorf("Redact of %s gives %q, want %q", enc, v["v"], tt.want)
			}
		})
	}
}

func TestRedactJSONEscapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"unicode-escaped at sign", `{"v":"bob\u0040customer.test"}`, `{"v":"b***@cu***.test"}`},
		{"escaped quotes of a quoted local part", `{"v":"\"john doe\"@customer.test"}`, `{"v":"jo***@cu***.test"}`},
		{"string starting with an at sign keeps the structure", `["x","@customer.test",1]`, `["x","@customer.test",1]`},
		{"keys too", `{"bob@customer.test":true}`, `{"b***@cu***.test":true}`},
		{"numbers and literals untouched", `{"n":12,"b":false,"z":null,"v":"a@b.test"}`, `{"n":12,"b":false,"z":null,"v":"***@***.test"}`},
		{"not JSON is text", "bob@customer.test", "b***@cu***.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := string(Redact([]byte(tt.in)))
			if got != tt.want {
				t.Errorf("Redact(%s) = %s, want %s", tt.in, got, tt.want)
			}
			if again := string(Redact([]byte(got))); again != got {
				t.Errorf("Redact is not idempotent: %s, then %s", got, again)
			}
		})
	}
}

func FuzzRedactText(f *testing.F) {
	for _, s := range []string{"bob&#64;customer.test", `"john doe"@customer.test`, "a%2540b.test", "x<i>@</i>y.test", "&lt;a@b&gt;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := RedactText(s)
		if twice := RedactText(once); twice != once {
			t.Errorf("not idempotent: %q -> %q -> %q", s, once, twice)
		}
		enc, _ := json.Marshal(s)
		if red := Redact(enc); !json.Valid(red) {
			t.Errorf("Redact(%s) = %s, not JSON", enc, red)
		}
	})
}
