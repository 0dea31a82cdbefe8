package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/fakegraph"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/store"
)

// storeOf adapts the real store to Store, as cmd/servicedesk does.
type storeOf struct{ *store.Store }

func (s storeOf) DeltaLink(ctx context.Context, folder string) (string, error) {
	return s.GraphDeltaLink(ctx, folder)
}

func (s storeOf) SaveDelta(ctx context.Context, folder string, msgs []Message, link string) error {
	out := make([]store.GraphMessage, len(msgs))
	for i, m := range msgs {
		out[i] = store.GraphMessage(m)
	}
	return s.SaveGraphDelta(ctx, folder, out, link)
}

func (s storeOf) MessagesAfter(ctx context.Context, folder string, after uint32, limit int) ([]Message, error) {
	return messagesOf(s.GraphMessagesAfter(ctx, folder, after, limit))
}

func (s storeOf) MessagesByUID(ctx context.Context, folder string, uids []uint32) ([]Message, error) {
	return messagesOf(s.GraphMessagesByUID(ctx, folder, uids))
}

func messagesOf(in []store.GraphMessage, err error) ([]Message, error) {
	out := make([]Message, len(in))
	for i, m := range in {
		out[i] = Message(m)
	}
	return out, err
}

func sqliteStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), "sqlite://"+t.TempDir()+"/desk.db", nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return st
}

// sleeps records the waits between retries instead of sleeping.
type sleeps struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = append(s.waits, d)
	return nil
}

func (s *sleeps) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.waits)
}

type bundle struct {
	fake   *fakegraph.Server
	dialer *Dialer
	sleeps *sleeps
}

func setup(t *testing.T, opts Options) bundle {
	t.Helper()
	b := bundle{fake: fakegraph.New(t), sleeps: &sleeps{}}
	opts.Sleep = b.sleeps.sleep
	opts.PageSize = max(opts.PageSize, 10)
	b.dialer = NewDialer(storeOf{sqliteStore(t)}, &opts)
	return b
}

// open dials and selects the Inbox.
func (b bundle) open(t *testing.T) *Client {
	t.Helper()
	c, err := b.dialer.Dial(t.Context(), fakeConfig(b.fake))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if _, err := c.Select(t.Context(), "Inbox"); err != nil {
		t.Fatalf("select Inbox: %v", err)
	}
	return c
}

func mime(n int) string {
	return fmt.Sprintf("Message-ID: <m%d@customer.test>\r\nFrom: alice@customer.test\r\nTo: support@contoso.test\r\nSubject: help %d\r\n\r\nbody %d\r\n", n, n, n)
}

func uidsOf(es []mailbox.Entry) []uint32 {
	out := make([]uint32, len(es))
	for i, e := range es {
		out[i] = e.UID
	}
	return out
}

