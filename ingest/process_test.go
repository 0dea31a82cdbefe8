package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

var errNotFound = ticket.ErrNotFound

// fakeStore is an in-memory Store; the real store is tested in package store.
type fakeStore struct {
	mu         sync.Mutex
	inbound    map[int64]ticket.Inbound
	blobs      map[string][]byte
	messageIDs map[string]int64 // lower-cased Message-ID -> ticket
	ours       map[string]bool  // lower-cased Message-IDs we sent
	tickets    map[int64]ticket.Ticket
	dedup      map[string]int64 // DedupKey -> ticket
	commits    []ticket.Delivery
	blobCalls  int
	largeReads int   // of raw messages on their own, not with the ledger row
	lookupErr  error // returned by ThreadMatches when set
	nextTicket int64
}

func (f *fakeStore) InboundMessage(_ context.Context, id, maxSize int64) (ticket.Inbound, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.inbound[id]
	if !ok {
		return ticket.Inbound{}, nil, errNotFound
	}
	if in.RawSHA256 == "" || in.Size > maxSize {
		return in, nil, nil
	}
	f.blobCalls++
	return in, f.blobs[in.RawSHA256], nil
}

func (f *fakeStore) Blob(_ context.Context, sum string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blobCalls++
	f.largeReads++
	b, ok := f.blobs[sum]
	if !ok {
		return nil, errNotFound
	}
	return b, nil
}

func (f *fakeStore) ThreadMatches(_ context.Context, projectID int64, ids []string) ([]ticket.ThreadMatch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lookupErr != nil {
		return nil, f.lookupErr
	}
	var out []ticket.ThreadMatch
	for _, id := range ids {
		if t, ok := f.messageIDs[strings.ToLower(id)]; ok && f.tickets[t].ProjectID == projectID {
			out = append(out, ticket.ThreadMatch{TicketID: t, Ours: f.ours[strings.ToLower(id)]})
		}
	}
	return out, nil
}

func (f *fakeStore) TicketByID(_ context.Context, id int64) (ticket.Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tickets[id]
	if !ok {
		return ticket.Ticket{}, errNotFound
	}
	return t, nil
}

func (f *fakeStore) CommitDelivery(_ context.Context, d ticket.Delivery) (ticket.Committed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commits = append(f.commits, d)
	c := ticket.Committed{Outcome: d.Outcome, TicketID: d.TicketID}
	if d.DedupKey != "" {
		if t, dup := f.dedup[d.DedupKey]; dup {
			c = ticket.Committed{Outcome: ticket.OutcomeDuplicate, TicketID: t}
		} else {
			if d.Outcome == ticket.OutcomeTicketCreated {
				f.nextTicket++
				c.TicketID = f.nextTicket
				f.tickets[c.TicketID] = ticket.Ticket{ID: c.TicketID, ProjectID: d.ProjectID}
			}
			f.dedup[d.DedupKey] = c.TicketID
		}
	}
	in := f.inbound[d.InboundID]
	in.Outcome, in.TicketID, in.Reason = c.Outcome, c.TicketID, d.Reason
	f.inbound[d.InboundID] = in
	return c, nil
}

// bundle is what a processor test needs.
type bundle struct {
	st     *fakeStore
	keys   *ticket.ReplyKeys
	proc   *Processor
	nextIn int64
}

var testProjects = []Project{
	{ID: 1, Key: "acme", Address: "support@acme.test"},
	{ID: 2, Key: "other", Address: "help@other.test"},
}

var testNow = time.Date(2025, 3, 25, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T, opts *Options) *bundle {
	t.Helper()
	keys, err := ticket.NewReplyKeys([]byte("0123456789abcdef-test-secret"))
	if err != nil {
		t.Fatalf("NewReplyKeys: %v", err)
	}
	st := &fakeStore{
		inbound: map[int64]ticket.Inbound{}, blobs: map[string][]byte{}, messageIDs: map[string]int64{}, ours: map[string]bool{},
		dedup: map[string]int64{}, nextTicket: 100,
		tickets: map[int64]ticket.Ticket{
			12: {ID: 12, ProjectID: 1, Number: 12, Status: ticket.StatusClosed, Requester: "anna.meyer@customer.test",
				Participants: []string{"anna.meyer@customer.test", "bob@customer.test"}},
			13: {ID: 13, ProjectID: 2, Number: 1},
		},
	}
	// Message-IDs already on ticket 12: the customer's first mail and our thank-you.
	st.messageIDs["<am0pr07mb4456a1b2c3d4e5f6@am0pr07mb4456.eurprd07.prod.outlook.test>"] = 12
	st.messageIDs["<notify-42@acme.test>"] = 12
	st.messageIDs["<thank-you-12@acme.test>"] = 12
	st.ours["<notify-42@acme.test>"] = true
	st.ours["<thank-you-12@acme.test>"] = true
	if opts == nil {
		opts = &Options{}
	}
	opts.Now = func() time.Time { return testNow }
	return &bundle{st: st, keys: keys, proc: NewProcessor(st, keys, testProjects, opts)}
}

