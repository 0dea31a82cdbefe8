package ticket

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func newTestLinks(t *testing.T, now *time.Time) *CustomerLinks {
	t.Helper()
	l, err := NewCustomerLinks([]byte("0123456789abcdef0123"), "https://desk.example.test/", LinkOptions{
		TTL: time.Hour, Now: func() time.Time { return *now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func queryOf(t *testing.T, link string) url.Values {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("parse %q: %v", link, err)
	}
	return u.Query()
}

func TestCustomerLinksView(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	l := newTestLinks(t, &now)
	link := l.TicketURL("acme", 12, "Alice@Customer.test")
	if !strings.HasPrefix(link, "https://desk.example.test/tickets/acme/12?") {
		t.Fatalf("ticket URL %q: want it under the public URL at /tickets/acme/12", link)
	}
	good := queryOf(t, link)

	t.Run("a fresh link opens its ticket for its recipient", func(t *testing.T) {
		rcpt, err := l.VerifyView("acme", 12, good)
		if err != nil || rcpt != "alice@customer.test" {
			t.Fatalf("VerifyView = %q, %v; want alice@customer.test, nil", rcpt, err)
		}
	})
	t.Run("an attachment link verifies like the page", func(t *testing.T) {
		a := l.AttachmentURL("acme", 12, 7, "alice@customer.test")
		if !strings.Contains(a, "/tickets/acme/12/attachments/7?") {
			t.Fatalf("attachment URL %q", a)
		}
		if _, err := l.VerifyView("acme", 12, queryOf(t, a)); err != nil {
			t.Fatal(err)
		}
	})
	forged := func(mod func(q url.Values)) url.Values {
		q := url.Values{}
		for k, v := range good {
			q[k] = append([]string(nil), v...)
		}
		mod(q)
		return q
	}
	cases := []struct {
		name    string
		project string
		number  int64
		q       url.Values
		want    error
	}{
		{"another ticket's number is refused", "acme", 13, good, ErrLinkForged},
		{"another project is refused", "other", 12, good, ErrLinkForged},
		{"another recipient is refused", "acme", 12, forged(func(q url.Values) { q.Set("r", b64.EncodeToString([]byte("mallory@evil.test"))) }), ErrLinkForged},
		{"a later expiry is refused", "acme", 12, forged(func(q url.Values) { q.Set("e", "99999999999") }), ErrLinkForged},
		{"a changed signature is refused", "acme", 12, forged(func(q url.Values) { q.Set("s", "AAAAAAAAAAAAAAAAAAAAAA") }), ErrLinkForged},
		{"a missing signature is refused", "acme", 12, forged(func(q url.Values) { q.Del("s") }), ErrLinkForged},
		{"garbage is refused", "acme", 12, url.Values{"r": {"%%%"}, "e": {"x"}, "s": {"!"}}, ErrLinkForged},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := l.VerifyView(tc.project, tc.number, tc.q); !errors.Is(err, tc.want) {
				t.Fatalf("VerifyView = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("a link signed with another secret is refused", func(t *testing.T) {
		other, _ := NewCustomerLinks([]byte("another secret of 16+ bytes"), "https://desk.example.test", LinkOptions{})
		if _, err := other.VerifyView("acme", 12, good); !errors.Is(err, ErrLinkForged) {
			t.Fatalf("VerifyView = %v, want ErrLinkForged", err)
		}
	})
	t.Run("an expired link says so", func(t *testing.T) {
		now = now.Add(time.Hour)
		if _, err := l.VerifyView("acme", 12, good); !errors.Is(err, ErrLinkExpired) {
			t.Fatalf("VerifyView after the TTL = %v, want ErrLinkExpired", err)
		}
	})
}

func TestCustomerLinksUnsubscribe(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	l := newTestLinks(t, &now)

	t.Run("the one-click link names its recipient and never expires", func(t *testing.T) {
		q := queryOf(t, l.UnsubscribeURL("acme", 12, "alice@customer.test"))
		now = now.Add(10 * 365 * 24 * time.Hour)
		rcpt, err := l.VerifyUnsubscribe("acme", 12, q)
		if err != nil || rcpt != "alice@customer.test" {
			t.Fatalf("VerifyUnsubscribe = %q, %v", rcpt, err)
		}
		if _, err := l.VerifyUnsubscribe("acme", 13, q); !errors.Is(err, ErrLinkForged) {
			t.Fatalf("for another ticket: %v, want ErrLinkForged", err)
		}
	})
	t.Run("a view link is not an unsubscribe link", func(t *testing.T) {
		q := queryOf(t, l.TicketURL("acme", 12, "alice@customer.test"))
		if _, err := l.VerifyUnsubscribe("acme", 12, q); !errors.Is(err, ErrLinkForged) {
			t.Fatalf("VerifyUnsubscribe of a view link = %v, want ErrLinkForged", err)
		}
	})
	t.Run("the mailto address fits a local part and verifies for its recipient only", func(t *testing.T) {
		addr := l.UnsubscribeAddress("support@example.test", "acme", 1234, "alice@customer.test")
		local, _, _ := strings.Cut(addr, "@")
		if len(local) > 64 {
			t.Fatalf("local part %q is %d characters, more than 64", local, len(local))
		}
		n, mac, ok := FindUnsubscribeToken(strings.ToUpper(addr))
		if !ok || n != 1234 {
			t.Fatalf("FindUnsubscribeToken(%q) = %d, %q, %v", addr, n, mac, ok)
		}
		if !l.VerifyUnsubscribeToken("acme", n, mac, "Alice@customer.test") {
			t.Fatal("token does not verify for its recipient")
		}
		if l.VerifyUnsubscribeToken("acme", n, mac, "mallory@evil.test") {
			t.Fatal("token verifies for another sender")
		}
		if l.VerifyUnsubscribeToken("acme", n+1, mac, "alice@customer.test") {
			t.Fatal("token verifies for another ticket")
		}
	})
	t.Run("a reply key address is not an unsubscribe address", func(t *testing.T) {
		if _, _, ok := FindUnsubscribeToken("support+r1-2s-abcdefghijklmnopqrst@example.test"); ok {
			t.Fatal("reply key taken for an unsubscribe token")
		}
	})
}

func TestDeriveLinkSecretIsNotTheReplyKeySecret(t *testing.T) {
	s := []byte("reply key secret 0123456789")
	d := DeriveLinkSecret(s)
	if string(d) == string(s) || len(d) < 16 {
		t.Fatalf("derived secret %x", d)
	}
}