func TestListing(t *testing.T) {
	t.Run("pages are followed by @odata.nextLink and messages numbered in order, with their sizes", func(t *testing.T) {
		b := setup(t, Options{})
		for i := 1; i <= 25; i++ {
			b.fake.Deliver("Inbox", mime(i))
		}
		c := b.open(t)
		es, err := c.List(t.Context(), 0, 100)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(es) != 25 || es[0].UID != 1 || es[24].UID != 25 {
			t.Fatalf("List = UIDs %v; want 1..25", uidsOf(es))
		}
		if es[0].Size != int64(len(mime(1))) {
			t.Fatalf("size of UID 1 = %d; want %d (PidTagMessageSize)", es[0].Size, len(mime(1)))
		}
		if n := b.fake.Count("GET /v1.0/users/support@contoso.test/mail"); n != 3+1 {
			t.Fatalf("%d folder and delta requests; want the folder and 3 pages of 10", n)
		}
		q := b.fake.DeltaQueries()[0]
		if q.Get("$select") != "id,internetMessageId,receivedDateTime" ||
			q.Get("$expand") != "singleValueExtendedProperties($filter=id eq 'Integer 0x0E08')" {
			t.Fatalf("first delta query = %v; want only the IDs, Message-ID, arrival and the size property", q)
		}
		if b.fake.PreferIDs() == 0 {
			t.Fatal("no request asked for immutable IDs")
		}
	})

	t.Run("a later round lists only new mail, and known messages keep their UIDs", func(t *testing.T) {
		b := setup(t, Options{})
		b.fake.Deliver("Inbox", mime(1))
		c := b.open(t)
		if es, err := c.List(t.Context(), 0, 100); err != nil || len(es) != 1 {
			t.Fatalf("first List = %v, %v; want UID 1", uidsOf(es), err)
		}
		if es, err := c.List(t.Context(), 1, 100); err != nil || len(es) != 0 {
			t.Fatalf("List after UID 1 with nothing new = %v, %v; want none", uidsOf(es), err)
		}
		if err := c.MarkSeen(t.Context(), []uint32{1}); err != nil { // an update in the next round
			t.Fatalf("MarkSeen: %v", err)
		}
		b.fake.Deliver("Inbox", mime(2))
		es, err := c.List(t.Context(), 1, 100)
		if err != nil || fmt.Sprint(uidsOf(es)) != "[2]" {
			t.Fatalf("List after UID 1 = %v, %v; want [2]", uidsOf(es), err)
		}
		if len(b.fake.DeltaQueries()) != 1 {
			t.Fatalf("%d rounds started from scratch; want 1 (the later ones follow the @odata.deltaLink)", len(b.fake.DeltaQueries()))
		}
	})

	t.Run("a limit stops reading pages once enough new mail is numbered", func(t *testing.T) {
		b := setup(t, Options{})
		for i := 1; i <= 35; i++ {
			b.fake.Deliver("Inbox", mime(i))
		}
		c := b.open(t)
		es, err := c.List(t.Context(), 0, 5)
		if err != nil || fmt.Sprint(uidsOf(es)) != "[1 2 3 4 5]" {
			t.Fatalf("List(0, 5) = %v, %v; want [1 2 3 4 5]", uidsOf(es), err)
		}
		if n := b.fake.Count("GET /v1.0/users/support@contoso.test/mailfolders('"); n != 0 {
			t.Fatalf("%d follow-up pages read for a limit one page meets; want 0", n)
		}
		es, err = c.List(t.Context(), 5, 100)
		if err != nil || len(es) != 30 || es[0].UID != 6 {
			t.Fatalf("List(5, 100) = %v, %v; want UIDs 6..35", uidsOf(es), err)
		}
	})

	t.Run("an expired delta state starts a new round without renumbering", func(t *testing.T) {
		b := setup(t, Options{})
		b.fake.Deliver("Inbox", mime(1))
		c := b.open(t)
		if _, err := c.List(t.Context(), 0, 100); err != nil {
			t.Fatal(err)
		}
		b.fake.Deliver("Inbox", mime(2))
		b.fake.FailNext("GET", "/messages/delta", 1, http.StatusGone, "", "SyncStateNotFound")
		es, err := c.List(t.Context(), 1, 100)
		if err != nil || fmt.Sprint(uidsOf(es)) != "[2]" {
			t.Fatalf("List after 410 = %v, %v; want [2]", uidsOf(es), err)
		}
	})
}

