package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

type unsubscribes struct {
	mu    sync.Mutex
	calls []string
}

func (u *unsubscribes) Unsubscribe(_ context.Context, project string, number int64, email string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, ticket.FormatRef(project, number)+" "+email)
	return nil
}

type customerBundle struct {
	*bundle
	links *ticket.CustomerLinks
	unsub *unsubscribes
	now   time.Time
}

// setupCustomer serves the customer pages over the fake backend, whose
// ticket acme#1 also gets an internal note with a file.
func setupCustomer(t *testing.T) *customerBundle {
	t.Helper()
	c := &customerBundle{unsub: &unsubscribes{}, now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	var err error
	c.links, err = ticket.NewCustomerLinks([]byte("customer link secret 0123"), "https://desk.example.test",
		ticket.LinkOptions{TTL: 24 * time.Hour, Now: func() time.Time { return c.now }})
	if err != nil {
		t.Fatal(err)
	}
	c.bundle = setup(t, &Options{Customer: &Customer{Links: c.links, Unsubscribe: c.unsub}})
	f := c.backend
	for i := range f.tickets {
		if f.tickets[i].Number == 1 {
			f.tickets[i].Messages = append(f.tickets[i].Messages, ticket.Message{
				ID: 7, Direction: ticket.DirectionOutbound, Kind: ticket.KindNote, From: "dana", Internal: true,
				Text: "SECRET: customer is difficult", CreatedAt: f.tickets[i].CreatedAt.Add(2 * time.Minute),
				Attachments: []ticket.Attachment{{ID: 8, Filename: "internal.pdf", ContentType: "application/pdf", Size: 5}},
			})
		}
	}
	f.attachments[8] = []byte("%PDF-")
	return c
}

// get requests the path of a signed link as a browser would, with no token.
func (c *customerBundle) get(t *testing.T, method, link string) *httptest.ResponseRecorder {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(method, u.RequestURI(), nil)
	rec := httptest.NewRecorder()
	c.handler.ServeHTTP(rec, req)
	return rec
}

func TestCustomerTicketPage(t *testing.T) {
	c := setupCustomer(t)
	alice := c.links.TicketURL("acme", 1, "alice@customer.test")

	t.Run("the recipient's link opens the ticket's public messages as HTML without script", func(t *testing.T) {
		rec := c.get(t, http.MethodGet, alice)
		body := rec.Body.String()
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			t.Fatalf("status %d, Content-Type %q: %s", rec.Code, rec.Header().Get("Content-Type"), body)
		}
		for _, want := range []string{"Printer on fire (alice@customer.test)", "acme#1", "Open", "We got it.",
			"Acme Support", "<strong>You</strong>", "report.pdf", `name="viewport"`} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q:\n%s", want, body)
			}
		}
		for _, banned := range []string{"<script", "SECRET", "internal.pdf", "r.eve@mail.partner.test", "carol@partner.test"} {
			if strings.Contains(body, banned) {
				t.Errorf("page shows %q:\n%s", banned, body)
			}
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("Content-Security-Policy = %q, want no script", csp)
		}
		if rp := rec.Header().Get("Referrer-Policy"); rp != "no-referrer" {
			t.Errorf("Referrer-Policy = %q: the signed link would leak to other sites", rp)
		}
	})
	t.Run("another recipient sees the first one's address obfuscated", func(t *testing.T) {
		body := c.get(t, http.MethodGet, c.links.TicketURL("acme", 1, "carol@partner.test")).Body.String()
		if strings.Contains(body, "alice@customer.test") || !strings.Contains(body, "al***@cu***.test") {
			t.Errorf("carol's page shows alice's address, or no obfuscated form of it:\n%s", body)
		}
	})
	forbidden := []struct{ name, link, want string }{
		{"a forged signature", strings.Replace(alice, "s=", "s=x", 1), "not valid"},
		{"another recipient put in", strings.Replace(alice, "r=", "r=Y2Fyb2xAcGFydG5lci50ZXN0&x=", 1), "not valid"},
		{"another ticket's number", strings.Replace(alice, "/tickets/acme/1?", "/tickets/acme/2?", 1), "not valid"},
		{"no signature at all", "https://desk.example.test/tickets/acme/1", "not valid"},
	}
	for _, tc := range forbidden {
		t.Run(tc.name+" gets 403 and nothing of the ticket", func(t *testing.T) {
			rec := c.get(t, http.MethodGet, tc.link)
			body := rec.Body.String()
			if rec.Code != http.StatusForbidden || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d, want 403 saying %q: %s", rec.Code, tc.want, body)
			}
			if strings.Contains(body, "Printer") || strings.Contains(body, "We got it") {
				t.Fatalf("the 403 page shows the ticket: %s", body)
			}
		})
	}
	t.Run("an expired link gets 403 saying so", func(t *testing.T) {
		link := c.links.TicketURL("acme", 1, "alice@customer.test")
		c.now = c.now.Add(25 * time.Hour)
		defer func() { c.now = c.now.Add(-25 * time.Hour) }()
		rec := c.get(t, http.MethodGet, link)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "expired") ||
			strings.Contains(rec.Body.String(), "Printer") {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
	t.Run("the link needs no token and the JSON API still does", func(t *testing.T) {
		if rec := c.do(t, RoleNone, http.MethodGet, "/api/v1/projects/acme/tickets/1"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("API without a token: %d", rec.Code)
		}
	})
	t.Run("without Options.Customer there are no customer pages", func(t *testing.T) {
		plain := setup(t, nil)
		u, _ := url.Parse(alice)
		rec := httptest.NewRecorder()
		plain.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, u.RequestURI(), nil))
		if rec.Code != http.StatusNotFound {
			t.Fatalf("status %d, want 404", rec.Code)
		}
	})
}

