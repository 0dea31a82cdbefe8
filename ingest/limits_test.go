package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// hostileWant is what a hostile message must come to.
type hostileWant struct {
	cut   string // a substring of Mail.Cuts; "" when nothing is cut
	check func(t *testing.T, m *Mail)
	// outcome is what Process must come to; "" for ticket_created or
	// failed.
	outcome ticket.Outcome
}

var hostileWants = map[string]hostileWant{
	"references-40000": {cut: "References: kept 100 of 40000 entries", check: func(t *testing.T, m *Mail) {
		wantEqual(t, "len(References)", len(m.References), 100)
		wantEqual(t, "first reference", m.References[0], "<r000000@evil.test>")
	}},
	"cc-32000": {cut: "Cc: kept 100 of 32000 addresses", check: func(t *testing.T, m *Mail) {
		wantEqual(t, "len(Cc)", len(m.Cc), 100)
		wantEqual(t, "last Cc", m.Cc[99], "u00099@evil.test")
	}},
	"parts-100000": {cut: "MIME: kept 500 of at least 100000 parts", check: func(t *testing.T, m *Mail) {
		wantContains(t, "Text (from the kept parts)", m.Text, "part 0")
		if strings.Contains(m.Text, "part 500\r") || strings.Contains(m.Text, "part 99999") {
			t.Errorf("Text holds parts past the limit")
		}
	}},
	"depth-5000": {cut: "MIME: dropped 1 multipart parts nested deeper than 20 levels", check: nil},
	"subject-20MB": {cut: "Subject: kept 998 of ", check: func(t *testing.T, m *Mail) {
		wantEqual(t, "Subject", m.Subject, strings.Repeat("Ü", 499))
	}},
	"header-line-1MB": {cut: "X-Junk: kept 65536 of 1048576 bytes", check: func(t *testing.T, m *Mail) {
		wantEqual(t, "len(X-Junk)", len(m.Header.Get("X-Junk")), 65536)
	}},
	"header-only": {check: func(t *testing.T, m *Mail) {
		wantEqual(t, "Subject", m.Subject, "header only")
	}},
	"header-block-4MB": {cut: "header block: kept", check: func(t *testing.T, m *Mail) {
		if n := len(m.Header); n > 5000 {
			t.Errorf("Header holds %d fields, want the ones within 256 KiB", n)
		}
	}},
	"nested-19-leaf-20MB": {cut: "MIME: cut at byte", check: nil},
	"parts-500-of-40KB":   {check: func(t *testing.T, m *Mail) { wantEqual(t, "attachments", len(m.Attachments), 500) }},
	"x-parts-100000":      {cut: "MIME: kept 500 of at least 100000 parts", check: nil},
	"x-parts-200000":      {cut: "MIME: kept 500 of at least 200000 parts", check: nil},
	"bare-cr-parts-100000": {cut: "MIME: kept 500 of at least", check: func(t *testing.T, m *Mail) {
		wantContains(t, "Text (from the kept parts)", m.Text, "part 0")
	}},
	"x-depth-5000": {cut: "MIME: dropped 1 multipart parts nested deeper than 20 levels", check: nil},
	"rfc822-header-256KB": {check: func(t *testing.T, m *Mail) {
		wantEqual(t, "attachments", len(m.Attachments), 1)
		wantEqual(t, "attachment type", m.Attachments[0].ContentType, "message/rfc822")
	}},
	"header-fields-24MB": {cut: "header block: kept", check: func(t *testing.T, m *Mail) {
		wantEqual(t, "body", strings.TrimSpace(m.Text), "body")
	}},
	"header-names-1MB": {cut: "header block: dropped 20 lines whose name is over 76 bytes", check: func(t *testing.T, m *Mail) {
		if n := len(strings.Join(m.Cuts, "")); n > maxCutBytes {
			t.Errorf("Cuts hold %d bytes, want at most %d", n, maxCutBytes)
		}
		for k := range m.Header {
			if len(k) > maxNameBytes {
				t.Errorf("Header holds a %d-byte name", len(k))
			}
		}
	}},
	"part-fields-60000": {cut: "MIME: dropped 105 parts whose header has over 100 fields", check: func(t *testing.T, m *Mail) {
		wantEqual(t, "Text (the first part only)", strings.TrimSpace(m.Text), "kept text")
	}},
	"parts-500-of-100-fields": {check: func(t *testing.T, m *Mail) {
		wantContains(t, "Text", m.Text, "part 499")
	}},
	"dsn-groups-24MB": {outcome: ticket.OutcomeBounce, cut: "bounce: read 100 recipient groups, the first ", check: func(t *testing.T, m *Mail) {
		wantEqual(t, "failed recipients", len(m.dsn.recipients), 100)
		wantEqual(t, "last failed recipient", m.dsn.recipients[99], "r99@evil.test")
		wantEqual(t, "attachments", len(m.Attachments), 1)
	}},
	"html-tags-24MB": {cut: "HTML body: text taken from the first 1048575 of 25165824 bytes", check: func(t *testing.T, m *Mail) {
		wantEqual(t, "len(HTML)", len(m.HTML), 25165824)
	}},
	"html-table-20MB": {cut: "HTML body: text taken from the first", check: func(t *testing.T, m *Mail) {
		wantContains(t, "Text", m.Text, "Widget blue")
		if len(m.Text) > 1<<20 {
			t.Errorf("Text is %d bytes, want the text of the first MiB of HTML", len(m.Text))
		}
	}},
	"mislabeled-charset-24MB": {check: func(t *testing.T, m *Mail) {
		wantContains(t, "Text (read again with detection, then as Windows-1252)", m.Text, "Grüße aus München")
	}},
}