// add stores raw as a new inbound row of project 1 and returns its ID.
func (b *bundle) add(raw []byte) int64 { return b.addTo(1, "acme", raw) }

// addTo stores raw as a new inbound row of a mailbox's project.
func (b *bundle) addTo(projectID int64, key string, raw []byte) int64 {
	b.st.mu.Lock()
	defer b.st.mu.Unlock()
	b.nextIn++
	sum := sha256.Sum256(raw)
	hexSum := hex.EncodeToString(sum[:])
	b.st.blobs[hexSum] = raw
	b.st.inbound[b.nextIn] = ticket.Inbound{ID: b.nextIn, ProjectID: projectID, Project: key, Size: int64(len(raw)), RawSHA256: hexSum}
	return b.nextIn
}

func (b *bundle) process(t *testing.T, raw []byte) (ticket.Committed, ticket.Delivery) {
	t.Helper()
	c, err := b.proc.Process(context.Background(), b.add(raw))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if len(b.st.commits) == 0 {
		t.Fatalf("Process committed nothing")
	}
	return c, b.st.commits[len(b.st.commits)-1]
}

func readCorpus(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return raw
}

func TestProcessNewTicket(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	c, d := b.process(t, readCorpus(t, "outlook.eml"))

	wantEqual(t, "committed outcome", c.Outcome, ticket.OutcomeTicketCreated)
	wantEqual(t, "delivery outcome", d.Outcome, ticket.OutcomeTicketCreated)
	wantEqual(t, "TicketID (new ticket)", d.TicketID, int64(0))
	if d.NewTicket == nil {
		t.Fatalf("NewTicket is nil, want Subject and Requester")
	}
	wantEqual(t, "NewTicket.Subject", d.NewTicket.Subject, "Printer on floor 3 does not print")
	wantEqual(t, "NewTicket.Requester", d.NewTicket.Requester, "anna.meyer@customer.test")
	wantList(t, "Participants (requester + Cc minus desk)", d.Participants, "anna.meyer@customer.test", "bob@customer.test")
	if len(d.Notify) != 1 || d.Notify[0].Kind != ticket.NotifyThankYou || d.Notify[0].To != "anna.meyer@customer.test" {
		t.Errorf("Notify = %+v, want one thank-you to the requester", d.Notify)
	}
	wantEqual(t, "DedupKey", d.DedupKey, "mid:<am0pr07mb4456a1b2c3d4e5f6@am0pr07mb4456.eurprd07.prod.outlook.test>")
	wantEqual(t, "MailDomain", d.MailDomain, "acme.test")
	wantEqual(t, "ProjectID", d.ProjectID, int64(1))
	m := d.Message
	if m == nil {
		t.Fatalf("Message is nil")
	}
	wantEqual(t, "Message.Kind", m.Kind, ticket.KindEmail)
	wantEqual(t, "Message.Direction", m.Direction, ticket.DirectionInbound)
	wantEqual(t, "Message.From", m.From, "anna.meyer@customer.test")
	wantEqual(t, "Message.MessageID", m.MessageID, "<AM0PR07MB4456A1B2C3D4E5F6@AM0PR07MB4456.eurprd07.prod.outlook.test>")
	wantEqual(t, "Message.CreatedAt (injected clock)", m.CreatedAt, testNow)
	wantEqual(t, "Message.InboundID", m.InboundID, d.InboundID)
	wantContains(t, "Message.Text", m.Text, "paper jam")
}

func TestProcessNewTicketVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		raw          string
		wantSubject  string
		wantReq      string
		wantNotify   bool
		wantPartic   []string
		wantInReason string
	}{
		{
			name:        "Reply-To is the requester",
			raw:         "From: Shop <shop@shop.test>\nReply-To: carol@customer.test\nTo: support@acme.test\nSubject: hi\nMessage-ID: <v1@x>\n\nbody",
			wantSubject: "hi", wantReq: "carol@customer.test", wantNotify: true,
			wantPartic: []string{"carol@customer.test"},
		},
		{
			name:        "no-reply requester gets no thank-you",
			raw:         "From: Shop <noreply@shop.test>\nTo: support@acme.test\nSubject: order\nMessage-ID: <v2@x>\n\nbody",
			wantSubject: "order", wantReq: "noreply@shop.test", wantNotify: false,
			wantPartic: []string{"noreply@shop.test"}, wantInReason: "no-reply",
		},
		{
			name:        "X-Auto-Response-Suppress is honoured",
			raw:         "From: app@customer.test\nTo: support@acme.test\nX-Auto-Response-Suppress: DR, OOF, AutoReply\nSubject: alert\nMessage-ID: <v3@x>\n\nbody",
			wantSubject: "alert", wantReq: "app@customer.test", wantNotify: false,
			wantPartic: []string{"app@customer.test"}, wantInReason: "X-Auto-Response-Suppress",
		},
		{
			name:        "empty subject",
			raw:         "From: dave@customer.test\nTo: support@acme.test\nMessage-ID: <v4@x>\n\nbody",
			wantSubject: "(no subject)", wantReq: "dave@customer.test", wantNotify: true,
			wantPartic: []string{"dave@customer.test"},
		},
		{
			name: "other recipients join, desks and no-reply do not",
			raw: "From: erin@customer.test\nTo: support@acme.test, frank@customer.test, help@other.test\n" +
				"Cc: support+x@acme.test, noreply@customer.test, Erin <ERIN@customer.test>, gina@customer.test\nSubject: s\nMessage-ID: <v5@x>\n\nbody",
			wantSubject: "s", wantReq: "erin@customer.test", wantNotify: true,
			wantPartic: []string{"erin@customer.test", "frank@customer.test", "gina@customer.test"},
		},
		{
			name:        "subject alone never threads",
			raw:         "From: mallory@evil.test\nTo: support@acme.test\nSubject: Re: [acme#12] We received your request\nMessage-ID: <v6@x>\n\nbody",
			wantSubject: "Re: [acme#12] We received your request", wantReq: "mallory@evil.test", wantNotify: true,
			wantPartic: []string{"mallory@evil.test"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			_, d := b.process(t, []byte(tt.raw))
			wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeTicketCreated)
			if d.NewTicket == nil {
				t.Fatalf("NewTicket is nil")
			}
			wantEqual(t, "Subject", d.NewTicket.Subject, tt.wantSubject)
			wantEqual(t, "Requester", d.NewTicket.Requester, tt.wantReq)
			wantEqual(t, "thank-you queued", len(d.Notify) == 1, tt.wantNotify)
			wantList(t, "Participants", d.Participants, tt.wantPartic...)
			wantContains(t, "Reason", d.Reason, tt.wantInReason)
		})
	}
}

