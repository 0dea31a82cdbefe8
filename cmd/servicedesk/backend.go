package main

import (
	"context"
	"time"

	"github.com/servicedesk/servicedesk/api"
	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// Limits of the web role's http.Server (README "Operating"). Requests
// that may rightly take longer (a note's upload, an attachment's download,
// the monitor's calls) get httpSlowTimeout from the API once their token is
// accepted; a client without a valid token never holds a connection past
// httpReadTimeout.
const (
	httpReadHeaderTimeout = 10 * time.Second // the request line and headers
	httpReadTimeout       = time.Minute      // the whole request, body included
	httpWriteTimeout      = 2 * time.Minute  // from the end of the headers to the end of the answer
	httpIdleTimeout       = 2 * time.Minute  // a kept-alive connection between requests
	httpMaxHeaderBytes    = 64 << 10         // request line and headers
	httpSlowTimeout       = 10 * time.Minute // note uploads (50 MiB), attachment downloads, /monitor/
)

// publicOrigins gives the origin of http.public_url, from which browsers
// may send unsafe requests besides the request's own Host; none when it is
// not set.
func publicOrigins(publicURL string) []string {
	if publicURL == "" {
		return nil
	}
	return []string{publicURL}
}

// apiBackend serves the API from the store and the dead-letter operations.
type apiBackend struct {
	st    *store.Store
	dl    *jobs.DeadLetters
	agent *jobs.Agent
}

var _ api.Backend = apiBackend{}

func page(p api.Page) store.Page {
	return store.Page{Page: p.Page, PerPage: p.PerPage, After: p.After}
}

func (b apiBackend) Ping(ctx context.Context) error { return b.st.Ping(ctx) }

func (b apiBackend) Projects(ctx context.Context) ([]ticket.Project, error) {
	return b.st.Projects(ctx)
}

// Tickets and Inbound trust the api package to answer 404 for an unknown
// project before it asks.
func (b apiBackend) Tickets(ctx context.Context, q api.TicketQuery) ([]ticket.Ticket, bool, error) {
	ts, more, err := b.st.Tickets(ctx, store.TicketFilter{Project: q.Project, Status: q.Status}, page(q.Page))
	return ts, more, err
}

func (b apiBackend) Ticket(ctx context.Context, project string, number int64) (ticket.Ticket, error) {
	t, err := b.st.TicketByNumber(ctx, project, number)
	return t, err
}

func (b apiBackend) Attachment(ctx context.Context, project string, number, id int64) (ticket.Attachment, []byte, error) {
	a, data, err := b.st.Attachment(ctx, project, number, id)
	return a, data, err
}

func (b apiBackend) Inbound(ctx context.Context, q api.InboundQuery) ([]ticket.Inbound, bool, error) {
	in, more, err := b.st.ListInbound(ctx, store.InboundFilter{Project: q.Project, Outcome: q.Outcome}, page(q.Page))
	return in, more, err
}

func (b apiBackend) DeadLetters(ctx context.Context, p api.Page) ([]ticket.DeadLetter, bool, error) {
	return b.st.DeadLetters(ctx, page(p))
}

func (b apiBackend) RetryDeadLetter(ctx context.Context, id int64) error {
	return b.dl.Retry(ctx, id)
}

func (b apiBackend) DiscardDeadLetter(ctx context.Context, id int64) error {
	return b.dl.Discard(ctx, id)
}

func apiTokens(ts []config.Token) []api.Token {
	out := make([]api.Token, 0, len(ts))
	for _, t := range ts {
		role, err := api.ParseRole(t.Role)
		if err != nil {
			continue // config validation already refused it
		}
		out = append(out, api.Token{Name: t.Name, Token: t.Token, SHA256: t.SHA256, Role: role})
	}
	return out
}

func (b apiBackend) AddNote(ctx context.Context, project string, number int64, n api.NoteRequest) (ticket.Message, error) {
	m, err := b.agent.AddNote(ctx, project, number, jobs.Note{Author: n.Author, Text: n.Text, Internal: n.Internal, Attachments: n.Attachments})
	return m, err
}

func (b apiBackend) SetStatus(ctx context.Context, project string, number int64, status ticket.Status) (ticket.Ticket, error) {
	t, err := b.agent.SetStatus(ctx, project, number, status)
	return t, err
}
