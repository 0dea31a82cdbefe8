package api

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/servicedesk/servicedesk/ticket"
)

// Every local part of the addresses below starts with "zz" and every
// domain is customer.test or internal.test: a guest answer may show "zz"
// and "cu"/"in" followed by "***", never a third character of a local part
// nor a whole domain, in any encoding.
var leakedLocal = regexp.MustCompile(`zz[^*]`)

const (
	internalText = "INTERNAL-ONLY remark on zzmallory@internal.test"
	pngHeader    = "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
)

// guestTicketNumber is the ticket addEncodedTicket adds to project acme.
const guestTicketNumber = 7

// Attachments of the encoded ticket, by id.
const (
	attPNG          = 70 // image/png, an address in its name
	attPDF          = 71
	attText         = 72 // text/plain with an address
	attMail         = 73 // message/rfc822
	attDSN          = 74 // message/delivery-status
	attHeaders      = 75 // text/rfc822-headers
	attReport       = 76 // multipart/report
	attHTML         = 77 // text/html
	attSVG          = 78 // image/svg+xml
	attTextAsPNG    = 79 // text labelled image/png
	attTextAsBinary = 80 // text labelled application/octet-stream
	attVCard        = 81 // application/vcard, binary-looking label, text content
	attInternalPNG  = 90 // an image on an internal note
	attMissing      = 99
)

// addEncodedTicket adds ticket acme#7: addresses in every field in every
// encoding a reader or a browser would decode, attachments of every kind,
// and an internal note with its own address and attachment.
func addEncodedTicket(b *bundle) {
	at := time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC)
	att := func(id int64, name, ct string) ticket.Attachment {
		return ticket.Attachment{ID: id, Filename: name, ContentType: ct, Size: 1, SHA256: fmt.Sprintf("%064d", id)}
	}
	t := ticket.Ticket{
		ID: 17, Project: "acme", Number: guestTicketNumber, Ref: "acme#7", Status: ticket.StatusOpen,
		Subject:      `Help for "zzjohn doe"@customer.test`,
		Requester:    "zzbob&#64;customer.test",
		Participants: []string{"zzcarol%40customer.test", "zzdave&#x40;customer.test", "zzerin&commat;customer.test"},
		CreatedAt:    at, UpdatedAt: at,
		Messages: []ticket.Message{
			{
				ID: 70, Direction: ticket.DirectionInbound, Kind: ticket.KindEmail,
				From:    `"zzjohn doe"@customer.test`,
				To:      []string{"zzfrank%2540customer.test", `zzgrace\u0040customer.test`},
				Cc:      []string{"zzheidi\uff20customer.test", "zzivan\u200b@customer.test"},
				Subject: "zzjudy&amp;#64;customer.test wrote",
				Text:    "Reply to zzkate&#64customer.test or zzleo%40customer.test, or \"zzmike o'neil\"@customer.test",
				HTML: `<p><a href="mailto:zzbob&#64;customer.test">write</a> ` +
					`zznina<span>@</span>customer.test &lt;zzoscar&#x0040;customer.test&gt; ` +
					`<img alt="zzpeggy%40customer.test"> zzquinn&#X40;customer&#46;test</p>`,
				MessageID: "<zzmsgid@customer.test>",
				CreatedAt: at,
				Attachments: []ticket.Attachment{
					att(attPNG, "scan of zzrupert&#64;customer.test.png", `image/png; name="zzrupert@customer.test.png"`),
					att(attPDF, "invoice.pdf", "application/pdf"),
					att(attText, "notes.txt", "text/plain; charset=utf-8"),
					att(attMail, "forwarded.eml", "message/rfc822"),
					att(attDSN, "details.txt", "message/delivery-status"),
					att(attHeaders, "headers.txt", "text/rfc822-headers"),
					att(attReport, "report", "multipart/report; report-type=delivery-status"),
					att(attHTML, "page.html", "text/html"),
					att(attSVG, "logo.svg", "image/svg+xml"),
					att(attTextAsPNG, "photo.png", "image/png"),
					att(attTextAsBinary, "data.bin", "application/octet-stream"),
					att(attVCard, "contact.vcf", "application/vcard"),
				},
			},
			{
				ID: 71, Direction: ticket.DirectionOutbound, Kind: ticket.KindNote, Internal: true,
				From: "zzmallory@internal.test", To: []string{}, Subject: "internal: zzmallory@internal.test",
				Text: internalText, HTML: "<p>" + internalText + "</p>", MessageID: "<zzinternal@internal.test>",
				CreatedAt: at.Add(time.Minute),
				Attachments: []ticket.Attachment{
					att(attInternalPNG, "INTERNAL-ONLY.png", "image/png"),
				},
			},
		},
	}
	textWithAddress := []byte("Contact: zzsybil@customer.test\n")
	b.backend.mu.Lock()
	defer b.backend.mu.Unlock()
	b.backend.tickets = append([]ticket.Ticket{t}, b.backend.tickets...)
	for id, data := range map[int64]string{
		attPNG:          pngHeader + "pixels", // binary content is served as it is, never redacted
		attPDF:          "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
		attText:         string(textWithAddress),
		attMail:         "From: zzsybil@customer.test\r\nSubject: hi\r\n\r\nbody\r\n",
		attDSN:          "Reporting-MTA: dns; mx.example.test\r\n\r\nFinal-Recipient: rfc822; zzsybil@customer.test\r\n",
		attHeaders:      "To: zzsybil@customer.test\r\n",
		attReport:       "--b\r\nContent-Type: text/plain\r\n\r\nzzsybil@customer.test\r\n--b--\r\n",
		attHTML:         "<p>zzsybil@customer.test</p>",
		attSVG:          `<svg xmlns="http://www.w3.org/2000/svg"><text>zzsybil@customer.test</text></svg>`,
		attTextAsPNG:    string(textWithAddress),
		attTextAsBinary: string(textWithAddress),
		attVCard:        "BEGIN:VCARD\r\nEMAIL:zzsybil@customer.test\r\nEND:VCARD\r\n",
		attInternalPNG:  pngHeader + "INTERNAL-ONLY",
	} {
		b.backend.attachments[id] = []byte(data)
	}
}

