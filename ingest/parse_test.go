package ingest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the parser's output")

// deskAddresses are the desk addresses the corpus is written against.
var deskAddresses = []string{"support@acme.test", "help@other.test"}

// golden is what the corpus test pins down for each testdata/*.eml.
type golden struct {
	From        string           `json:"from"`
	FromName    string           `json:"from_name,omitempty"`
	ReplyTo     []string         `json:"reply_to,omitempty"`
	To          []string         `json:"to"`
	Cc          []string         `json:"cc,omitempty"`
	Forwarded   []string         `json:"forwarded,omitempty"`
	Subject     string           `json:"subject"`
	Date        string           `json:"date,omitempty"`
	MessageID   string           `json:"message_id"`
	InReplyTo   []string         `json:"in_reply_to,omitempty"`
	References  []string         `json:"refs,omitempty"`
	TextPrefix  string           `json:"text_prefix"`
	HTML        bool             `json:"has_html"`
	Attachments []goldenAttached `json:"attachments,omitempty"`
	Class       Class            `json:"class"`
	Reason      string           `json:"reason"`
	Bounce      *goldenBounce    `json:"bounce_original,omitempty"`
	Warnings    []string         `json:"warnings,omitempty"`
}

type goldenAttached struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Inline      bool   `json:"inline,omitempty"`
	ContentID   string `json:"content_id,omitempty"`
}

type goldenBounce struct {
	MessageID  string   `json:"message_id"`
	Recipients []string `json:"recipients"`
}

func goldenOf(m *Mail) golden {
	g := golden{
		From: m.From, FromName: m.FromName, ReplyTo: m.ReplyTo, To: m.To, Cc: m.Cc, Forwarded: m.Forwarded,
		Subject: m.Subject, MessageID: m.MessageID, InReplyTo: m.InReplyTo, References: m.References,
		HTML: m.HTML != "", Warnings: m.Warnings,
	}
	if !m.Date.IsZero() {
		g.Date = m.Date.UTC().Format(time.RFC3339)
	}
	text := []rune(strings.TrimSpace(strings.ReplaceAll(m.Text, "\r\n", "\n")))
	if len(text) > 80 {
		text = text[:80]
	}
	g.TextPrefix = string(text)
	for _, a := range m.Attachments {
		g.Attachments = append(g.Attachments, goldenAttached{
			Name: a.Filename, ContentType: a.ContentType, Size: a.Size, SHA256: a.SHA256, Inline: a.Inline, ContentID: a.ContentID,
		})
	}
	g.Class, g.Reason = Classify(m, deskAddresses)
	if g.Class == ClassBounce {
		id, rcpts := BounceOriginal(m)
		g.Bounce = &goldenBounce{MessageID: id, Recipients: rcpts}
	}
	return g
}

func corpus(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		t.Fatalf("glob corpus: %v", err)
	}
	if len(files) < 16 {
		t.Fatalf("corpus has %d messages, want at least 16", len(files))
	}
	return files
}

// TestParseCorpus parses every testdata/*.eml and compares the result with
// testdata/<name>.golden.json. Run with -update to rewrite the goldens, then
// review the diff.
func TestParseCorpus(t *testing.T) {
	t.Parallel()
	for _, file := range corpus(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".eml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("read %s: %v", file, err)
			}
			m, err := Parse(raw)
			if err != nil {
				t.Fatalf("Parse(%s) failed: %v; want every corpus message to parse", name, err)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(goldenOf(m)); err != nil {
				t.Fatalf("marshal golden: %v", err)
			}
			got := buf.Bytes()
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatalf("write golden: %v", err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden %s (run go test -update to create it): %v", path, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("parsed %s differs from %s\n--- got\n%s\n--- want\n%s", name, path, got, want)
			}
		})
	}
}

