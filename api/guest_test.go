package api

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

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

func TestGuestMayDownloadType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		contentType string
		want        bool
	}{
		{"image/png", true},
		{"image/jpeg", true},
		{"application/pdf", true},
		{"application/vnd.openxmlformats-officedocument.wordprocessingml.document", true},
		{"application/zip", true},
		{"application/octet-stream", true},
		{"not a media type", true}, // judged by its content
		{"text/plain", false},
		{"TEXT/CSV; charset=utf-8", false},
		{"text/calendar", false},
		{"message/rfc822", false},
		{"message/global", false},
		{"message/delivery-status", false},
		{"message/global-delivery-status", false},
		{"text/rfc822-headers", false},
		{"multipart/report; report-type=delivery-status", false},
		{"message/disposition-notification", false},
		{"application/json", false},
		{"application/xhtml+xml", false},
		{"image/svg+xml", false},
		{"application/ld+json", false},
		{"application/vcard", false},
		{"application/pkcs7-signature", false},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			t.Parallel()
			if got := guestMayDownloadType(tt.contentType); got != tt.want {
				t.Errorf("guestMayDownloadType(%q) = %v, want %v", tt.contentType, got, tt.want)
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