// reveal decodes s the ways a reader or browser would: character
// references, percent and \u escapes, tags and invisible characters
// dropped, full-width at signs, until nothing changes.
func reveal(s string) string {
	for range 5 {
		prev := s
		s = html.UnescapeString(s)
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
		s = strings.NewReplacer(`\u0040`, "@", "\uff20", "@", "\ufe6b", "@").Replace(s)
		s = regexp.MustCompile(`<[/!?A-Za-z][^>]*>`).ReplaceAllString(s, "")
		s = strings.Map(func(r rune) rune {
			if unicode.Is(unicode.Cf, r) {
				return -1
			}
			return r
		}, s)
		if s == prev {
			break
		}
	}
	return s
}

// assertNoLeak fails when body, raw or decoded in any way, shows a full
// address of the fixtures or anything of the internal note.
func assertNoLeak(t *testing.T, what string, body []byte) {
	t.Helper()
	views := map[string]string{"raw bytes": string(body), "raw bytes decoded": reveal(string(body))}
	var v any
	if json.Valid(body) {
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		walkStrings("$", v, func(p, s string) {
			views["string at "+p] = s
			views["string at "+p+" decoded"] = reveal(s)
		})
	}
	for name, s := range views {
		for _, bad := range []string{"customer.test", "customer&#46;test", "internal.test", "INTERNAL-ONLY", "mallory"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s: %s shows %q: %q", what, name, bad, s)
			}
		}
		if m := leakedLocal.FindString(s); m != "" {
			t.Errorf("%s: %s shows a local part beyond its first two characters (%q): %q", what, name, m, s)
		}
	}
}

