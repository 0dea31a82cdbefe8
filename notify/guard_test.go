package notify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

func TestUnmailable(t *testing.T) {
	t.Parallel()
	desks := []string{"support@example.test", "Help@Other.test"}
	tests := []struct {
		addr string
		want bool
	}{
		{"alice@customer.test", false},
		{"Alice <alice@customer.test>", false},
		{"alice+tickets@customer.test", false},
		{"supporter@example.test", false},
		{"support@example.org", false},
		{"replyguy@customer.test", false},
		{"noreply@customer.test", true},
		{"no-reply@customer.test", true},
		{"do-not-reply@customer.test", true},
		{"DoNotReply@customer.test", true},
		{"shop-noreply@customer.test", true},
		{"notifications-noreply@customer.test", true},
		{"MAILER-DAEMON@customer.test", true},
		{"postmaster@customer.test", true},
		{"bounces+123-abc@lists.test", true},
		{"support@example.test", true},
		{"Support+r1-7-abc@Example.TEST", true},
		{"Desk <help@other.test>", true},
		{"not an address", true},
		{"", true},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			if got := Unmailable(tc.addr, desks); got != tc.want {
				t.Errorf("Unmailable(%q) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

func TestDeliverSuppresses(t *testing.T) {
	t.Parallel()
	other := Project{ID: 2, Key: "other", Name: "Other", Address: "help@other.test", SMTP: SMTPConfig{Host: "127.0.0.1", Port: 1, Security: SecurityNone}}
	tests := []struct {
		name       string
		to         string
		kind       ticket.NotificationKind
		arrange    func(b *bundle)
		wantReason string // "" = sent
	}{
		{name: "no-reply recipient", to: "no-reply@customer.test", wantReason: "recipient no-reply@customer.test is a no-reply or system address"},
		{name: "mailer-daemon recipient", to: "MAILER-DAEMON@customer.test", wantReason: "recipient mailer-daemon@customer.test is a no-reply or system address"},
		{name: "postmaster recipient of a note", to: "postmaster@customer.test", kind: ticket.NotifyNote,
			wantReason: "recipient postmaster@customer.test is a no-reply or system address"},
		{name: "own desk address with a reply key", to: "support+r1-7-abc@example.test", wantReason: "recipient support+r1-7-abc@example.test is a desk address"},
		{name: "another project's desk address", to: "Help@Other.test", wantReason: "recipient help@other.test is a desk address"},
		{name: "recipient bouncing on the ticket", to: "alice@customer.test", arrange: func(b *bundle) {
			b.store.markBouncing(7, "alice@customer.test", testNow.Add(time.Hour))
		}, wantReason: "recipient alice@customer.test bounces on this ticket"},
		{name: "bounce mark expired: sent", to: "alice@customer.test", arrange: func(b *bundle) {
			b.store.markBouncing(7, "alice@customer.test", testNow.Add(-time.Minute))
		}},
		{name: "bouncing on another ticket only: sent", to: "alice@customer.test", arrange: func(b *bundle) {
			b.store.markBouncing(8, "alice@customer.test", testNow.Add(time.Hour))
		}},
		{name: "ordinary recipient: sent", to: "alice@customer.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			d := NewDeliverer(b.store, b.keys, []Project{b.project, other}, &Options{Now: func() time.Time { return testNow }})
			t.Cleanup(func() { _ = d.Close() })
			if tc.kind == ticket.NotifyNote {
				addNote(b)
			}
			n := b.store.get(1)
			n.To = tc.to
			if tc.kind != "" {
				n.Kind = tc.kind
				n.MessageID = 101
			}
			b.store.put(n)
			if tc.arrange != nil {
				tc.arrange(b)
			}
			if err := d.Deliver(context.Background(), 1); err != nil {
				t.Fatalf("Deliver = %v, want nil (suppressing is not an error)", err)
			}
			got := b.store.get(1)
			if tc.wantReason == "" {
				if got.State != ticket.NotificationSent {
					t.Errorf("state = %q (%q), want sent", got.State, got.LastError)
				}
				onlyAccepted(t, b.sink, 1)
				return
			}
			if got.State != stateSuppressed || b.store.reason(1) != tc.wantReason {
				t.Errorf("state %q reason %q, want suppressed with %q", got.State, b.store.reason(1), tc.wantReason)
			}
			if got.Attempts != 0 {
				t.Errorf("attempts = %d, want 0: a suppression is not a failed attempt", got.Attempts)
			}
			if all := b.sink.all(); len(all) != 0 {
				t.Errorf("SMTP server got %d messages, want none", len(all))
			}
			if err := d.Deliver(context.Background(), 1); err != nil {
				t.Errorf("second Deliver of a suppressed notification = %v, want nil", err)
			}
			if all := b.sink.all(); len(all) != 0 {
				t.Errorf("SMTP server got %d messages after a second Deliver, want none", len(all))
			}
		})
	}
}

func TestDeliverSuppressionStoreErrorIsTemporary(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.store.countErr = errors.New("database is locked")
	err := b.d.Deliver(context.Background(), 1)
	if err == nil || Permanent(err) || stepOf(err) != "check rate caps" {
		t.Fatalf("Deliver with a failing count = %v (step %q), want a temporary error at step %q", err, stepOf(err), "check rate caps")
	}
	if n := b.store.get(1); n.State != ticket.NotificationPending || n.Attempts != 1 {
		t.Errorf("state %q attempts %d, want pending with 1 recorded attempt", n.State, n.Attempts)
	}
	if all := b.sink.all(); len(all) != 0 {
		t.Errorf("SMTP server got %d messages, want none", len(all))
	}
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// queue adds a pending notification of kind to to, created at at.
func queue(b *bundle, id int64, kind ticket.NotificationKind, to string, at time.Time) {
	n := ticket.Notification{ID: id, ProjectID: 1, Project: "acme", TicketID: 7, MessageID: 100, Kind: kind,
		To: to, MailID: fmt.Sprintf("<n%d@example.test>", id), State: ticket.NotificationPending, CreatedAt: at}
	if kind == ticket.NotifyNote {
		n.MessageID = 101
	}
	b.store.put(n)
}

func TestRateCapStopsAutoResponderLoop(t *testing.T) {
	t.Parallel()
	clk := &clock{t: testNow}
	b := setup(t, func(_ *Project, o *Options) { o.Now = clk.now })
	const robot = "robot@customer.test"
	// The robot answers each of our mails within 20 s; each answer makes
	// the desk queue another automatic mail (reopened, thank-you, ...).
	kinds := []ticket.NotificationKind{ticket.NotifyThankYou, ticket.NotifyReopened, ticket.NotifyNewParticipant, ticket.NotifyClosed}
	at := testNow
	for i := range 20 {
		id := int64(100 + i)
		queue(b, id, kinds[i%len(kinds)], robot, at)
		clk.set(at)
		if err := b.d.Deliver(context.Background(), id); err != nil {
			t.Fatalf("Deliver #%d: %v", i+1, err)
		}
		at = at.Add(20 * time.Second)
	}
	sent := onlyAccepted(t, b.sink, 3)
	for i, r := range sent {
		if want := fmt.Sprintf("<n%d@example.test>", 100+i); parse(t, r.Data).header("Message-ID") != want {
			t.Errorf("mail %d Message-ID = %q, want %q (the first three)", i+1, parse(t, r.Data).header("Message-ID"), want)
		}
	}
	if got, want := b.store.reason(103), "rate cap: 3 automatic mails to robot@customer.test in the last 10m"; got != want {
		t.Errorf("reason of the 4th = %q, want %q", got, want)
	}
	for id := int64(103); id < 120; id++ {
		if n := b.store.get(id); n.State != stateSuppressed {
			t.Errorf("notification %d state %q, want suppressed", id, n.State)
		}
	}

	t.Run("a quiet 10 minutes is not enough: the hourly cap holds", func(t *testing.T) {
		at := at.Add(11 * time.Minute)
		queue(b, 200, ticket.NotifyReopened, robot, at)
		clk.set(at)
		if err := b.d.Deliver(context.Background(), 200); err != nil {
			t.Fatal(err)
		}
		if got, want := b.store.reason(200), "rate cap: 20 automatic mails to robot@customer.test in the last 1h"; got != want {
			t.Errorf("reason = %q, want %q", got, want)
		}
	})
	t.Run("after a quiet day mail flows again", func(t *testing.T) {
		at := at.Add(25 * time.Hour)
		queue(b, 201, ticket.NotifyReopened, robot, at)
		clk.set(at)
		if err := b.d.Deliver(context.Background(), 201); err != nil {
			t.Fatal(err)
		}
		if n := b.store.get(201); n.State != ticket.NotificationSent {
			t.Errorf("state %q (%q), want sent", n.State, b.store.reason(201))
		}
	})
}

func TestRateCaps(t *testing.T) {
	t.Parallel()
	type mail struct {
		kind  ticket.NotificationKind
		to    string
		after time.Duration // since testNow
	}
	tests := []struct {
		name       string
		caps       []Cap
		mails      []mail
		order      []int // delivery order (indexes into mails); nil = in order
		wantSent   []bool
		wantReason map[int]string
	}{
		{
			name: "notes are written by people and never capped",
			mails: []mail{{ticket.NotifyNote, "bob@customer.test", 0}, {ticket.NotifyNote, "bob@customer.test", 1},
				{ticket.NotifyNote, "bob@customer.test", 2}, {ticket.NotifyNote, "bob@customer.test", 3}, {ticket.NotifyNote, "bob@customer.test", 4}},
			wantSent: []bool{true, true, true, true, true},
		},
		{
			name: "notes do not count towards the cap",
			mails: []mail{{ticket.NotifyNote, "bob@customer.test", 0}, {ticket.NotifyNote, "bob@customer.test", 1},
				{ticket.NotifyNote, "bob@customer.test", 2}, {ticket.NotifyClosed, "bob@customer.test", 3}},
			wantSent: []bool{true, true, true, true},
		},
		{
			name: "caps are per recipient",
			mails: []mail{{ticket.NotifyClosed, "a@customer.test", 0}, {ticket.NotifyClosed, "a@customer.test", 1},
				{ticket.NotifyClosed, "a@customer.test", 2}, {ticket.NotifyClosed, "b@customer.test", 3}, {ticket.NotifyClosed, "A@Customer.test", 4}},
			wantSent:   []bool{true, true, true, true, false},
			wantReason: map[int]string{4: "rate cap: 3 automatic mails to a@customer.test in the last 10m"},
		},
		{
			name: "the window slides",
			mails: []mail{{ticket.NotifyClosed, "a@customer.test", 0}, {ticket.NotifyReopened, "a@customer.test", time.Minute},
				{ticket.NotifyClosed, "a@customer.test", 2 * time.Minute}, {ticket.NotifyReopened, "a@customer.test", 10*time.Minute + time.Second}},
			wantSent: []bool{true, true, true, true},
		},
		{
			name: "suppressed mails count too, so a loop stays cut",
			mails: []mail{{ticket.NotifyClosed, "a@customer.test", 0}, {ticket.NotifyReopened, "a@customer.test", time.Minute},
				{ticket.NotifyClosed, "a@customer.test", 2 * time.Minute}, {ticket.NotifyReopened, "a@customer.test", 10 * time.Minute},
				{ticket.NotifyClosed, "a@customer.test", 10*time.Minute + time.Second}},
			wantSent:   []bool{true, true, true, false, false},
			wantReason: map[int]string{3: "rate cap: 3 automatic mails to a@customer.test in the last 10m"},
		},
		{
			name: "custom caps",
			caps: []Cap{{Window: time.Hour, Max: 1}},
			mails: []mail{{ticket.NotifyClosed, "a@customer.test", 0}, {ticket.NotifyReopened, "a@customer.test", 59 * time.Minute},
				{ticket.NotifyClosed, "a@customer.test", 121 * time.Minute}},
			wantSent:   []bool{true, false, true},
			wantReason: map[int]string{1: "rate cap: 1 automatic mails to a@customer.test in the last 1h"},
		},
		{
			name: "a burst committed with one timestamp is capped by queue order (ID)",
			mails: []mail{{ticket.NotifyThankYou, "a@customer.test", 0}, {ticket.NotifyThankYou, "a@customer.test", 0},
				{ticket.NotifyThankYou, "a@customer.test", 0}, {ticket.NotifyThankYou, "a@customer.test", 0},
				{ticket.NotifyThankYou, "a@customer.test", 0}},
			order:      []int{4, 3, 2, 1, 0},
			wantSent:   []bool{true, true, true, false, false},
			wantReason: map[int]string{3: "rate cap: 3 automatic mails to a@customer.test in the last 10m"},
		},
		{
			name: "an empty list disables the caps",
			caps: []Cap{},
			mails: []mail{{ticket.NotifyClosed, "a@customer.test", 0}, {ticket.NotifyReopened, "a@customer.test", 1},
				{ticket.NotifyClosed, "a@customer.test", 2}, {ticket.NotifyReopened, "a@customer.test", 3}},
			wantSent: []bool{true, true, true, true},
		},
		{
			name: "decided by when a mail was queued, not when it is delivered (retries decide alike)",
			mails: []mail{{ticket.NotifyClosed, "a@customer.test", 0}, {ticket.NotifyReopened, "a@customer.test", 1},
				{ticket.NotifyClosed, "a@customer.test", 2}, {ticket.NotifyReopened, "a@customer.test", 3}},
			order:    []int{3, 2, 1, 0},
			wantSent: []bool{true, true, true, false},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(_ *Project, o *Options) { o.Caps = tc.caps })
			addNote(b)
			for i, m := range tc.mails {
				queue(b, int64(100+i), m.kind, m.to, testNow.Add(m.after))
			}
			order := tc.order
			if order == nil {
				for i := range tc.mails {
					order = append(order, i)
				}
			}
			for _, i := range order {
				if err := b.d.Deliver(context.Background(), int64(100+i)); err != nil {
					t.Fatalf("Deliver mail %d: %v", i, err)
				}
			}
			for i, want := range tc.wantSent {
				n := b.store.get(int64(100 + i))
				if got := n.State == ticket.NotificationSent; got != want {
					t.Errorf("mail %d (%s to %s): state %q reason %q, want sent=%v", i, n.Kind, n.To, n.State, b.store.reason(n.ID), want)
				}
				if r, ok := tc.wantReason[i]; ok && b.store.reason(n.ID) != r {
					t.Errorf("mail %d: reason %q, want %q", i, b.store.reason(n.ID), r)
				}
			}
			wantCount := 0
			for _, s := range tc.wantSent {
				if s {
					wantCount++
				}
			}
			onlyAccepted(t, b.sink, wantCount)
		})
	}
}

func TestDefaultCapsDocumented(t *testing.T) {
	t.Parallel()
	want := []Cap{{10 * time.Minute, 3}, {time.Hour, 10}, {24 * time.Hour, 30}}
	got := DefaultCaps()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("DefaultCaps() = %v, want %v (as the package comment says)", got, want)
	}
	got[0].Max = 99
	if DefaultCaps()[0].Max != 3 {
		t.Error("DefaultCaps returns shared state: changing its result changed the defaults")
	}
	for w, want := range map[time.Duration]string{10 * time.Minute: "10m", time.Hour: "1h", 24 * time.Hour: "24h", 90 * time.Second: "1m30s"} {
		if got := formatWindow(w); got != want {
			t.Errorf("formatWindow(%v) = %q, want %q", w, got, want)
		}
	}
}

// TestProjectCeiling: one project sends at most ProjectCeiling automatic
// mails in any hour, to all recipients together; what is over it is
// suppressed with the reason and reported to OnSuppressed (the metric).
// Agents' notes are never held back by it.
func TestProjectCeiling(t *testing.T) {
	t.Parallel()
	if DefaultProjectCeiling != 1000 {
		t.Fatalf("DefaultProjectCeiling = %d, want the documented 1000", DefaultProjectCeiling)
	}
	var mu sync.Mutex
	causes := map[Cause]int{}
	b := setup(t, func(_ *Project, o *Options) {
		o.ProjectCeiling = 4
		o.OnSuppressed = func(project string, c Cause) {
			mu.Lock()
			defer mu.Unlock()
			if project == "acme" {
				causes[c]++
			}
		}
	})
	addNote(b)
	// Six strangers, each getting one thank-you: no per-recipient cap
	// applies, the project's ceiling does.
	for i := range 6 {
		queue(b, int64(100+i), ticket.NotifyThankYou, fmt.Sprintf("c%d@customer.test", i), testNow.Add(time.Duration(i)*time.Second))
	}
	queue(b, 106, ticket.NotifyNote, "c0@customer.test", testNow.Add(10*time.Second))
	for id := int64(100); id <= 106; id++ {
		if err := b.d.Deliver(context.Background(), id); err != nil {
			t.Fatalf("Deliver %d: %v", id, err)
		}
	}
	for i, want := range []bool{true, true, true, true, false, false, true} {
		n := b.store.get(int64(100 + i))
		if got := n.State == ticket.NotificationSent; got != want {
			t.Errorf("mail %d (%s to %s): state %q reason %q, want sent=%v", i, n.Kind, n.To, n.State, b.store.reason(n.ID), want)
		}
	}
	if got, want := b.store.reason(104), "project ceiling: 4 automatic mails from project acme in the last hour (at most 4)"; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
	onlyAccepted(t, b.sink, 5)
	mu.Lock()
	defer mu.Unlock()
	if causes[CauseProjectCeiling] != 2 || len(causes) != 1 {
		t.Errorf("OnSuppressed causes = %v, want project_ceiling twice", causes)
	}

	t.Run("an hour later mail flows again", func(t *testing.T) {
		queue(b, 200, ticket.NotifyThankYou, "late@customer.test", testNow.Add(61*time.Minute+5*time.Second))
		if err := b.d.Deliver(context.Background(), 200); err != nil {
			t.Fatal(err)
		}
		if n := b.store.get(200); n.State != ticket.NotificationSent {
			t.Errorf("state %q (%q), want sent", n.State, b.store.reason(200))
		}
	})
}