// TestParseSpec states the rules the goldens encode, one by one, so that a
// regenerated golden cannot silently accept a regression of them.
func TestParseSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file  string
		check func(t *testing.T, m *Mail)
	}{
		{"outlook.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "From", m.From, "anna.meyer@customer.test")
			wantEqual(t, "FromName", m.FromName, "Meyer, Anna")
			wantList(t, "Cc", m.Cc, "bob@customer.test", "support@acme.test")
			wantContains(t, "Text (ISO-8859-1 quoted-printable)", m.Text, "Grüße")
		}},
		{"gmail.eml", func(t *testing.T, m *Mail) {
			wantList(t, "Forwarded (Delivered-To)", m.Forwarded, "support@acme.test")
			wantContains(t, "Text from text/plain", m.Text, "€ is fine")
			wantEqual(t, "has HTML", m.HTML != "", true)
		}},
		{"apple-mail.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Subject", m.Subject, "Café machine – broken again")
			wantEqual(t, "FromName", m.FromName, "Zoë Dupont")
			wantList(t, "To", m.To, "support+facilities@acme.test")
		}},
		{"iso-8859-1.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Subject", m.Subject, "Überweisung für März")
			wantEqual(t, "FromName", m.FromName, "Jörg Müller")
			wantContains(t, "Text", m.Text, "Überweisung für März")
		}},
		{"raw-8bit-encoded-word.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Subject (raw 8-bit inside encoded word)", m.Subject, "Frösche im Brötchen")
			wantEqual(t, "FromName (raw 8-bit, declared charset)", m.FromName, "Fränzi Bäcker")
			wantEqual(t, "From (lower-cased)", m.From, "fraenzi@baeckerei.test")
			wantContains(t, "Text", m.Text, "Brötchen")
		}},
		{"shift-jis.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Subject", m.Subject, "請求書について")
			wantEqual(t, "FromName", m.FromName, "田中太郎")
			wantContains(t, "Text", m.Text, "請求書の金額が違います")
		}},
		{"koi8-r.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Subject", m.Subject, "Проблема с доступом")
			wantContains(t, "Text", m.Text, "не могу войти")
		}},
		{"mbox-from-line.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "From", m.From, "ivy@mbox.test")
			wantEqual(t, "MessageID", m.MessageID, "<mbox-1@mbox.test>")
			wantContains(t, "Warnings", strings.Join(m.Warnings, "|"), "mbox From_ line")
		}},
		{"garbage-header.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Subject (after the garbage line)", m.Subject, "Header block with garbage")
			wantContains(t, "Text", m.Text, "garbage line")
			wantContains(t, "Warnings", strings.Join(m.Warnings, "|"), "dropped malformed header line")
		}},
		{"malformed-mime.eml", func(t *testing.T, m *Mail) {
			wantContains(t, "Text", m.Text, "never closed")
			if len(m.Attachments) != 1 || m.Attachments[0].Filename != "log.txt" {
				t.Errorf("Attachments = %+v, want log.txt kept from the unterminated multipart", m.Attachments)
			}
		}},
		{"utf7-encoded-word.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Subject (UTF-7 encoded words, old Outlook)", m.Subject, "Grüße aus München")
		}},
		{"attachment-only-image.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Text of a mail that is one attachment", m.Text, "")
			wantList(t, "Attachments (the single part itself)", attachmentNames(m), "scan.png")
		}},
		{"attachment-only-csv.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Subject (UTF-7, base64)", m.Subject, "Printer log ä")
			wantEqual(t, "Text of a mail that is one text attachment", m.Text, "")
			wantList(t, "Attachments (the single part itself)", attachmentNames(m), "pages.csv")
		}},
		{"malformed-disposition.eml", func(t *testing.T, m *Mail) {
			wantList(t, "Attachments (filename on an unindented line; unquoted with a space)", attachmentNames(m),
				"invoice 2023-01.pdf", "credit note.pdf")
		}},
		{"malformed-dispositions.eml", func(t *testing.T, m *Mail) {
			wantList(t, "Attachments (every malformed Content-Disposition names its file)", attachmentNames(m),
				"a1.pdf", "a2.pdf", "a3.pdf", "a4.pdf", "a5.pdf", "a6 report.pdf", "a7.pdf", "a8.pdf", "a9.pdf", "a10.pdf", "a11.pdf")
		}},
		{"pgp-signed.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Text (the signed part)", strings.TrimSpace(m.Text), "Please reset my password.")
			wantList(t, "Attachments (the OpenPGP signature kept)", attachmentNames(m), "signature.asc")
		}},
		{"smime-signed.eml", func(t *testing.T, m *Mail) {
			wantList(t, "Attachments (the S/MIME signature kept)", attachmentNames(m), "smime.p7s")
		}},
		{"alternative-non-text.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "Text (the text/plain alternative)", strings.TrimSpace(m.Text), "Let us meet on Monday.")
			wantList(t, "Attachments (non-text alternatives kept)", attachmentNames(m), "part-3.ics", "part-4.png")
		}},
		{"no-message-id.eml", func(t *testing.T, m *Mail) {
			wantEqual(t, "MessageID", m.MessageID, "")
			wantEqual(t, "From", m.From, "kim@old-mailer.test")
		}},
		{"reply-comma-references.eml", func(t *testing.T, m *Mail) {
			wantList(t, "References (comma-joined, no whitespace)", m.References,
				"<AM0PR07MB4456A1B2C3D4E5F6@AM0PR07MB4456.eurprd07.prod.outlook.test>",
				"<notify-42@acme.test>", "<r1-c-abcdefghijklmnopqrst@acme.test>")
		}},
		{"html-only-noreply.eml", func(t *testing.T, m *Mail) {
			wantContains(t, "Text converted from HTML", m.Text, "where is order 77?")
			wantList(t, "ReplyTo", m.ReplyTo, "orders@shop.test")
		}},
		{"inline-image.eml", func(t *testing.T, m *Mail) {
			if len(m.Attachments) != 1 || !m.Attachments[0].Inline || m.Attachments[0].ContentID != "img001@nordic.test" {
				t.Errorf("Attachments = %+v, want one inline error.png with Content-ID img001@nordic.test", m.Attachments)
			}
		}},
		{"thunderbird-attachment.eml", func(t *testing.T, m *Mail) {
			if len(m.Attachments) != 1 || m.Attachments[0].Filename != "contract signed.pdf" ||
				!bytes.HasPrefix(m.Attachments[0].Data, []byte("%PDF")) || m.Attachments[0].Size != int64(len(m.Attachments[0].Data)) {
				t.Errorf("Attachments = %+v, want the decoded PDF with its size", m.Attachments)
			}
		}},
		{"uuencode.eml", func(t *testing.T, m *Mail) {
			if len(m.Attachments) != 2 {
				t.Fatalf("got %d attachments, want the uuencoded and the BinHex part kept", len(m.Attachments))
			}
			wantContains(t, "uuencoded data kept opaque", string(m.Attachments[0].Data), "begin 644 hello.txt")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			m, err := Parse(raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, m)
		})
	}
}