func TestGuestNeverSeesInternalNotesOrFullAddresses(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	addEncodedTicket(b)
	paths := []string{
		"/api/v1/projects",
		"/api/v1/projects/acme/tickets",
		"/api/v1/projects/acme/tickets?status=open",
		"/api/v1/projects/acme/tickets?per_page=1",
		"/api/v1/projects/acme/tickets/7",
		"/api/v1/projects/acme/tickets/7/attachments/90",
		"/api/v1/projects/acme/tickets/7/attachments/99",
		"/api/v1/projects/acme/tickets/99",
	}
	for id := attPNG; id <= attVCard; id++ {
		paths = append(paths, fmt.Sprintf("/api/v1/projects/acme/tickets/7/attachments/%d", id))
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			rec := b.do(t, RoleGuest, "GET", path)
			if rec.Code >= 500 {
				t.Fatalf("status = %d: %s", rec.Code, rec.Body)
			}
			assertNoLeak(t, "GET "+path, rec.Body.Bytes())
			for name, vals := range rec.Header() {
				assertNoLeak(t, "header "+name+" of GET "+path, []byte(strings.Join(vals, "\n")))
			}
		})
	}

	t.Run("the ticket keeps its public message, without the internal one", func(t *testing.T) {
		v := decode(t, b.do(t, RoleGuest, "GET", "/api/v1/projects/acme/tickets/7"))
		msgs := v["messages"].([]any)
		if len(msgs) != 1 || msgs[0].(map[string]any)["id"] != float64(70) {
			t.Fatalf("messages = %v, want only message 70 (71 is internal)", msgs)
		}
		m := msgs[0].(map[string]any)
		if got := m["from"]; got != "zz***@cu***.test" {
			t.Errorf("from = %q, want zz***@cu***.test", got)
		}
		if got := len(m["attachments"].([]any)); got != 12 {
			t.Errorf("%d attachments listed, want the 12 of the public message", got)
		}
	})

	t.Run("agents see the internal note and the addresses in full", func(t *testing.T) {
		rec := b.do(t, RoleAgent, "GET", "/api/v1/projects/acme/tickets/7")
		body := rec.Body.String()
		for _, want := range []string{internalText, "zzmallory@internal.test", "zzbob&#64;customer.test", `\"zzjohn doe\"@customer.test`} {
			if !strings.Contains(body, want) {
				t.Errorf("agent's ticket lacks %q: %s", want, body)
			}
		}
	})
}

func TestGuestAttachmentRules(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	addEncodedTicket(b)
	notFound := b.do(t, RoleGuest, "GET", fmt.Sprintf("/api/v1/projects/acme/tickets/7/attachments/%d", attMissing))
	if notFound.Code != http.StatusNotFound {
		t.Fatalf("missing attachment: status %d, want 404: %s", notFound.Code, notFound.Body)
	}
	tests := []struct {
		name  string
		id    int
		guest int // agents always get 200
	}{
		{"image", attPNG, 200},
		{"pdf", attPDF, 200},
		{"text", attText, 403},
		{"forwarded mail (message/rfc822)", attMail, 403},
		{"delivery status", attDSN, 403},
		{"text/rfc822-headers", attHeaders, 403},
		{"multipart/report", attReport, 403},
		{"html", attHTML, 403},
		{"svg (xml text)", attSVG, 403},
		{"text labelled image/png (sniffed)", attTextAsPNG, 403},
		{"text labelled application/octet-stream (sniffed)", attTextAsBinary, 403},
		{"vcard", attVCard, 403},
		{"image of an internal note: 404 as if missing", attInternalPNG, 404},
		{"missing", attMissing, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("/api/v1/projects/acme/tickets/7/attachments/%d", tt.id)
			rec := b.do(t, RoleGuest, "GET", path)
			if rec.Code != tt.guest {
				t.Fatalf("guest: status = %d, want %d: %s", rec.Code, tt.guest, rec.Body)
			}
			switch tt.guest {
			case 403:
				e := decode(t, rec)["error"].(map[string]any)
				if e["code"] != "forbidden" || !strings.Contains(e["message"].(string), "for agents") {
					t.Errorf("guest error = %v, want code forbidden, a message saying the type is for agents", e)
				}
			case 404:
				if rec.Body.String() != notFound.Body.String() {
					t.Errorf("guest 404 body = %s, want the same as for a missing attachment: %s", rec.Body, notFound.Body)
				}
			case 200:
				want := string(b.backend.attachments[int64(tt.id)])
				if rec.Body.String() != want {
					t.Errorf("guest body = %q, want the file unchanged", rec.Body)
				}
			}
			if tt.id == attMissing {
				return
			}
			agent := b.do(t, RoleAgent, "GET", path)
			if agent.Code != 200 || agent.Body.String() != string(b.backend.attachments[int64(tt.id)]) {
				t.Errorf("agent: status %d body %q, want 200 and the file unchanged", agent.Code, agent.Body)
			}
		})
	}

	t.Run("guest gets an obfuscated name and a bare content type", func(t *testing.T) {
		rec := b.do(t, RoleGuest, "GET", fmt.Sprintf("/api/v1/projects/acme/tickets/7/attachments/%d", attPNG))
		if got, want := rec.Header().Get("Content-Disposition"), `attachment; filename="scan of zz***@cu***.png"`; got != want {
			t.Errorf("Content-Disposition = %q, want %q", got, want)
		}
		if got := rec.Header().Get("Content-Type"); got != "image/png" {
			t.Errorf("Content-Type = %q, want image/png without parameters", got)
		}
	})
}