func TestProcessThreading(t *testing.T) {
	t.Parallel()
	keys, _ := ticket.NewReplyKeys([]byte("0123456789abcdef-test-secret"))
	validKey := keys.Sign("acme", 12)
	otherProjectKey := keys.Sign("other", 12)   // valid signature, wrong project
	crossTicketKey := keys.Sign("acme", 13)     // signed for acme, but ticket 13 is other's
	deletedTicketKey := keys.Sign("acme", 9999) // no such ticket
	forged := "r1-c-abcdefghijklmnopqrst"

	msg := func(to, extra string) string {
		return "From: Anna <anna.meyer@customer.test>\nTo: " + to + "\nCc: Bob <bob@customer.test>, Dave <dave@customer.test>, support@acme.test\n" + extra +
			"Subject: RE: [acme#12] printer\nMessage-ID: <reply-" + to + "@customer.test>\n\nThanks!\n"
	}
	tests := []struct {
		name       string
		raw        string
		wantTicket int64 // 0: a new ticket
		wantReason string
	}{
		{"reply key in the To sub-address", msg("support+"+validKey+"@acme.test", ""), 12, "reply key"},
		{"reply key in References", msg("support@acme.test", "References: <"+validKey+"@acme.test>\n"), 12, "reply key"},
		{"reply key in Delivered-To", msg("info@brand.test", "Delivered-To: support+"+validKey+"@acme.test\n"), 12, "reply key"},
		{"References with Outlook-rewritten In-Reply-To",
			msg("support@acme.test", "In-Reply-To: <AM0PR07MB9999ORIG@rewritten.outlook.test>\nReferences: <unknown-1@x>,<notify-42@acme.test>\n"), 12, "In-Reply-To/References"},
		{"In-Reply-To", msg("support@acme.test", "In-Reply-To: <thank-you-12@acme.test>\n"), 12, "In-Reply-To/References"},
		{"forged key ignored", msg("support+"+forged+"@acme.test", ""), 0, "new ticket"},
		{"key of another project ignored", msg("support+"+otherProjectKey+"@acme.test", ""), 0, "new ticket"},
		{"key of another project's ticket ignored", msg("support+"+crossTicketKey+"@acme.test", ""), 0, "new ticket"},
		{"key of a deleted ticket ignored", msg("support+"+deletedTicketKey+"@acme.test", ""), 0, "new ticket"},
		{"forged key does not hide a valid Message-ID", msg("support+"+forged+"@acme.test", "In-Reply-To: <notify-42@acme.test>\n"), 12, "In-Reply-To/References"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			c, d := b.process(t, []byte(tt.raw))
			wantContains(t, "Reason", d.Reason, tt.wantReason)
			if tt.wantTicket == 0 {
				wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeTicketCreated)
				wantEqual(t, "TicketID", d.TicketID, int64(0))
				return
			}
			wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeReplyAdded)
			wantEqual(t, "committed TicketID", c.TicketID, tt.wantTicket)
			wantEqual(t, "Delivery.TicketID", d.TicketID, tt.wantTicket)
			wantEqual(t, "Message.TicketID", d.Message.TicketID, tt.wantTicket)
			wantEqual(t, "Reopen", d.Reopen, true)
			wantList(t, "no thank-you on a reply; a notice to the newcomer", recipients(d.Notify, ticket.NotifyThankYou))
			wantList(t, "notice recipients", recipients(d.Notify, ticket.NotifyNewParticipant), "dave@customer.test")
			wantEqual(t, "no NewTicket on a reply", d.NewTicket == nil, true)
			wantList(t, "Participants (Cc minus desk and those already on the ticket)", d.Participants, "dave@customer.test")
		})
	}
}

func TestProcessReplyTellsNewParticipants(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	raw := "From: Anna <anna.meyer@customer.test>\nTo: support@acme.test\n" +
		"Cc: Bob <bob@customer.test>, Carol <Carol@customer.test>, noreply@customer.test, support@acme.test\n" +
		"In-Reply-To: <thank-you-12@acme.test>\nSubject: RE: [acme#12] printer\nMessage-ID: <cc-carol@customer.test>\n\nAdding Carol.\n"
	_, d := b.process(t, []byte(raw))
	wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeReplyAdded)
	wantList(t, "notices only to the newcomer, never a no-reply or known address",
		recipients(d.Notify, ticket.NotifyNewParticipant), "carol@customer.test")
}

