package api

import "github.com/servicedesk/servicedesk/ticket"

// Normalize makes t marshal as the HTTP contract says: participants and
// each message's to, cc and attachments are [] rather than null.
func Normalize(t *ticket.Ticket) {
	if t.Participants == nil {
		t.Participants = []string{}
	}
	for i := range t.Messages {
		normalizeMessage(&t.Messages[i])
	}
}

// normalizeMessage makes m's to, cc and attachments [] rather than null.
func normalizeMessage(m *ticket.Message) {
	if m.To == nil {
		m.To = []string{}
	}
	if m.Cc == nil {
		m.Cc = []string{}
	}
	if m.Attachments == nil {
		m.Attachments = []ticket.Attachment{}
	}
}

// MessageJSON returns the JSON shape of one message as POST
// /api/v1/projects/{key}/tickets/{number}/notes answers it under
// "message": as in a ticket's messages, never null slices. Addresses are
// not redacted.
func MessageJSON(m ticket.Message) any {
	normalizeMessage(&m)
	return m
}

// ticketWithMessages is a ticket that always carries "messages", [] when
// there are none; ticket.Ticket leaves the field out when empty, which
// suits lists.
type ticketWithMessages struct {
	ticket.Ticket
	Messages []ticket.Message `json:"messages"`
}

// TicketJSON returns the JSON shape of one ticket as GET
// /api/v1/projects/{key}/tickets/{number} answers it (with "messages",
// never null slices), for the CLI's --json. Addresses are not redacted; pass
// the encoded bytes through Redact for a guest's view.
func TicketJSON(t ticket.Ticket) any {
	t.Messages = append([]ticket.Message(nil), t.Messages...)
	Normalize(&t)
	msgs := t.Messages
	if msgs == nil {
		msgs = []ticket.Message{}
	}
	return ticketWithMessages{Ticket: t, Messages: msgs}
}

// ListJSON returns the JSON shape of a list answer: the items under name
// ("tickets", "inbound", "deadletters", "projects") and "next_page", the
// next page number or null on the last page (and on a page asked for by its
// cursor, page 0), and for the lists that have a keyset "next_after", the
// cursor of the next page (its "after") or null on the last page.
// Tickets in items are normalized; a nil slice is [].
func ListJSON[T any](name string, items []T, page int, more bool) any {
	if items == nil {
		items = []T{}
	}
	if ts, ok := any(items).([]ticket.Ticket); ok {
		for i := range ts {
			Normalize(&ts[i])
		}
	}
	var next *int
	var after *int64
	if more {
		if page > 0 {
			n := page + 1
			next = &n
		}
		after = lastID(items)
	}
	out := map[string]any{name: items, "next_page": next}
	if name != "projects" {
		out["next_after"] = after
	}
	return out
}

// lastID is the keyset cursor after items: the ID of the last one.
func lastID[T any](items []T) *int64 {
	if len(items) == 0 {
		return nil
	}
	var id int64
	switch v := any(items[len(items)-1]).(type) {
	case ticket.Ticket:
		id = v.ID
	case ticket.Inbound:
		id = v.ID
	case ticket.DeadLetter:
		id = v.ID
	default:
		return nil
	}
	return &id
}