func TestGuestMayDownload(t *testing.T) {
	t.Parallel()
	const (
		png  = pngHeader + "pixels"
		pdf  = "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
		zip  = "PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00"
		text = "Contact: zzsybil@customer.test\n"
		tnef = "\x78\x9f\x3e\x22\x01\x00\x01\x06\x90\x08\x00\x04\x00\x00\x00"
		cfb  = "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00\x00\x00"
		// a compound file with an Outlook property stream: a .msg
		msg = cfb + "R\x00o\x00o\x00t\x00" + "_\x00_\x00s\x00u\x00b\x00s\x00t\x00g\x001\x00.\x000\x00_\x000\x000\x003\x007\x00"
		// bytes http.DetectContentType cannot name
		unknown = "\x00\x01\x02\x03\xfe\xff binary"
	)
	tests := []struct {
		name, filename, contentType, data string
		want                              bool
	}{
		// Allowed types with matching content.
		{"png", "scan.png", "image/png", png, true},
		{"jpeg labelled image/jpg", "photo.jpg", "image/jpg", "\xff\xd8\xff\xe0", true},
		{"heic (not sniffable)", "IMG_1.HEIC", "image/heic", unknown, true},
		{"tiff", "fax.tif", "image/tiff", "II*\x00", true},
		{"pdf", "invoice.pdf", "application/pdf", pdf, true},
		{"docx", "report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", zip, true},
		{"odt", "report.odt", "application/vnd.oasis.opendocument.text", zip, true},
		{"legacy word", "report.doc", "application/msword", cfb, true},
		{"macro-enabled excel", "book.xlsm", "application/vnd.ms-excel.sheet.macroEnabled.12", zip, true},
		{"zip", "logs.zip", "application/zip", zip, true},
		{"audio", "voicemail.mp3", "audio/mpeg", "ID3\x03\x00", true},
		{"video", "screen.mp4", "video/mp4", "\x00\x00\x00\x18ftypmp42", true},
		{"parameters do not matter", "scan.png", `image/png; name="scan.png"`, png, true},
		// application/octet-stream and bad labels: the content decides.
		{"octet-stream that sniffs as png", "scan", "application/octet-stream", png, true},
		{"octet-stream that sniffs as pdf", "invoice.bin", "application/octet-stream", pdf, true},
		{"no valid label, sniffs as png", "scan.png", "not a media type", png, true},
		{"octet-stream nobody can name", "data.bin", "application/octet-stream", unknown, false},
		{"octet-stream that sniffs as text", "data.bin", "application/octet-stream", text, false},
		{"no valid label, text", "x", "not a media type", text, false},
		{"octet-stream compound file (a .msg or a .doc)", "att1", "application/octet-stream", cfb, false},
		// Refused types, whatever the content.
		{"outlook message", "fwd.msg", "application/vnd.ms-outlook", msg, false},
		{"tnef", "winmail.dat", "application/ms-tnef", tnef, false},
		{"tnef, vnd label", "att.dat", "application/vnd.ms-tnef", tnef, false},
		{"text", "notes.txt", "text/plain", text, false},
		{"csv", "list.csv", "TEXT/CSV; charset=utf-8", text, false},
		{"calendar", "invite.ics", "text/calendar", text, false},
		{"forwarded mail", "fwd.eml", "message/rfc822", text, false},
		{"global mail", "fwd", "message/global", text, false},
		{"delivery status", "details", "message/delivery-status", text, false},
		{"headers", "headers", "text/rfc822-headers", text, false},
		{"report", "report", "multipart/report; report-type=delivery-status", text, false},
		{"json", "data", "application/json", text, false},
		{"xhtml", "page", "application/xhtml+xml", text, false},
		{"svg", "logo", "image/svg+xml", "<svg/>", false},
		{"vcard", "c", "application/vcard", text, false},
		{"rtf", "letter", "application/rtf", "{\\rtf1", false},
		{"s/mime signature", "smime.p7s", "application/pkcs7-signature", unknown, false},
		{"unknown binary type", "thing", "application/x-something", unknown, false},
		{"image/x-icon is not on the list", "favicon", "image/x-icon", unknown, false},
		// Allowed labels, refused content.
		{"text labelled image/png", "photo.png", "image/png", text, false},
		{"html labelled application/pdf", "doc.pdf", "application/pdf", "<html><body>zz</body></html>", false},
		{"a .msg labelled application/msword", "report.doc", "application/msword", msg, false},
		{"tnef labelled application/zip", "archive.zip", "application/zip", tnef, false},
		// Allowed labels and content, refused names.
		{".msg name", "forwarded.msg", "application/msword", cfb, false},
		{".eml name", "mail.EML", "application/zip", zip, false},
		{"winmail.dat name", "WINMAIL.DAT", "application/zip", zip, false},
		{".tnef name", "x.tnef", "application/zip", zip, false},
		{".txt name", "notes.txt", "image/png", png, false},
		{".html name", "page.html", "image/png", png, false},
		{".svg name", "logo.svg", "image/png", png, false},
		{"trailing dot and space dropped as Windows does", "mail.eml. ", "image/png", png, false},
		{"last extension counts", "scan.png.txt", "image/png", png, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := guestMayDownload(tt.filename, tt.contentType, []byte(tt.data)); got != tt.want {
				t.Errorf("guestMayDownload(%q, %q, %q) = %v, want %v", tt.filename, tt.contentType, tt.data, got, tt.want)
			}
			if tt.want && !guestMayDownloadType(tt.filename, tt.contentType) {
				t.Errorf("guestMayDownloadType(%q, %q) = false, but the whole check allows it", tt.filename, tt.contentType)
			}
		})
	}
}