func TestProcessAutomaticMail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		file       string
		wantOut    ticket.Outcome
		wantKind   ticket.Kind
		wantTicket int64
		wantReason string
	}{
		{"auto-reply threaded", "auto-reply.eml", ticket.OutcomeAutoReply, ticket.KindAutoReply, 12, "auto_reply: Auto-Submitted"},
		{"Exchange out-of-office, unthreaded", "exchange-oof.eml", ticket.OutcomeAutoReply, ticket.KindAutoReply, 0, "Automatic reply"},
		{"mailing list", "mailing-list.eml", ticket.OutcomeAutoReply, ticket.KindAutoReply, 0, "bulk: List-Id"},
		{"bounce threaded through the original's Message-ID", "dsn-bounce.eml", ticket.OutcomeBounce, ticket.KindBounce, 12, "gone@customer.test"},
		{"read receipt", "read-receipt.eml", ticket.OutcomeAutoReply, ticket.KindAutoReply, 0, "disposition-notification"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			_, d := b.process(t, readCorpus(t, tt.file))
			wantEqual(t, "Outcome", d.Outcome, tt.wantOut)
			wantEqual(t, "TicketID", d.TicketID, tt.wantTicket)
			wantContains(t, "Reason", d.Reason, tt.wantReason)
			if d.Message == nil {
				t.Fatalf("Message is nil, want it for the ledger (from, subject, Message-ID)")
			}
			wantEqual(t, "Message.Kind", d.Message.Kind, tt.wantKind)
			wantEqual(t, "Message.TicketID", d.Message.TicketID, tt.wantTicket)
			if d.Message.From == "" || d.Message.Subject == "" || d.Message.MessageID == "" {
				t.Errorf("Message = from %q subject %q id %q, want all set for the ledger", d.Message.From, d.Message.Subject, d.Message.MessageID)
			}
			wantEqual(t, "never notified", len(d.Notify), 0)
			wantEqual(t, "never reopens", d.Reopen, false)
			wantEqual(t, "no participants", len(d.Participants), 0)
			wantEqual(t, "no new ticket", d.NewTicket == nil, true)
		})
	}
}

func TestProcessBounceThreadedByOriginalReplyKey(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	key := b.keys.Sign("acme", 12)
	raw := strings.NewReplacer(
		"<notify-42@acme.test>", "<notify-unknown@acme.test>",
		"r1-c-abcdefghijklmnopqrst", key,
	).Replace(string(readCorpus(t, "dsn-bounce.eml")))
	_, d := b.process(t, []byte(raw))
	wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeBounce)
	wantEqual(t, "TicketID (via the key in the bounced original)", d.TicketID, int64(12))
}

func TestProcessOwnMail(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, d := b.process(t, []byte("From: Acme <support@acme.test>\nTo: support@acme.test\nSubject: [acme#12] hi\nMessage-ID: <own@acme.test>\n\nloop"))
	wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeAutoReply)
	wantContains(t, "Reason", d.Reason, "own")
	wantEqual(t, "never notified", len(d.Notify), 0)
}

func TestProcessDuplicate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     []byte
		wantKey string
	}{
		{"same Message-ID", readCorpus(t, "gmail.eml"), "mid:<caf=3xyk7q9+zt8@mail.gmail.test>"},
		{"no Message-ID: same raw bytes", readCorpus(t, "no-message-id.eml"), "sha256:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			first, d1 := b.process(t, tt.raw)
			second, d2 := b.process(t, tt.raw)
			if !strings.HasPrefix(d1.DedupKey, tt.wantKey) || d1.DedupKey != d2.DedupKey {
				t.Fatalf("DedupKeys = %q and %q, want the same key starting %q", d1.DedupKey, d2.DedupKey, tt.wantKey)
			}
			wantEqual(t, "first outcome", first.Outcome, ticket.OutcomeTicketCreated)
			wantEqual(t, "second outcome (store says duplicate)", second.Outcome, ticket.OutcomeDuplicate)
		})
	}
	t.Run("raw hash is of the raw bytes", func(t *testing.T) {
		t.Parallel()
		raw := readCorpus(t, "no-message-id.eml")
		sum := sha256.Sum256(raw)
		wantEqual(t, "DedupKey", DedupKey(mustParse(t, string(raw)), raw), "sha256:"+hex.EncodeToString(sum[:]))
	})
}

func TestProcessFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       *Options
		inbound    func(b *bundle) int64
		wantReason string
		wantBlob   bool // whether the raw message may be loaded
	}{
		{
			name: "oversize by the ledger's size: no download",
			opts: &Options{MaxMessageSize: 100},
			inbound: func(b *bundle) int64 {
				return b.add([]byte("From: a@b.test\nSubject: x\n\n" + strings.Repeat("x", 200)))
			},
			wantReason: "larger than the limit of 100 bytes",
		},
		{
			name: "oversize by the raw bytes",
			opts: &Options{MaxMessageSize: 100},
			inbound: func(b *bundle) int64 {
				id := b.add([]byte("From: a@b.test\nSubject: x\n\n" + strings.Repeat("x", 200)))
				in := b.st.inbound[id]
				in.Size = 0 // unknown
				b.st.inbound[id] = in
				return id
			},
			wantReason: "larger than the limit", wantBlob: true,
		},
		{
			name:       "unparseable",
			inbound:    func(b *bundle) int64 { return b.add([]byte(" \r\n\r\n")) },
			wantReason: "cannot parse message", wantBlob: true,
		},
		{
			name: "raw missing from the store",
			inbound: func(b *bundle) int64 {
				id := b.add([]byte("From: a@b.test\n\nx"))
				in := b.st.inbound[id]
				in.RawSHA256 = strings.Repeat("0", 64)
				b.st.inbound[id] = in
				return id
			},
			wantReason: "missing from the store", wantBlob: true,
		},
		{
			name: "project not configured",
			inbound: func(b *bundle) int64 {
				id := b.add([]byte("From: a@b.test\n\nx"))
				in := b.st.inbound[id]
				in.ProjectID = 77
				b.st.inbound[id] = in
				return id
			},
			wantReason: "not configured", wantBlob: true, // read with the row, in one query
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.opts)
			c, err := b.proc.Process(context.Background(), tt.inbound(b))
			if err != nil {
				t.Fatalf("Process returned %v, want a committed failure and no error (a retry cannot help)", err)
			}
			wantEqual(t, "committed outcome", c.Outcome, ticket.OutcomeFailed)
			if len(b.st.commits) != 1 {
				t.Fatalf("got %d commits, want 1", len(b.st.commits))
			}
			d := b.st.commits[0]
			wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeFailed)
			wantContains(t, "Reason", d.Reason, tt.wantReason)
			wantEqual(t, "no DedupKey on failure", d.DedupKey, "")
			if !tt.wantBlob && b.st.blobCalls != 0 {
				t.Errorf("raw message loaded %d times, want no download", b.st.blobCalls)
			}
		})
	}
}

func TestProcessIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := b.add(readCorpus(t, "gmail.eml"))
	first, err := b.proc.Process(context.Background(), id)
	if err != nil {
		t.Fatalf("first Process: %v", err)
	}
	again, err := b.proc.Process(context.Background(), id)
	if err != nil {
		t.Fatalf("second Process: %v", err)
	}
	wantEqual(t, "commits", len(b.st.commits), 1)
	wantEqual(t, "outcome on the second run", again.Outcome, first.Outcome)
	wantEqual(t, "ticket on the second run", again.TicketID, first.TicketID)
}

// Most mail is read with its ledger row; a message above InlineReadSize is
// read on its own once it has room in the in-flight budget, and one larger
// than the whole budget still goes through, alone.
func TestProcessReadsLargeMessagesWithinTheBudget(t *testing.T) {
	t.Parallel()
	large := []byte("From: alice@customer.test\r\nTo: support@acme.test\r\nSubject: big log\r\n" +
		"Message-ID: <big@customer.test>\r\n\r\n" + strings.Repeat("log line\r\n", InlineReadSize/10+1000))
	tests := []struct {
		name           string
		raw            []byte
		budget         int64
		wantLargeReads int
	}{
		{"small mail comes with its row", readCorpus(t, "gmail.eml"), 0, 0},
		{"large mail is read on its own", large, 0, 1},
		{"mail larger than the budget goes through alone", large, 1000, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, &Options{MaxInFlightBytes: tt.budget})
			c, err := b.proc.Process(context.Background(), b.add(tt.raw))
			if err != nil || c.Outcome != ticket.OutcomeTicketCreated {
				t.Fatalf("Process = %+v, %v; want a new ticket", c, err)
			}
			wantEqual(t, "raw messages read on their own", b.st.largeReads, tt.wantLargeReads)
		})
	}
}

func TestProcessStoreErrorsAreReturned(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.st.lookupErr = errors.New("connection refused")
	_, err := b.proc.Process(context.Background(), b.add(readCorpus(t, "reply-comma-references.eml")))
	if err == nil || !strings.Contains(err.Error(), "look up tickets by Message-ID") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Process error = %v, want the wrapped lookup error", err)
	}
	wantEqual(t, "commits after a store error", len(b.st.commits), 0)

	_, err = b.proc.Process(context.Background(), 999)
	if err == nil || !errors.Is(err, errNotFound) {
		t.Fatalf("Process(unknown inbound) = %v, want the store's error wrapped", err)
	}
}