// untimed are the default limits with a deadline no test machine reaches:
// these tests check what is cut, not how long it takes (that is
// BenchmarkHostile's, and TestParseContextStops checks the deadline);
// on 2 busy cores a 24 MB message has taken over 5 s.
var untimed = Limits{Deadline: 10 * time.Minute}

// Every hostile message parses into a Mail a ticket can be opened from,
// with what was left out recorded.
func TestParseHostile(t *testing.T) {
	t.Parallel()
	for _, c := range hostileCorpus() {
		want, ok := hostileWants[c.name]
		if !ok {
			t.Fatalf("no expectation for hostile message %q", c.name)
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseContext(context.Background(), c.raw, untimed)
			if err != nil {
				t.Fatalf("Parse: %v; want a Mail with cuts recorded", err)
			}
			wantEqual(t, "From", m.From, "mallory@evil.test")
			wantEqual(t, "To", strings.Join(m.To, ","), "support@acme.test")
			if m.Subject == "" || m.MessageID == "" {
				t.Errorf("Subject %q, Message-ID %q: want both kept", m.Subject, m.MessageID)
			}
			cuts := strings.Join(m.Cuts, "\n")
			if want.cut == "" && len(m.Cuts) > 0 {
				t.Errorf("Cuts = %q, want none", cuts)
			}
			wantContains(t, "Cuts", cuts, want.cut)
			if len(m.References) > 100 || len(m.To) > 100 || len(m.Cc) > 100 || len(m.Attachments) > 500 || len(m.Subject) > 998 {
				t.Errorf("a list is over its limit: %d refs, %d to, %d cc, %d attachments, %d-byte subject",
					len(m.References), len(m.To), len(m.Cc), len(m.Attachments), len(m.Subject))
			}
			if want.check != nil {
				want.check(t, m)
			}
		})
	}
}