func TestParseRejectsOnlyWhatIsUnusable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     string
		wantErr bool
	}{
		{"empty", "", true},
		{"whitespace only", " \r\n\r\n\t", true},
		{"header only, no body", "Subject: hi\r\nFrom: a@b.test", false},
		{"body only, no header", "just some text\nwithout headers\n", false},
		{"unterminated encoded word", "Subject: =?utf-8?Q?broken\n\nbody", false},
		{"bad base64 encoded word", "Subject: =?utf-8?B?!!!?=\n\nbody", false},
		{"unknown charset", "Subject: =?x-klingon?Q?qapla=E9?=\nContent-Type: text/plain; charset=x-klingon\n\nbody", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := Parse([]byte(tt.raw))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error", tt.raw, m)
				}
				return
			}
			if err != nil || m == nil {
				t.Fatalf("Parse(%q) failed: %v; want a usable Mail", tt.raw, err)
			}
		})
	}
}

func TestMessageIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string
	}{
		{"space separated", "<a@x> <b@y>", []string{"<a@x>", "<b@y>"}},
		{"comma joined (Exchange)", "<a@x>,<b@y>", []string{"<a@x>", "<b@y>"}},
		{"no whitespace (iOS)", "<a@x><b@y>", []string{"<a@x>", "<b@y>"}},
		{"folded", "<a@x>\t\r\n <b@y>", []string{"<a@x>", "<b@y>"}},
		{"without brackets", "a@x b@y", []string{"<a@x>", "<b@y>"}},
		{"duplicates dropped", "<a@x> <A@x>", []string{"<a@x>"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantList(t, "messageIDs("+tt.in+")", messageIDs([]byte(tt.in)), tt.want...)
		})
	}
}

func wantEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantContains(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("%s = %q, want it to contain %q", what, got, want)
	}
}

func wantList(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func attachmentNames(m *Mail) []string {
	var names []string
	for _, a := range m.Attachments {
		names = append(names, a.Filename)
	}
	return names
}
