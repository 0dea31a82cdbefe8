package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

func TestPrintable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, line, text string
	}{
		{"plain ASCII", "Printer on fire", "Printer on fire", "Printer on fire"},
		{"accents and CJK pass", "Café – 打印机", "Café – 打印机", "Café – 打印机"},
		{"a real U+FFFD stays", "a\uFFFDb", "a\uFFFDb", "a\uFFFDb"},
		{"CRLF", "a\r\nb", "a b", "a\nb"},
		{"lone CR rewrites the line", "ok\rFAIL", "ok FAIL", "ok\nFAIL"},
		{"LF", "a\nb", "a b", "a\nb"},
		{"tab", "a\tb", "a b", "a b"},
		{"line and paragraph separators", "a\u2028b\u2029c", "a b c", "a\nb\nc"},
		{"ESC sequence", "\x1b[31mred\x1b[0m", "\uFFFD[31mred\uFFFD[0m", "\uFFFD[31mred\uFFFD[0m"},
		{"OSC 52 clipboard write", "\x1b]52;c;ZXZpbA==\x07", "\uFFFD]52;c;ZXZpbA==\uFFFD", "\uFFFD]52;c;ZXZpbA==\uFFFD"},
		{"NUL, BEL, BS, VT, FF", "a\x00\x07\x08\x0b\x0cb", "a\uFFFD\uFFFD\uFFFD\uFFFD\uFFFDb", "a\uFFFD\uFFFD\uFFFD\uFFFD\uFFFDb"},
		{"DEL", "a\x7fb", "a\uFFFDb", "a\uFFFDb"},
		{"C1 CSI as UTF-8", "a\u009b31mb", "a\uFFFD31mb", "a\uFFFD31mb"},
		{"C1 NEL", "a\u0085b", "a\uFFFDb", "a\uFFFDb"},
		{"raw 0x9b byte (invalid UTF-8)", "a\x9b31mb", "a\uFFFD31mb", "a\uFFFD31mb"},
		{"right-to-left override", "invoice\u202Egpj.exe", "invoice\uFFFDgpj.exe", "invoice\uFFFDgpj.exe"},
		{"embeddings and pop", "\u202A\u202B\u202C\u202D", "\uFFFD\uFFFD\uFFFD\uFFFD", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"isolates", "\u2066\u2067\u2068\u2069", "\uFFFD\uFFFD\uFFFD\uFFFD", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"marks", "\u200E\u200F\u061C", "\uFFFD\uFFFD\uFFFD", "\uFFFD\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := printable(tt.in); got != tt.line {
				t.Errorf("printable(%q) = %q; want %q", tt.in, got, tt.line)
			}
			if got := printableText(tt.in); got != tt.text {
				t.Errorf("printableText(%q) = %q; want %q", tt.in, got, tt.text)
			}
		})
	}
}

// forged is a subject that, printed as it is, forges a second row and
// colours and reverses what follows.
const forged = "a\r\nacme#99 forged\x1b[31m\u202Eevil"

// assertNoControls fails if out holds ESC, CR, a C1 control or a bidi
// control.
func assertNoControls(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range out {
		if r == '\x1b' || r == '\r' || (r >= 0x80 && r <= 0x9f) || isBidiControl(r) {
			t.Errorf("%s holds %U:\n%q", what, r, out)
			return
		}
	}
}