func TestParseLimitsCutWhatIsPast(t *testing.T) {
	t.Parallel()
	head := "From: a@customer.test\r\nTo: support@acme.test\r\nSubject: s\r\n"
	tests := []struct {
		name    string
		lim     Limits
		raw     string
		wantCut string
		check   func(t *testing.T, m *Mail)
	}{
		{
			name: "In-Reply-To entries", lim: Limits{References: 2},
			raw: head + "In-Reply-To: <a@x> <b@x> <c@x>\r\n\r\nx", wantCut: "In-Reply-To: kept 2 of 3 entries",
			check: func(t *testing.T, m *Mail) { wantList(t, "InReplyTo", m.InReplyTo, "<a@x>", "<b@x>") },
		},
		{
			name: "References over two fields", lim: Limits{References: 3},
			raw: head + "References: <a@x> <b@x>\r\nReferences: <c@x>,<d@x>\r\n\r\nx", wantCut: "References: kept 3 of 4 entries",
			check: func(t *testing.T, m *Mail) { wantList(t, "References", m.References, "<a@x>", "<b@x>", "<c@x>") },
		},
		{
			name: "bare References", lim: Limits{References: 1},
			raw: head + "References: a@x, b@x\r\n\r\nx", wantCut: "References: kept 1 of 2 entries",
			check: func(t *testing.T, m *Mail) { wantList(t, "References", m.References, "<a@x>") },
		},
		{
			name: "quoted commas are not separators", lim: Limits{Addresses: 2},
			raw: "From: a@customer.test\r\nTo: \"Doe, J\" <j@x>, (a, comment) k@x, l@x\r\nSubject: s\r\n\r\nx", wantCut: "To: kept 2 of 3 addresses",
			check: func(t *testing.T, m *Mail) { wantList(t, "To", m.To, "j@x", "k@x") },
		},
		{
			name: "a group cut keeps its end", lim: Limits{Addresses: 1},
			raw: head + "Cc: team: j@x, k@x;, l@x\r\n\r\nx", wantCut: "Cc: kept 1 of 3 addresses",
			check: func(t *testing.T, m *Mail) { wantList(t, "Cc", m.Cc, "j@x") },
		},
		{
			name: "one field's size", lim: Limits{FieldBytes: 10},
			raw: head + "X-Long: ääääää\r\n\r\nx", wantCut: "X-Long: kept 10 of 12 bytes",
		},
		{
			name: "a field cut within a character", lim: Limits{FieldBytes: 9},
			raw: head + "X-Long: ääääää\r\n\r\nx", wantCut: "X-Long: kept 8 of 12 bytes",
			check: func(t *testing.T, m *Mail) { wantEqual(t, "X-Long", m.Header.Get("X-Long"), "ää"+"ää") },
		},
		{
			name: "header block past its size keeps the fields the desk reads", lim: Limits{HeaderBytes: 100},
			raw:     "X-A: " + strings.Repeat("a", 80) + "\r\nX-B: b\r\n" + head + "Auto-Submitted: auto-replied\r\nX-C: c\r\n\r\nx",
			wantCut: "header block: kept",
			check: func(t *testing.T, m *Mail) {
				wantEqual(t, "From", m.From, "a@customer.test")
				wantEqual(t, "Auto-Submitted", m.Header.Get("Auto-Submitted"), "auto-replied")
				wantEqual(t, "X-C dropped", m.Header.Get("X-C"), "")
			},
		},
		{
			name: "subject in runes", lim: Limits{SubjectBytes: 5},
			raw: "From: a@customer.test\r\nSubject: =?utf-8?B?w6TDpMOk?=\r\n\r\nx", wantCut: "Subject: kept 4 of 6 bytes",
			check: func(t *testing.T, m *Mail) { wantEqual(t, "Subject", m.Subject, "ää") },
		},
		{
			name: "parts: the cut closes every open multipart", lim: Limits{Parts: 2},
			raw: head + "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n" +
				"--i\r\nContent-Type: text/plain\r\n\r\nkept text\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>cut</p>\r\n--i--\r\n--o--\r\n",
			wantCut: "MIME: kept 2 of at least 3 parts",
			check: func(t *testing.T, m *Mail) {
				wantContains(t, "Text", m.Text, "kept text")
				wantEqual(t, "HTML", m.HTML, "")
			},
		},
		{
			name: "depth: a part too deep is dropped, its siblings kept", lim: Limits{Depth: 1},
			raw: head + "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n" +
				"--i\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--i--\r\n--o\r\nContent-Type: text/plain\r\n\r\nshallow text\r\n--o--\r\n",
			wantCut: "nested deeper than 1 levels",
			check: func(t *testing.T, m *Mail) {
				wantContains(t, "Text", m.Text, "shallow text")
				if strings.Contains(m.Text, "deep\r") {
					t.Errorf("Text %q holds the dropped part", m.Text)
				}
			},
		},
		{
			name: "a boundary on data counts as enmime counts it", lim: Limits{Depth: 1},
			raw: head + "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: application/x-odd; boundary=i\r\n\r\n" +
				"--i\r\nContent-Type: text/plain\r\n\r\nx\r\n--i--\r\n--o--\r\n",
			wantCut: "nested deeper than 1 levels",
		},
		{
			name: "a part header over PartFields drops that part, its siblings kept", lim: Limits{PartFields: 3},
			raw: head + "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\nA: 1\r\n folded\r\nB: 2\r\n\r\nkept text\r\n" +
				"--o\r\nContent-Type: text/plain\r\nA: 1\r\nB: 2\r\nnot a field\r\n\r\ndropped text\r\n--o--\r\n",
			wantCut: "MIME: dropped 1 parts whose header has over 3 fields",
			check: func(t *testing.T, m *Mail) {
				wantContains(t, "Text", m.Text, "kept text")
				if strings.Contains(m.Text, "dropped text") {
					t.Errorf("Text %q holds the dropped part", m.Text)
				}
			},
		},
		{
			name: "delivery status groups past Addresses are not read", lim: Limits{Addresses: 2},
			raw: head + "Content-Type: multipart/report; report-type=delivery-status; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nfailed\r\n" +
				"--o\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\n" +
				"Final-Recipient: rfc822;\r\n a@x\r\nAction: failed\r\n\r\nFinal-Recipient: rfc822; b@x\r\nfinal-recipient: rfc822; z@x\r\nAction: FAILED\r\n\r\n" +
				"Final-Recipient: rfc822; c@x\r\nAction: failed\r\n--o--\r\n",
			wantCut: "bounce: read 2 recipient groups",
			check:   func(t *testing.T, m *Mail) { wantList(t, "failed recipients", m.dsn.recipients, "a@x", "b@x") },
		},
		{
			name: "delivery status read up to HeaderBytes", lim: Limits{HeaderBytes: 300},
			raw: head + "Content-Type: multipart/report; report-type=delivery-status; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nfailed\r\n" +
				"--o\r\nContent-Type: message/delivery-status\r\n\r\n" + strings.Repeat("Final-Recipient: rfc822; a@x\r\nAction: delayed\r\n\r\n", 10) +
				"Final-Recipient: rfc822; b@x\r\nAction: failed\r\n--o--\r\n",
			wantCut: "bounce: read 6 recipient groups, the first 294 of ",
			check:   func(t *testing.T, m *Mail) { wantEqual(t, "failed recipients", len(m.dsn.recipients), 0) },
		},
		{
			name: "the last delivery status group needs no blank line",
			raw: head + "Content-Type: multipart/report; report-type=delivery-status; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nfailed\r\n" +
				"--o\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\nFinal-Recipient: rfc822; <A@x>\r\nAction: failed\r\n--o--\r\n",
			check: func(t *testing.T, m *Mail) { wantList(t, "failed recipients", m.dsn.recipients, "a@x") },
		},
		{
			name: "nothing cut", lim: Limits{},
			raw: head + "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nhello\r\n--o--\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseContext(context.Background(), []byte(tt.raw), tt.lim)
			if err != nil {
				t.Fatalf("ParseContext: %v", err)
			}
			cuts := strings.Join(m.Cuts, "\n")
			if tt.wantCut == "" && cuts != "" {
				t.Errorf("Cuts = %q, want none", cuts)
			}
			wantContains(t, "Cuts", cuts, tt.wantCut)
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestParseContextStops(t *testing.T) {
	t.Parallel()
	raw := []byte("From: a@customer.test\r\nSubject: s\r\n\r\nbody")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		lim     Limits
		wantErr error
	}{
		{"a canceled context is temporary", canceled, Limits{}, context.Canceled},
		{"a deadline overrun is permanent", context.Background(), Limits{Deadline: time.Nanosecond}, ErrParseDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			time.Sleep(time.Millisecond)
			m, err := ParseContext(tt.ctx, raw, tt.lim)
			if !errors.Is(err, tt.wantErr) || m != nil {
				t.Fatalf("ParseContext = %v, %v; want nil and %v", m, err, tt.wantErr)
			}
		})
	}
}

// Many adjacent encoded words in a display name join into one quoted
// string, in linear time.
func TestQuoteEncodedWordsJoined(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"two adjacent", `=?utf-8?Q?a?= =?utf-8?Q?b?= <x@y>`, `"ab" <x@y>`},
		{"separated by text", `=?utf-8?Q?a?= and =?utf-8?Q?b?= <x@y>`, `"a" and "b" <x@y>`},
		{"escaped quote", `=?utf-8?Q?a=22?= =?utf-8?Q?b?= <x@y>`, `"a\"b" <x@y>`},
		{"inside a quoted string", `"=?utf-8?Q?a?= =?utf-8?Q?b?=" <x@y>`, `"ab" <x@y>`},
		{"20000 adjacent", strings.Repeat("=?utf-8?Q?a?= ", 20000) + "<x@y>", `"` + strings.Repeat("a", 20000) + `" <x@y>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantEqual(t, "quoteEncodedWords", quoteEncodedWords([]byte(tt.in), ""), tt.want)
		})
	}
}

func TestSafeFilenameDropsBidiControls(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"right-to-left override", "invoice\u202Efdp.exe", "invoicefdp.exe"},
		{"every embedding and override", "a\u202A\u202B\u202C\u202D\u202Eb.txt", "ab.txt"},
		{"isolates", "a\u2066\u2067\u2068\u2069b.txt", "ab.txt"},
		{"marks", "a\u200E\u200F\u061Cb.txt", "ab.txt"},
		{"controls", "a\x01\x7f\u0085b.txt", "ab.txt"},
		{"letters kept", "Übersicht März.csv", "Übersicht März.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantEqual(t, "safeFilename", safeFilename(tt.in), tt.want)
		})
	}
}

// Through Processor.Process every hostile message ends as a new ticket or
// a failure, with the cut in the ledger reason, and never as an error
// (which would retry it).
func TestProcessHostile(t *testing.T) {
	t.Parallel()
	for _, c := range hostileCorpus() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, &Options{MaxMessageSize: 25 << 20, Limits: untimed})
			got, err := b.proc.Process(context.Background(), b.add(c.raw))
			if err != nil {
				t.Fatalf("Process: %v; want an outcome committed, not a retry", err)
			}
			if want := hostileWants[c.name].outcome; want != "" {
				wantEqual(t, "outcome", got.Outcome, want)
			} else if got.Outcome != ticket.OutcomeTicketCreated && got.Outcome != ticket.OutcomeFailed {
				t.Fatalf("outcome %q, want ticket_created or failed", got.Outcome)
			}
			wantEqual(t, "commits", len(b.st.commits), 1)
			d := b.st.commits[0]
			if want := hostileWants[c.name].cut; want != "" {
				wantContains(t, "Reason", d.Reason, "; cut: ")
				wantContains(t, "Reason", d.Reason, want)
			}
			if len(d.Reason) > 4096 {
				t.Errorf("Reason is %d bytes, want a short line", len(d.Reason))
			}
		})
	}
}

func TestProcessParseStops(t *testing.T) {
	t.Parallel()
	raw := []byte("From: a@customer.test\r\nTo: support@acme.test\r\nSubject: s\r\n\r\nbody")
	t.Run("a deadline overrun is left to the caller, who tries it once more (jobs.MaxDeadlineAttempts)", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &Options{Limits: Limits{Deadline: time.Nanosecond}})
		_, err := b.proc.Process(context.Background(), b.add(raw))
		if !errors.Is(err, ErrParseDeadline) {
			t.Fatalf("Process = %v; want ErrParseDeadline: the load of the machine may be to blame", err)
		}
		wantEqual(t, "commits", len(b.st.commits), 0)
	})
	t.Run("shutdown is temporary", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		id := b.add(raw)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := b.proc.process(ctx, b.st.inbound[id], raw)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("process = %v, want context.Canceled returned (retry later)", err)
		}
		wantEqual(t, "commits", len(b.st.commits), 0)
	})
}

func ExampleParseContext() {
	raw := []byte("From: a@customer.test\r\nTo: support@acme.test\r\nSubject: s\r\nReferences: <1@x> <2@x> <3@x>\r\n\r\nbody")
	m, err := ParseContext(context.Background(), raw, Limits{References: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.References, m.Cuts)
	// Output: [<1@x> <2@x>] [References: kept 2 of 3 entries]
}

// enmime finds part delimiters after a byte, after a bare carriage
// return, in the middle of a line and inside a part header; the pre-scan
// must count every one of them, or one message becomes 100,000 parts.
func TestPrescanBoundsEnmime(t *testing.T) {
	t.Parallel()
	for i, seed := range boundarySeeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			lim := Limits{Parts: 8, Depth: 4}
			wantBoundedTree(t, []byte(seed), lim)
			m, err := ParseContext(context.Background(), []byte(seed), lim)
			if err != nil {
				t.Fatalf("ParseContext: %v", err)
			}
			if len(m.Cuts) == 0 {
				t.Errorf("no cut recorded; want the parts or depth cut")
			}
		})
	}
}