// TestRedactionCoversEveryField fails when ticket.Ticket or ticket.Message
// grows a string field that guestTicket does not know about: every string
// reachable in the guest view must have been through RedactText.
func TestRedactionCoversEveryField(t *testing.T) {
	t.Parallel()
	const addr = "zzwalter@customer.test"
	m := ticket.Message{From: addr, To: []string{addr}, Cc: []string{addr}, Subject: addr, Text: addr, HTML: addr,
		MessageID: addr, InReplyTo: addr, References: []string{addr},
		Delivery:    []ticket.Recipient{{To: addr, Status: ticket.DeliveryFailed, Reason: "550 no mailbox " + addr, MessageID: "<sd.1." + addr + ">"}},
		Attachments: []ticket.Attachment{{Filename: addr, ContentType: addr, ContentID: addr, SHA256: "ab"}}}
	tk := ticket.Ticket{Subject: addr, Requester: addr, Participants: []string{addr}, Messages: []ticket.Message{m}}
	g := guestTicket(tk)
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), addr) {
		t.Errorf("guestTicket leaves %s in %s", addr, b)
	}
	if tk.Messages[0].From != addr || tk.Participants[0] != addr || tk.Messages[0].Attachments[0].Filename != addr {
		t.Errorf("guestTicket changed the ticket it was given: %+v", tk)
	}
}