func TestPrintersCannotBeForged(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	tk := ticket.Ticket{Ref: "acme#1", Status: ticket.StatusOpen, Requester: "eve@evil.test\u202E", Subject: forged,
		Participants: []string{"a@b.test\x1b[2J"}, CreatedAt: created,
		Messages: []ticket.Message{{Direction: "inbound", Kind: "email", From: "eve@evil.test", MessageID: "<x\r\n@y>",
			Text: "line one\r\nline two\x1b[1A\x1b[2K\u2067", CreatedAt: created,
			Attachments: []ticket.Attachment{{ID: 1, Filename: "invoice\u202Egpj.exe", ContentType: "text/plain\n"}}}}}

	t.Run("tickets list: one row per ticket", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		if err := printTickets(&out, []ticket.Ticket{tk}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 2 { // the header and the one ticket
			t.Errorf("tickets list printed %d lines; want 2 (header, one ticket):\n%s", len(lines), out.String())
		}
		assertNoControls(t, "tickets list", out.String())
		if !strings.Contains(lines[len(lines)-1], "acme#99 forged") {
			t.Errorf("the subject's text is gone from its row: %q", lines[len(lines)-1])
		}
	})
	t.Run("tickets show: the message keeps its lines, nothing else", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		if err := printTicket(&out, tk); err != nil {
			t.Fatal(err)
		}
		assertNoControls(t, "tickets show", out.String())
		first := strings.SplitN(out.String(), "\n", 2)[0]
		if !strings.Contains(first, "acme#99 forged") || !strings.HasPrefix(first, "acme#1  [open]") {
			t.Errorf("the header line is %q; want the whole subject on it", first)
		}
		if !strings.Contains(out.String(), "line one\nline two") {
			t.Errorf("the message's lines are gone:\n%s", out.String())
		}
	})
	t.Run("inbound list", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		rows := []ticket.Inbound{{ID: 1, Project: "acme", From: "eve@evil.test\n", Subject: forged, Reason: "bad\x1b[0m"}}
		if err := printInbound(&out, rows); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out.String(), "\n"); n != 2 {
			t.Errorf("inbound list printed %d lines; want 2:\n%s", n, out.String())
		}
		assertNoControls(t, "inbound list", out.String())
	})
	t.Run("deadletters list", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		dls := []ticket.DeadLetter{{ID: 1, Kind: "inbound", Project: "acme", Address: "eve@evil.test", MessageID: "<a\r\nb>", Reason: forged}}
		if err := printDeadLetters(&out, dls); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out.String(), "\n"); n != 2 {
			t.Errorf("deadletters list printed %d lines; want 2:\n%s", n, out.String())
		}
		assertNoControls(t, "deadletters list", out.String())
	})
}

// TestJSONOutputIsEscaped checks --json: encoding/json escapes C0 controls
// and U+2028/U+2029, printJSON escapes DEL, C1 and the bidi controls as
// well, and the data read back is the data written (bidi characters
// included).
func TestJSONOutputIsEscaped(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, escaped string }{
		{"forged row, colour and override", forged, `\u202e`},
		{"line and paragraph separators", "a\u2028b\u2029c", `\u2028`},
		{"DEL and C1", "a\x7fb\u009bc\u0085", `\u009b`},
		{"right-to-left override in a file name", "invoice\u202Egpj.exe", `invoice\u202egpj.exe`},
		{"embeddings and pop", "\u202A\u202B\u202C\u202D", `\u202a\u202b\u202c\u202d`},
		{"isolates", "\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
		{"marks", "\u200E\u200F\u061C", `\u200e\u200f\u061c`},
		{"other text stays raw", "Café – 打印机 \u200b", "Café – 打印机 \u200b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := map[string]string{"subject": tt.in}
			var out bytes.Buffer
			c := &cli{stdout: &out}
			if err := c.printJSON(in); err != nil {
				t.Fatal(err)
			}
			for _, r := range out.String() {
				if r == '\x1b' || r == '\r' || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u2028' || r == '\u2029' || isBidiControl(r) {
					t.Fatalf("--json output holds %U raw:\n%q", r, out.String())
				}
			}
			if !strings.Contains(out.String(), tt.escaped) {
				t.Errorf("--json output %q lacks %q", out.String(), tt.escaped)
			}
			var back map[string]string
			if err := json.Unmarshal(out.Bytes(), &back); err != nil || back["subject"] != in["subject"] {
				t.Fatalf("--json output reads back as %q, %v; want %q", back["subject"], err, in["subject"])
			}
		})
	}
}