func TestFetch(t *testing.T) {
	t.Run("downloads the MIME source of each UID in order", func(t *testing.T) {
		b := setup(t, Options{})
		ids := []string{b.fake.Deliver("Inbox", mime(1)), b.fake.Deliver("Inbox", mime(2))}
		c := b.open(t)
		if _, err := c.List(t.Context(), 0, 100); err != nil {
			t.Fatal(err)
		}
		var got []string
		err := c.Fetch(t.Context(), []uint32{2, 1, 2, 99}, func(uid uint32, raw []byte) error {
			got = append(got, fmt.Sprintf("%d:%s", uid, raw))
			return nil
		})
		want := []string{"1:" + mime(1), "2:" + mime(2)}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Fetch = %q, %v; want %q", got, err, want)
		}
		if b.fake.Downloads(ids[0]) != 1 {
			t.Fatalf("message 1 downloaded %d times; want once", b.fake.Downloads(ids[0]))
		}
	})

	t.Run("downloads several at once but hands them over in UID order; an error from fn stops it", func(t *testing.T) {
		b := setup(t, Options{Downloads: 3})
		for i := 1; i <= 20; i++ {
			b.fake.Deliver("Inbox", mime(i))
		}
		c := b.open(t)
		if _, err := c.List(t.Context(), 0, 100); err != nil {
			t.Fatal(err)
		}
		b.fake.FailNext("GET", "AAMkADMsg0002=/$value", 1, http.StatusServiceUnavailable, "", "ServiceNotAvailable")
		var got []uint32
		all := make([]uint32, 20)
		for i := range all {
			all[i] = uint32(i + 1)
		}
		stop := errors.New("stop")
		err := c.Fetch(t.Context(), all, func(uid uint32, raw []byte) error {
			if !strings.Contains(string(raw), fmt.Sprintf("help %d\r\n", uid)) {
				t.Errorf("UID %d got the body of another message", uid)
			}
			got = append(got, uid)
			if uid == 15 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || len(got) != 15 || got[0] != 1 || got[14] != 15 {
			t.Fatalf("Fetch = %v after %v; want UIDs 1..15 in order, then fn's error", err, got)
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("UIDs handed over out of order: %v", got)
			}
		}
	})

	t.Run("reads no more than the limit and one byte", func(t *testing.T) {
		b := setup(t, Options{MaxMessageSize: 50})
		b.fake.Deliver("Inbox", mime(1)+strings.Repeat("x", 1000))
		c := b.open(t)
		if _, err := c.List(t.Context(), 0, 100); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.Fetch(t.Context(), []uint32{1}, func(_ uint32, raw []byte) error { n = len(raw); return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 51 {
			t.Fatalf("read %d bytes; want 51", n)
		}
	})

	t.Run("a message gone from the mailbox is skipped", func(t *testing.T) {
		b := setup(t, Options{})
		b.fake.Deliver("Inbox", mime(1))
		b.fake.Deliver("Inbox", mime(2))
		c := b.open(t)
		if _, err := c.List(t.Context(), 0, 100); err != nil {
			t.Fatal(err)
		}
		b.fake.FailNext("GET", "AAMkADMsg0001=/$value", 1, http.StatusNotFound, "", "ErrorItemNotFound")
		var got []uint32
		err := c.Fetch(t.Context(), []uint32{1, 2}, func(uid uint32, _ []byte) error { got = append(got, uid); return nil })
		if err != nil || fmt.Sprint(got) != "[2]" {
			t.Fatalf("Fetch = %v, %v; want [2] only", got, err)
		}
	})
}

func TestThrottling(t *testing.T) {
	t.Run("429 with Retry-After is waited out, then the call succeeds", func(t *testing.T) {
		b := setup(t, Options{})
		b.fake.Deliver("Inbox", mime(1))
		c := b.open(t)
		b.fake.FailNext("GET", "/messages/delta", 2, http.StatusTooManyRequests, "3", "TooManyRequests")
		es, err := c.List(t.Context(), 0, 100)
		if err != nil || len(es) != 1 {
			t.Fatalf("List = %v, %v; want UID 1 after the throttling", uidsOf(es), err)
		}
		if got := b.sleeps.String(); got != "[3s 3s]" {
			t.Fatalf("waits = %s; want [3s 3s] (Retry-After, twice)", got)
		}
		if n := b.fake.Count("GET /v1.0/users/support@contoso.test/mailFolders/AAMkInbox=/messages/delta"); n != 3 {
			t.Fatalf("%d delta requests; want 3 (two throttled, one answered)", n)
		}
	})

	t.Run("every answer that asks to wait is told to Options.Throttled, with the mailbox's name and the status", func(t *testing.T) {
		var mu sync.Mutex
		var told []string
		b := setup(t, Options{Throttled: func(name string, status int) {
			mu.Lock()
			defer mu.Unlock()
			told = append(told, fmt.Sprintf("%s %d", name, status))
		}})
		b.fake.Deliver("Inbox", mime(1))
		cfg := fakeConfig(b.fake)
		cfg.Name = "acme"
		c, err := b.dialer.Dial(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select(t.Context(), "Inbox"); err != nil {
			t.Fatal(err)
		}
		b.fake.FailNext("GET", "/messages/delta", 1, http.StatusTooManyRequests, "1", "TooManyRequests")
		b.fake.FailNext("GET", "/messages/delta", 1, http.StatusServiceUnavailable, "", "ServiceNotAvailable")
		b.fake.FailNext("GET", "/messages/delta", 1, http.StatusTooManyRequests, "600", "TooManyRequests")
		if _, err := c.List(t.Context(), 0, 100); !errors.Is(err, mailbox.ErrUnavailable) {
			t.Fatalf("List = %v; want the third, too long, wait to end it", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := strings.Join(told, ", "); got != "acme 429, acme 503, acme 429" {
			t.Fatalf("Throttled was told %q; want each of the three answers", got)
		}
	})

	t.Run("503 without Retry-After backs off, doubling", func(t *testing.T) {
		b := setup(t, Options{})
		c := b.open(t)
		b.fake.FailNext("GET", "/messages/delta", 3, http.StatusServiceUnavailable, "", "ServiceNotAvailable")
		if _, err := c.List(t.Context(), 0, 100); err != nil {
			t.Fatalf("List: %v", err)
		}
		if got := b.sleeps.String(); got != "[1s 2s 4s]" {
			t.Fatalf("waits = %s; want [1s 2s 4s]", got)
		}
	})

	t.Run("a Retry-After longer than the longest wait ends the call with a temporary error, at once", func(t *testing.T) {
		b := setup(t, Options{})
		c := b.open(t)
		b.fake.FailNext("GET", "/messages/delta", 1, http.StatusTooManyRequests, "600", "TooManyRequests")
		_, err := c.List(t.Context(), 0, 100)
		if !errors.Is(err, mailbox.ErrUnavailable) || !mailbox.Temporary(err) {
			t.Fatalf("List = %v; want a temporary throttling error", err)
		}
		if !strings.Contains(err.Error(), "429 TooManyRequests") || !strings.Contains(err.Error(), "retry after 10m0s") {
			t.Fatalf("error %q does not say it was throttled and for how long", err)
		}
		if got := b.sleeps.String(); got != "[]" {
			t.Fatalf("waits = %s; want none", got)
		}
	})

	t.Run("throttling that does not end gives up after the retries, never spinning", func(t *testing.T) {
		b := setup(t, Options{Retries: 3})
		c := b.open(t)
		b.fake.FailNext("GET", "/messages/delta", 100, http.StatusTooManyRequests, "1", "TooManyRequests")
		_, err := c.List(t.Context(), 0, 100)
		if !mailbox.Temporary(err) {
			t.Fatalf("List = %v; want a temporary error", err)
		}
		if n := b.fake.Count("GET /v1.0/users/support@contoso.test/mailFolders/AAMkInbox=/messages/delta"); n != 4 {
			t.Fatalf("%d delta requests; want 4 (the first and 3 retries)", n)
		}
		if got := b.sleeps.String(); got != "[1s 1s 1s]" {
			t.Fatalf("waits = %s; want one Retry-After before each retry", got)
		}
	})

	t.Run("Retry-After as an HTTP date", func(t *testing.T) {
		now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		if got := retryAfter(now.Add(7*time.Second).Format(http.TimeFormat), now); got != 7*time.Second {
			t.Fatalf("retryAfter(date 7s ahead) = %s; want 7s", got)
		}
		if got := retryAfter("soon", now); got != 0 {
			t.Fatalf("retryAfter(soon) = %s; want 0", got)
		}
	})
}

func TestTokens(t *testing.T) {
	t.Run("an access token that expires mid-run is replaced once and the call succeeds", func(t *testing.T) {
		b := setup(t, Options{})
		b.fake.Deliver("Inbox", mime(1))
		c := b.open(t)
		b.fake.ExpireTokens()
		es, err := c.List(t.Context(), 0, 100)
		if err != nil || len(es) != 1 {
			t.Fatalf("List after the token expired = %v, %v; want UID 1", uidsOf(es), err)
		}
		if b.fake.TokenRequests() != 2 {
			t.Fatalf("%d token requests; want 2 (the first and one refresh)", b.fake.TokenRequests())
		}
	})

	t.Run("a token Graph refuses twice is a login failure, not temporary", func(t *testing.T) {
		b := setup(t, Options{})
		c := b.open(t)
		b.fake.FailNext("GET", "/messages/delta", 2, http.StatusUnauthorized, "", "InvalidAuthenticationToken")
		_, err := c.List(t.Context(), 0, 100)
		if !errors.Is(err, mailbox.ErrAuth) || mailbox.Temporary(err) {
			t.Fatalf("List = %v; want a permanent login error", err)
		}
	})

	t.Run("clients of one app registration share one token", func(t *testing.T) {
		b := setup(t, Options{})
		for range 3 {
			b.open(t)
		}
		if b.fake.TokenRequests() != 1 {
			t.Fatalf("%d token requests for 3 clients; want 1", b.fake.TokenRequests())
		}
	})

	for _, tt := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"a wrong client secret", func(c *Config) { c.ClientSecret = "wrong-hunter2" }, "401 invalid_client: AADSTS7000215"},
		{"an unknown tenant", func(c *Config) { c.TenantID = "nowhere.test" }, "400 invalid_request: AADSTS90002: Tenant 'nowhere.test' not found."},
	} {
		t.Run(tt.name+" fails the dial with the endpoint's reason and no secret", func(t *testing.T) {
			b := setup(t, Options{})
			cfg := fakeConfig(b.fake)
			tt.change(&cfg)
			_, err := b.dialer.Dial(t.Context(), cfg)
			if !errors.Is(err, mailbox.ErrAuth) || mailbox.Temporary(err) {
				t.Fatalf("Dial = %v; want a permanent login error", err)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "Trace ID") {
				t.Fatalf("Dial error %q; want %q without the trace lines", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), b.fake.Secret) {
				t.Fatalf("Dial error %q shows a secret", err)
			}
		})
	}

	t.Run("an unreachable token endpoint is temporary", func(t *testing.T) {
		b := setup(t, Options{})
		cfg := fakeConfig(b.fake)
		cfg.AuthorityURL = "http://127.0.0.1:1"
		if _, err := b.dialer.Dial(t.Context(), cfg); err == nil || !mailbox.Temporary(err) {
			t.Fatalf("Dial = %v; want a temporary error", err)
		}
	})
}

func TestFolders(t *testing.T) {
	t.Run("a missing folder is ErrNoMailbox", func(t *testing.T) {
		b := setup(t, Options{})
		c, err := b.dialer.Dial(t.Context(), fakeConfig(b.fake))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select(t.Context(), "Inbox/Support"); !errors.Is(err, mailbox.ErrNoMailbox) || mailbox.Temporary(err) {
			t.Fatalf("Select(Inbox/Support) = %v; want ErrNoMailbox", err)
		}
	})

	t.Run("an unknown mailbox says so, not that the folder is missing", func(t *testing.T) {
		b := setup(t, Options{})
		cfg := fakeConfig(b.fake)
		cfg.User = "nobody@contoso.test"
		c, err := b.dialer.Dial(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Select(t.Context(), "Inbox")
		if err == nil || errors.Is(err, mailbox.ErrNoMailbox) || !strings.Contains(err.Error(), "404 ErrorInvalidUser") {
			t.Fatalf("Select for an unknown user = %v; want Graph's ErrorInvalidUser", err)
		}
	})

	t.Run("a child folder is found by display name, and its ID gives the UIDVALIDITY", func(t *testing.T) {
		b := setup(t, Options{})
		b.fake.AddFolder("AAMkSupport=", "Support", "AAMkInbox=")
		c, err := b.dialer.Dial(t.Context(), fakeConfig(b.fake))
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.Select(t.Context(), "Inbox/Support")
		if err != nil || c.folderID != "AAMkSupport=" {
			t.Fatalf("Select(Inbox/Support) = %v, folder %q; want AAMkSupport=", err, c.folderID)
		}
		inbox, _ := c.Select(t.Context(), "Inbox")
		if st.UIDValidity == 0 || st.UIDValidity == inbox.UIDValidity {
			t.Fatalf("UIDVALIDITY %d for Support, %d for Inbox; want distinct, nonzero", st.UIDValidity, inbox.UIDValidity)
		}
	})
}

func TestAfterProcessing(t *testing.T) {
	setupTwo := func(t *testing.T) (bundle, *Client, []string) {
		b := setup(t, Options{})
		ids := []string{b.fake.Deliver("Inbox", mime(1)), b.fake.Deliver("Inbox", mime(2))}
		c := b.open(t)
		if _, err := c.List(t.Context(), 0, 100); err != nil {
			t.Fatal(err)
		}
		return b, c, ids
	}

	t.Run("seen marks the messages read", func(t *testing.T) {
		b, c, ids := setupTwo(t)
		if err := c.MarkSeen(t.Context(), []uint32{1}); err != nil {
			t.Fatal(err)
		}
		if !b.fake.Message(ids[0]).IsRead || b.fake.Message(ids[1]).IsRead {
			t.Fatal("want message 1 read and message 2 not")
		}
	})

	t.Run("move makes the folder once and moves the messages into it", func(t *testing.T) {
		b, c, ids := setupTwo(t)
		if err := c.Move(t.Context(), []uint32{1}, "Processed"); err != nil {
			t.Fatal(err)
		}
		if err := c.Move(t.Context(), []uint32{2}, "Processed"); err != nil {
			t.Fatal(err)
		}
		processed := b.fake.FolderID("Processed")
		if b.fake.Message(ids[0]).Folder != processed || b.fake.Message(ids[1]).Folder != processed {
			t.Fatal("messages not in Processed")
		}
		if n := b.fake.Count("POST /v1.0/users/support@contoso.test/mailFolders"); n != 1 {
			t.Fatalf("%d folders created; want 1", n)
		}
		// Moved mail leaves the folder: a later round lists nothing new.
		if es, err := c.List(t.Context(), 2, 100); err != nil || len(es) != 0 {
			t.Fatalf("List after the move = %v, %v; want nothing", uidsOf(es), err)
		}
	})

	t.Run("delete deletes; a message already gone is no error", func(t *testing.T) {
		b, c, ids := setupTwo(t)
		if err := c.Delete(t.Context(), []uint32{1}); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(t.Context(), []uint32{1, 2}); err != nil {
			t.Fatalf("Delete of a message already deleted: %v", err)
		}
		if b.fake.Message(ids[0]).ID != "" || b.fake.Message(ids[1]).ID != "" {
			t.Fatal("messages still there")
		}
	})
}

// A link Graph hands out is only followed under the configured API base:
// it gets the access token.
func TestLinksOutsideTheAPIAreRefused(t *testing.T) {
	b := setup(t, Options{})
	c := b.open(t)
	_, err := c.do(t.Context(), request{op: "follow", method: http.MethodGet, url: "https://attacker.test/v1.0/x?$skiptoken=s"})
	if err == nil || !strings.Contains(err.Error(), "not under the configured api_url") || strings.Contains(err.Error(), "skiptoken") {
		t.Fatalf("do(outside link) = %v; want a refusal without the link's query", err)
	}
}

// fakeConfig is the mailbox of the fake Graph.
func fakeConfig(f *fakegraph.Server) Config {
	return Config{TenantID: f.Tenant, ClientID: f.ClientID, ClientSecret: f.Secret, User: f.User,
		AuthorityURL: f.URL, APIURL: f.URL + "/v1.0"}
}