func TestGuestUpdatedAtHidesInternalNotes(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	public, internal := created.Add(time.Hour), created.Add(2*time.Hour)
	tk := ticket.Ticket{ID: 18, Project: "acme", Number: 8, Ref: "acme#8", Status: ticket.StatusOpen,
		Subject: "Quiet", CreatedAt: created, UpdatedAt: internal,
		Messages: []ticket.Message{
			{ID: 80, Kind: ticket.KindEmail, Text: "public", CreatedAt: public},
			{ID: 81, Kind: ticket.KindNote, Internal: true, Text: "INTERNAL-ONLY", CreatedAt: internal},
		}}
	onlyInternal := tk
	onlyInternal.Messages = tk.Messages[1:]
	tests := []struct {
		name string
		in   ticket.Ticket
		want time.Time
	}{
		{"the newest public message, not the internal note after it", tk, public},
		{"created_at when every message is internal", onlyInternal, created},
		{"created_at in a list, which carries no messages", ticket.Ticket{CreatedAt: created, UpdatedAt: internal}, created},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := guestTicket(tt.in).UpdatedAt; !got.Equal(tt.want) {
				t.Errorf("guest updated_at = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("through the API", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		b.backend.mu.Lock()
		b.backend.tickets = append([]ticket.Ticket{tk}, b.backend.tickets...)
		b.backend.mu.Unlock()
		for _, tc := range []struct {
			role Role
			path string
			want time.Time
		}{
			{RoleGuest, "/api/v1/projects/acme/tickets/8", public},
			{RoleAgent, "/api/v1/projects/acme/tickets/8", internal},
			{RoleGuest, "/api/v1/projects/acme/tickets?per_page=1", created},
			{RoleAgent, "/api/v1/projects/acme/tickets?per_page=1", internal},
		} {
			v := decode(t, b.do(t, tc.role, "GET", tc.path))
			if ts, ok := v["tickets"].([]any); ok {
				v = ts[0].(map[string]any)
			}
			if got := v["updated_at"]; got != tc.want.Format(time.RFC3339) {
				t.Errorf("%s GET %s: updated_at = %v, want %s", tc.role, tc.path, got, tc.want.Format(time.RFC3339))
			}
		}
	})
}

func TestGuestBodiesAreCut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", GuestBodyLimit/2) + "zzbob@customer.test and more" // the cut falls in the address
	tests := []struct {
		name, in, want string
	}{
		{"short text is whole", "hello zzbob@customer.test", "hello zz***@cu***.test"},
		{"exactly the limit is whole", strings.Repeat("a", GuestBodyLimit), strings.Repeat("a", GuestBodyLimit)},
		{"one byte over is cut", strings.Repeat("a", GuestBodyLimit+1), strings.Repeat("a", GuestBodyLimit) + GuestCutMarker},
		{"cut at a character boundary, marker after", strings.Repeat("a", GuestBodyLimit-1) + "éé",
			strings.Repeat("a", GuestBodyLimit-1) + GuestCutMarker},
		{"cut before redaction", "zzbob@customer.test " + strings.Repeat("x", GuestBodyLimit),
			"zz***@cu***.test " + strings.Repeat("x", GuestBodyLimit-len("zzbob@customer.test ")) + GuestCutMarker},
		{"the limit counts bytes", long, strings.Repeat("é", GuestBodyLimit/2) + GuestCutMarker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := guestMessage(ticket.Message{Text: tt.in, HTML: tt.in})
			if m.Text != tt.want || m.HTML != tt.want {
				t.Errorf("guest text and html of %d bytes: got %d and %d bytes ending %q, want %d ending %q",
					len(tt.in), len(m.Text), len(m.HTML), tail(m.Text), len(tt.want), tail(tt.want))
			}
			if !utf8.ValidString(m.Text) {
				t.Errorf("the cut text is not valid UTF-8")
			}
		})
	}

	t.Run("agents get the whole message", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		body := strings.Repeat("x", GuestBodyLimit+10)
		b.backend.mu.Lock()
		b.backend.tickets[0].Messages = []ticket.Message{{ID: 50, Text: body, HTML: body}}
		number := b.backend.tickets[0].Number
		b.backend.mu.Unlock()
		path := fmt.Sprintf("/api/v1/projects/acme/tickets/%d", number)
		for _, role := range []Role{RoleAgent, RoleGuest} {
			m := decode(t, b.do(t, role, "GET", path))["messages"].([]any)[0].(map[string]any)
			cut := strings.HasSuffix(m["text"].(string), GuestCutMarker) && strings.HasSuffix(m["html"].(string), GuestCutMarker)
			if cut != (role == RoleGuest) || (role == RoleAgent && m["text"] != body) {
				t.Errorf("%s: text of %d bytes, cut = %v; want it cut for guests only", role, len(m["text"].(string)), cut)
			}
		}
	})
}

