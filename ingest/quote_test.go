package ingest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

// TestTrimReplyCorpus trims the text of every reply shape in
// testdata/replies (NAME.txt: the text of a reply as Parse gives it;
// NAME.eml: a whole reply, parsed first) and compares the new part with
// NAME.want. A shape that must stay whole has its whole text as want.
func TestTrimReplyCorpus(t *testing.T) {
	t.Parallel()
	var inputs []string
	for _, pattern := range []string{"*.txt", "*.eml"} {
		fs, err := filepath.Glob(filepath.Join("testdata", "replies", pattern))
		if err != nil {
			t.Fatalf("glob: %v", err)
		}
		inputs = append(inputs, fs...)
	}
	if len(inputs) < 30 {
		t.Fatalf("reply corpus has %d shapes, want at least 30", len(inputs))
	}
	for _, file := range inputs {
		name := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("read %s: %v", file, err)
			}
			text := string(raw)
			if filepath.Ext(file) == ".eml" {
				m, err := Parse(raw)
				if err != nil {
					t.Fatalf("Parse(%s): %v", name, err)
				}
				text = m.Text
			}
			got, trimmed := trimReply(text)
			got = strings.TrimRight(strings.ReplaceAll(got, "\r\n", "\n"), "\n")
			wantPath := strings.TrimSuffix(file, filepath.Ext(file)) + ".want"
			if *update {
				if err := os.WriteFile(wantPath, []byte(got+"\n"), 0o644); err != nil {
					t.Fatalf("write %s: %v", wantPath, err)
				}
				return
			}
			wantRaw, err := os.ReadFile(wantPath)
			if err != nil {
				t.Fatalf("read %s: %v", wantPath, err)
			}
			want := strings.TrimRight(string(wantRaw), "\n")
			if got != want {
				t.Errorf("new text of %s:\n%s\n--- want\n%s", name, got, want)
			}
			whole := strings.TrimRight(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
			if trimmed != (want != whole) {
				t.Errorf("trimmed = %v, want %v", trimmed, want != whole)
			}
		})
	}
}

// TestProcessTrimsReplies states which messages are stored with their new
// text apart from the quoted history.
func TestProcessTrimsReplies(t *testing.T) {
	t.Parallel()
	const body = "Thanks, it prints again.\n\nOn Mon, Jan 2, 2023 at 10:00 AM Acme Support <support@acme.test> wrote:\n> Did you restart it?\n"
	mail := func(subject, extra string) []byte {
		return []byte("From: Anna <anna.meyer@customer.test>\nTo: support@acme.test\n" + extra +
			"Subject: " + subject + "\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@customer.test>\n\n" + body)
	}
	const replyTo = "In-Reply-To: <thank-you-12@acme.test>\n"
	tests := []struct {
		name, subject, extra string
		outcome              ticket.Outcome
		text, full           string
	}{
		{"a reply keeps its new text in text and the whole body in full_text",
			"RE: [acme#12] printer", replyTo, ticket.OutcomeReplyAdded, "Thanks, it prints again.", body},
		{"the mail that opens a ticket is kept whole", "printer", "", ticket.OutcomeTicketCreated, body, ""},
		{"a reply that forwards is kept whole", "Fwd: [acme#12] printer", replyTo, ticket.OutcomeReplyAdded, body, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, d := setup(t, nil).process(t, mail(tt.subject, tt.extra))
			wantEqual(t, "Outcome", d.Outcome, tt.outcome)
			wantEqual(t, "Text", strings.ReplaceAll(d.Message.Text, "\r\n", "\n"), tt.text)
			wantEqual(t, "FullText", strings.ReplaceAll(d.Message.FullText, "\r\n", "\n"), tt.full)
		})
	}
}

// BenchmarkTrimReply trims hostile texts of 4 MB, each repeating what
// makes the trimmer look further (attributions above inline answers,
// "--" lines, header blocks without a Subject, wrapped attribution
// candidates), beside an ordinary reply: the cost per byte must stay
// that of the ordinary reply (linear), not grow with the repetitions.
//
//	go test -run '^$' -bench '^BenchmarkTrimReply$' ./ingest
func BenchmarkTrimReply(b *testing.B) {
	const size = 4 << 20
	fill := func(unit string) string { return strings.Repeat(unit, size/len(unit)) }
	cases := []struct{ name, text string }{
		{"ordinary-reply", fill("Thanks, it prints again.\n") + "\nOn Mon, Jan 2, 2023 at 10:00 AM Acme <support@acme.test> wrote:\n> q\n"},
		{"attributions-over-inline-answers", fill("On 1 Jan 2023 a@x wrote:\n> q\nanswer\n")},
		{"dash-lines", fill("--\ntext\n")},
		{"header-blocks-without-subject", fill("From: a@x\nSent: 1 Jan 2023\nTo: b@x\n")},
		{"wrapped-attribution-candidates", fill("On 1 Jan 2023 a very long line that never says it\n")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.text)))
			for b.Loop() {
				trimReply(c.text)
			}
		})
	}
}
