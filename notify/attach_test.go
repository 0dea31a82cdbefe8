package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

// leaf is one non-multipart MIME part of a received mail, decoded.
type leaf struct {
	header      map[string][]string
	mediaType   string
	disposition string
	filename    string // from Content-Disposition, RFC 2231 decoded by mime
	name        string // Content-Type's name parameter
	body        []byte
}

// leaves walks a received mail and returns its leaf parts in order.
func leaves(t *testing.T, data []byte) []leaf {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("received mail does not parse: %v", err)
	}
	var out []leaf
	var walk func(h map[string][]string, body io.Reader)
	walk = func(h map[string][]string, body io.Reader) {
		get := func(k string) string {
			if v := h[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		mt, params, err := mime.ParseMediaType(get("Content-Type"))
		if err != nil {
			t.Fatalf("Content-Type %q: %v", get("Content-Type"), err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil {
					t.Fatalf("read MIME part: %v", err)
				}
				walk(p.Header, p)
			}
		}
		var r io.Reader = body
		switch strings.ToLower(get("Content-Transfer-Encoding")) {
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, body)
		case "quoted-printable":
			r = quotedprintable.NewReader(body)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("decode %s part: %v", mt, err)
		}
		l := leaf{header: h, mediaType: mt, name: params["name"], body: b}
		if cd := get("Content-Disposition"); cd != "" {
			disp, dp, err := mime.ParseMediaType(cd)
			if err != nil {
				t.Fatalf("Content-Disposition %q: %v", cd, err)
			}
			l.disposition, l.filename = disp, dp["filename"]
		}
		out = append(out, l)
	}
	walk(msg.Header, msg.Body)
	return out
}

func attachmentsOf(ls []leaf) []leaf {
	var out []leaf
	for _, l := range ls {
		if l.disposition == "attachment" {
			out = append(out, l)
		}
	}
	return out
}

func textOf(t *testing.T, ls []leaf, mediaType string) string {
	t.Helper()
	for _, l := range ls {
		if l.mediaType == mediaType && l.disposition == "" {
			return strings.ReplaceAll(string(l.body), "\r\n", "\n")
		}
	}
	t.Fatalf("mail has no %s body part", mediaType)
	return ""
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// addNote puts note message 101 with atts on ticket 7 and a pending note
// notification 2 to bob about it.
func addNote(b *bundle, atts ...ticket.Attachment) {
	b.store.mu.Lock()
	tk := b.store.tickets[7]
	tk.Messages = append(tk.Messages, ticket.Message{
		ID: 101, TicketID: 7, Direction: ticket.DirectionOutbound, Kind: ticket.KindNote,
		Text: "Here are the files.", MessageID: "<note-101@example.test>", CreatedAt: testNow, Attachments: atts,
	})
	b.store.tickets[7] = tk
	b.store.mu.Unlock()
	b.store.put(ticket.Notification{ID: 2, ProjectID: 1, Project: "acme", TicketID: 7, MessageID: 101,
		Kind: ticket.NotifyNote, To: "bob@customer.test", MailID: "<n2@example.test>", State: ticket.NotificationPending})
}

func TestDeliverNoteAttachments(t *testing.T) {
	t.Parallel()
	pdf := randomBytes(6000, 1)
	log := []byte(strings.Repeat("Grüße aus der Logdatei\r\n", 100))
	const total = 6000 + 2600 // len(log) is 2600 bytes
	if len(log) != 2600 {
		t.Fatalf("test setup: log is %d bytes", len(log))
	}
	tests := []struct {
		name         string
		limit        int64
		wantAttached bool
	}{
		{name: "under the default limit they are attached", limit: 0, wantAttached: true},
		{name: "exactly at the limit they are attached", limit: total, wantAttached: true},
		{name: "over the limit links are sent instead", limit: total - 1, wantAttached: false},
		{name: "a negative limit never attaches", limit: -1, wantAttached: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(_ *Project, o *Options) { o.MaxAttachmentsSize = tc.limit })
			atts := []ticket.Attachment{
				b.store.putBlob(31, "Rechnung März 2026.pdf", "application/pdf", pdf),
				b.store.putBlob(32, "server.log", "text/plain; charset=utf-8", log),
			}
			addNote(b, atts...)
			if err := b.d.Deliver(context.Background(), 2); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			ls := leaves(t, onlyAccepted(t, b.sink, 1)[0].Data)
			got := attachmentsOf(ls)
			text, htmlPart := textOf(t, ls, "text/plain"), textOf(t, ls, "text/html")
			if !strings.HasPrefix(text, "Here are the files.") {
				t.Errorf("text part does not start with the note:\n%s", text)
			}
			if !tc.wantAttached {
				if len(got) != 0 {
					t.Fatalf("mail has %d attachment parts, want none (links instead)", len(got))
				}
				// Signed for the recipient, so no API token is needed.
				rcpt := b.store.get(2).To
				link31 := b.project.Links.AttachmentURL("acme", 12, 31, rcpt)
				for _, want := range []string{
					"too large to send by email",
					"Rechnung März 2026.pdf (5.9 KB): " + link31,
					"server.log (2.5 KB): " + b.project.Links.AttachmentURL("acme", 12, 32, rcpt),
				} {
					if !strings.Contains(text, want) {
						t.Errorf("text part lacks %q:\n%s", want, text)
					}
				}
				if want := `<a href="` + html.EscapeString(link31) + `">Rechnung März 2026.pdf</a>`; !strings.Contains(htmlPart, want) {
					t.Errorf("html part lacks the link %q:\n%s", want, htmlPart)
				}
				if i, j := strings.Index(htmlPart, "attachments/32"), strings.Index(htmlPart, "</body>"); i < 0 || j < i {
					t.Errorf("html part: links not inside the body:\n%s", htmlPart)
				}
				return
			}
			if strings.Contains(text, "too large") {
				t.Errorf("text part mentions links although the files are attached:\n%s", text)
			}
			if len(got) != len(atts) {
				t.Fatalf("mail has %d attachment parts, want %d", len(got), len(atts))
			}
			for i, a := range atts {
				g := got[i]
				sum := sha256.Sum256(g.body)
				if h := hex.EncodeToString(sum[:]); h != a.SHA256 {
					t.Errorf("attachment %q: sha256 %s (%d bytes), want %s (%d bytes)", a.Filename, h, len(g.body), a.SHA256, a.Size)
				}
				if g.filename != a.Filename {
					t.Errorf("attachment %d: Content-Disposition filename = %q, want %q (header %q)", i, g.filename, a.Filename, g.header["Content-Disposition"])
				}
				if g.name != a.Filename {
					t.Errorf("attachment %d: Content-Type name = %q, want %q", i, g.name, a.Filename)
				}
				wantType, _, _ := mime.ParseMediaType(a.ContentType)
				if g.mediaType != wantType {
					t.Errorf("attachment %q: Content-Type %q, want %q", a.Filename, g.mediaType, wantType)
				}
			}
			if ct := got[1].header["Content-Type"]; len(ct) == 0 || !strings.Contains(ct[0], "charset=utf-8") {
				t.Errorf("text attachment Content-Type = %q, want its charset kept", ct)
			}
			if cd := got[0].header["Content-Disposition"][0]; !strings.Contains(cd, "filename*=utf-8''Rechnung%20M%C3%A4rz%202026.pdf") ||
				!strings.Contains(cd, `filename="=?utf-8?b?`) {
				t.Errorf("non-ASCII filename: Content-Disposition %q, want RFC 2231 filename* and an RFC 2047 filename", cd)
			}
		})
	}
}

func TestDeliverNoteAttachmentFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		arrange       func(b *bundle) ticket.Attachment
		wantPermanent bool
	}{
		{name: "content missing from the store is temporary", arrange: func(b *bundle) ticket.Attachment {
			a := b.store.putBlob(31, "a.bin", "application/octet-stream", []byte("abc"))
			delete(b.store.blobs, a.SHA256)
			return a
		}},
		{name: "content not matching its hash is permanent", arrange: func(b *bundle) ticket.Attachment {
			a := b.store.putBlob(31, "a.bin", "application/octet-stream", []byte("abc"))
			b.store.blobs[a.SHA256] = []byte("abd")
			return a
		}, wantPermanent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			addNote(b, tc.arrange(b))
			err := b.d.Deliver(context.Background(), 2)
			if err == nil {
				t.Fatal("Deliver succeeded, want an error")
			}
			if stepOf(err) != "load attachment" || Permanent(err) != tc.wantPermanent {
				t.Errorf("Deliver = %v: step %q permanent %v, want step %q permanent %v", err, stepOf(err), Permanent(err), "load attachment", tc.wantPermanent)
			}
			if got := b.sink.all(); len(got) != 0 {
				t.Errorf("SMTP server got %d messages, want none", len(got))
			}
		})
	}
}

func TestAttachmentLinksWithoutPublicURL(t *testing.T) {
	t.Parallel()
	noURL, err := ticket.NewCustomerLinks([]byte(testSecret), "", ticket.LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(p *Project, o *Options) { p.PublicURL, p.Links, o.MaxAttachmentsSize = "", noURL, 10 })
	addNote(b, b.store.putBlob(31, "big.bin", "application/octet-stream", randomBytes(100, 2)))
	if err := b.d.Deliver(context.Background(), 2); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	ls := leaves(t, onlyAccepted(t, b.sink, 1)[0].Data)
	text := textOf(t, ls, "text/plain")
	if !strings.Contains(text, "They are on ticket acme#12:\n- big.bin (100 B)\n") || strings.Contains(text, "http") {
		t.Errorf("text part without a public URL should list the file by name and size, no link:\n%s", text)
	}
}

func TestAttachmentName(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{`C:\Users\bob\report.pdf`, "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{"a\r\nBcc: x@y.test", "aBcc: x@y.test"},
		{"", "attachment"},
		{"..", "attachment"},
		{strings.Repeat("ä", 150), strings.Repeat("ä", 100)},
	}
	for _, tc := range tests {
		if got := attachmentName(tc.in); got != tc.want {
			t.Errorf("attachmentName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