// tail is the end of s, for messages about long strings.
func tail(s string) string { return s[max(0, len(s)-40):] }

// BenchmarkGuestTicket measures GET of a ticket with one hostile message
// through the handler, for a guest and, as the ceiling the guest's cost is
// compared with, for an agent: the same ticket encoded with no redaction.
// The message has 8 MB of text and 8 MB of HTML ("8MB"), or GuestBodyLimit
// of each ("limit", the most a guest's redaction ever sees of a message).
// Guests get GuestBodyLimit of each body, so their cost does not grow with
// the message; the agent's does.
//
//	go test -run '^$' -bench GuestTicket -benchmem ./api/
func BenchmarkGuestTicket(b *testing.B) {
	payloads := []struct{ name, unit string }{
		{"addresses", "a@b.c "},
		{"nested escapes", "%2525252540"},
		{"nested references", "&amp;amp;#64;"},
		{"quoted-printable", "zzbob=40customer=2Etest "},
		{"tags", "b<i>@</i>c.d "},
		{"plain text", "lorem ipsum "},
	}
	for _, p := range payloads {
		for _, size := range []struct {
			name  string
			bytes int
		}{{"8MB", 8 << 20}, {"limit", GuestBodyLimit}} {
			body := strings.Repeat(p.unit, size.bytes/len(p.unit))
			backend := newFakeBackend()
			backend.tickets[0].Messages = []ticket.Message{{ID: 50, Text: body, HTML: body, From: "zzbob@customer.test"}}
			h := New(backend, []Token{
				{Name: "viewer", Token: guestToken, Role: RoleGuest},
				{Name: "helpdesk", Token: agentToken, Role: RoleAgent},
			}, nil)
			path := fmt.Sprintf("/api/v1/projects/acme/tickets/%d", backend.tickets[0].Number)
			for _, role := range []Role{RoleAgent, RoleGuest} {
				name := p.name + "/" + size.name + "/guest"
				if role == RoleAgent {
					name = p.name + "/" + size.name + "/agent-ceiling"
				}
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					var n int
					for b.Loop() {
						req := httptest.NewRequest("GET", path, nil)
						req.Header.Set("Authorization", "Bearer "+tokenFor(role))
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, req)
						if rec.Code != http.StatusOK {
							b.Fatalf("status %d: %.200s", rec.Code, rec.Body)
						}
						n = rec.Body.Len()
					}
					b.ReportMetric(float64(n), "B/answer")
				})
			}
		}
	}
}
