package store

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

// The one-statement commit of a new ticket on PostgreSQL, alone or in a
// group numbered at its end, writes exactly the rows the general
// transaction writes, and leaves every delivery that is not plain to it.
func TestNewTicketInOneStatementMatchesTransaction(t *testing.T) {
	e := setup(t, "postgres")
	ctx := t.Context()
	ps := mustProjects(t, e.s, "fast", "slow", "group")
	delivery := func(p ticket.Project, uid uint32) ticket.Delivery {
		d := newTicketDelivery(p, mustFetch(t, e.s, p.ID, uid, fmt.Sprint(p.Key, uid)), fmt.Sprintf("<%s-%d@customer.test>", p.Key, uid))
		d.DeskAddress = p.Address
		d.Reason = "new"
		d.Message.References = []string{"<x@a>", "<y@b>"}
		d.Message.InReplyTo = "<y@b>"
		d.Message.HTML = "<p>It burns.</p>"
		d.Message.Attachments = []ticket.Attachment{
			{Filename: "log.txt", ContentType: "text/plain", Data: []byte("boom")},
			{Filename: "same.txt", ContentType: "text/plain", Data: []byte("boom")},
			{Filename: "logo.png", ContentType: "image/png", Data: []byte("png"), Inline: true, ContentID: "<logo>"},
		}
		d.Notify = append(d.Notify, ticket.Notification{Kind: ticket.NotifyThankYou, To: "bob@customer.test"})
		return d
	}

	fast, slow := delivery(ps[0], 1), delivery(ps[1], 1)
	got, ok, err := e.s.commitNewTicketPostgres(ctx, fast)
	if err != nil || !ok {
		t.Fatalf("commitNewTicketPostgres = %+v, %v, %v; want the ticket written", got, ok, err)
	}
	var want ticket.Committed
	err = e.s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		want, err = e.s.commitDelivery(tx, slow)
		return err
	})
	if err != nil {
		t.Fatalf("commitDelivery: %v", err)
	}
	if got.Outcome != want.Outcome || got.TicketNumber != want.TicketNumber || len(got.Notifications) != len(want.Notifications) {
		t.Fatalf("one statement: %+v; transaction: %+v; want the same outcome, number and notification count", got, want)
	}
	gotRows, wantRows := ticketRows(t, e.s, got, fast.InboundID), ticketRows(t, e.s, want, slow.InboundID)
	// messages: the customer's and the record of the two thank-yous.
	wantCounts := map[string]int{"tickets": 1, "messages": 2, "participants": 2, "attachments": 3, "notifications": 2, "dedup_keys": 1, "inbound": 1}
	for table, g := range gotRows {
		if len(g) != wantCounts[table] {
			t.Errorf("%s: one statement wrote %d rows; want %d", table, len(g), wantCounts[table])
		}
		if w := wantRows[table]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s: one statement wrote\n%v\nthe transaction wrote\n%v", table, g, w)
		}
	}

	t.Run("a group numbered at its end writes the same", func(t *testing.T) {
		first, third := delivery(ps[2], 1), delivery(ps[2], 3)
		dup := delivery(ps[2], 2)
		dup.DedupKey = first.DedupKey
		ds := []ticket.Delivery{first, dup, third}
		cs := mustCommitMany(t, e.s, ds)
		if cs[0].Outcome != ticket.OutcomeTicketCreated || cs[0].TicketNumber != 1 || len(cs[0].Notifications) != 2 ||
			cs[1].Outcome != ticket.OutcomeDuplicate || cs[1].TicketID != cs[0].TicketID ||
			cs[2].Outcome != ticket.OutcomeTicketCreated || cs[2].TicketNumber != 2 {
			t.Fatalf("group = %+v; want #1, a duplicate of it, #2", cs)
		}
		rows := ticketRows(t, e.s, cs[0], first.InboundID)
		for table, g := range rows {
			if w := wantRows[table]; !reflect.DeepEqual(g, w) {
				t.Errorf("%s: the group wrote\n%v\nthe transaction wrote\n%v", table, g, w)
			}
		}
	})

	t.Run("deliveries that are not plain are left to the transaction", func(t *testing.T) {
		again, ok, err := e.s.commitNewTicketPostgres(ctx, fast)
		if err != nil || ok {
			t.Errorf("same delivery again = %+v, %v, %v; want nothing written (ok false)", again, ok, err)
		}
		dup := delivery(ps[0], 2)
		dup.DedupKey = fast.DedupKey
		c, ok, err := e.s.commitNewTicketPostgres(ctx, dup)
		if err != nil || ok {
			t.Errorf("duplicate = %+v, %v, %v; want nothing written (ok false)", c, ok, err)
		}
		if c := mustCommit(t, e.s, dup); c.Outcome != ticket.OutcomeDuplicate || c.TicketID != got.TicketID {
			t.Errorf("CommitDelivery(duplicate) = %+v; want a duplicate of ticket %d", c, got.TicketID)
		}
		if n := countRows(t, e.s, "tickets"); n != 4 {
			t.Errorf("tickets has %d rows; want 4 (fast, slow, two of group)", n)
		}
	})
}

// ticketRows reads what a committed new ticket wrote, table by table, with
// what differs by nature between two tickets of two projects (IDs, the
// project's key in names, times, raw hashes and random Message-ID
// suffixes) masked.
func ticketRows(t *testing.T, s *Store, c ticket.Committed, inboundID int64) map[string][]map[string]any {
	t.Helper()
	db := s.db.WithContext(t.Context())
	mailID := regexp.MustCompile(`^<sd\.([0-9]+)\.[0-9a-f]{16}@`)
	mask := func(rows []map[string]any) []map[string]any {
		for _, r := range rows {
			for _, k := range []string{"id", "ticket_id", "message_id", "project_id", "inbound_id", "desk_id", "outbound_id"} {
				if v, ok := r[k].(int64); ok && v != 0 {
					r[k] = "id"
				}
			}
			for k, v := range r {
				switch v := v.(type) {
				case time.Time:
					r[k] = "time"
				case string: // names that carry the project's key
					r[k] = strings.NewReplacer("fast", "KEY", "slow", "KEY", "group", "KEY").Replace(v)
				}
			}
			if _, ok := r["raw_sha256"]; ok { // the raw message carries the key
				r["raw_sha256"], r["size"] = "sha256 of the raw message", "its size"
			}
			if m, ok := r["mail_id"].(string); ok {
				if sub := mailID.FindStringSubmatch(m); sub == nil || sub[1] != fmt.Sprint(c.TicketID) {
					t.Errorf("notification Message-ID %q does not name ticket %d", m, c.TicketID)
				}
				r["mail_id"] = "<sd.{ticket}.{random}@...>"
			}
		}
		return rows
	}
	read := func(table, where string, args ...any) []map[string]any {
		var rows []map[string]any
		if err := db.Table(table).Where(where, args...).Order("id").Find(&rows).Error; err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		return mask(rows)
	}
	messages := read("messages", "ticket_id = ?", c.TicketID)
	return map[string][]map[string]any{
		"tickets":       read("tickets", "id = ?", c.TicketID),
		"messages":      messages,
		"participants":  read("participants", "ticket_id = ?", c.TicketID),
		"attachments":   read("attachments", "message_id IN (?)", db.Table("messages").Select("id").Where("ticket_id = ?", c.TicketID)),
		"notifications": read("notifications", "ticket_id = ?", c.TicketID),
		"dedup_keys":    read("dedup_keys", "inbound_id = ?", inboundID),
		"inbound":       read("inbound", "id = ?", inboundID),
	}
}