func TestCustomerAttachments(t *testing.T) {
	c := setupCustomer(t)
	cases := []struct {
		name   string
		viewer string
		id     int64
		status int
	}{
		{"a public PDF downloads through the signed link", "alice@customer.test", 3, http.StatusOK},
		{"the viewer's own text file downloads", "alice@customer.test", 4, http.StatusOK},
		{"another customer's text file is refused as to a guest", "carol@partner.test", 4, http.StatusForbidden},
		{"an internal note's file is as absent as a missing one", "alice@customer.test", 8, http.StatusNotFound},
		{"a file of another ticket is not found", "alice@customer.test", 99, http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := c.get(t, http.MethodGet, c.links.AttachmentURL("acme", 1, tc.id, tc.viewer))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusOK && rec.Body.String() != string(c.backend.attachments[tc.id]) {
				t.Fatalf("body %q, want the file", rec.Body)
			}
		})
	}
	t.Run("a tampered attachment link gets 403", func(t *testing.T) {
		link := c.links.AttachmentURL("acme", 1, 3, "alice@customer.test")
		rec := c.get(t, http.MethodGet, strings.Replace(link, "/attachments/3?", "/attachments/4?", 1))
		if rec.Code != http.StatusOK {
			// the signature is per ticket and recipient: another file of the same ticket is hers too
			t.Fatalf("another file of alice's own ticket: %d", rec.Code)
		}
		rec = c.get(t, http.MethodGet, strings.Replace(link, "e=", "e=1", 1))
		if rec.Code != http.StatusForbidden {
			t.Fatalf("changed expiry: %d, want 403", rec.Code)
		}
	})
}

func TestCustomerUnsubscribe(t *testing.T) {
	c := setupCustomer(t)
	link := c.links.UnsubscribeURL("acme", 1, "alice@customer.test")

	t.Run("GET shows a button and changes nothing", func(t *testing.T) {
		rec := c.get(t, http.MethodGet, link)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `<form method="post"`) {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if len(c.unsub.calls) != 0 {
			t.Fatalf("GET unsubscribed: %v", c.unsub.calls)
		}
	})
	t.Run("a one-click POST (RFC 8058) unsubscribes the link's recipient", func(t *testing.T) {
		u, _ := url.Parse(link)
		req := httptest.NewRequest(http.MethodPost, u.RequestURI(), strings.NewReader("List-Unsubscribe=One-Click"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		c.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || len(c.unsub.calls) != 1 || c.unsub.calls[0] != "acme#1 alice@customer.test" {
			t.Fatalf("status %d, calls %v: %s", rec.Code, c.unsub.calls, rec.Body)
		}
	})
	t.Run("a forged unsubscribe link changes nothing", func(t *testing.T) {
		before := len(c.unsub.calls)
		rec := c.get(t, http.MethodPost, strings.Replace(link, "/tickets/acme/1/", "/tickets/acme/2/", 1))
		if rec.Code != http.StatusForbidden || len(c.unsub.calls) != before {
			t.Fatalf("status %d, calls %v", rec.Code, c.unsub.calls)
		}
	})
	t.Run("a view link does not unsubscribe", func(t *testing.T) {
		view, _ := url.Parse(c.links.TicketURL("acme", 1, "alice@customer.test"))
		rec := c.get(t, http.MethodPost, "https://desk.example.test/tickets/acme/1/unsubscribe?"+view.RawQuery)
		if rec.Code != http.StatusForbidden {
			t.Fatalf("status %d, want 403", rec.Code)
		}
	})
}

func TestGuestSeesUnsubscribedObfuscated(t *testing.T) {
	b := setup(t, nil)
	b.backend.tickets[2].Unsubscribed = []string{"carol@partner.test"}
	body := b.do(t, RoleGuest, http.MethodGet, "/api/v1/projects/acme/tickets/1").Body.String()
	if !strings.Contains(body, `"unsubscribed":["ca***@pa***.test"]`) {
		t.Fatalf("guest's ticket JSON: %s", body)
	}
	body = b.do(t, RoleAgent, http.MethodGet, "/api/v1/projects/acme/tickets/1").Body.String()
	if !strings.Contains(body, `"unsubscribed":["carol@partner.test"]`) {
		t.Fatalf("agent's ticket JSON: %s", body)
	}
}
