package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/graph"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/store"
)

var (
	_ jobs.Mailbox = (*graph.Client)(nil)
	_ graph.Store  = graphStore{}
)

// graphDialer opens the Graph mailboxes of this process: one per process,
// so one access token per app registration serves every fetch. Graph's
// requests to wait are counted in m (nil: not counted).
func (c *cli) graphDialer(st *store.Store, m *jobs.Metrics) *graph.Dialer {
	return graph.NewDialer(graphStore{st}, &graph.Options{MaxMessageSize: int64(c.cfg.Limits.MaxMessageSize), Logger: c.log,
		Throttled: m.GraphThrottled})
}

// dialGraph opens a project's Graph mailbox (a nil *graph.Client never
// becomes a non-nil jobs.Mailbox).
func dialGraph(ctx context.Context, d *graph.Dialer, p config.Project) (jobs.Mailbox, error) {
	cfg := graphConfig(p.Graph)
	cfg.Name = p.Key
	cl, err := d.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

func graphConfig(g config.Graph) graph.Config {
	return graph.Config{TenantID: g.TenantID, ClientID: g.ClientID, ClientSecret: g.ClientSecret, User: g.User,
		AuthorityURL: g.AuthorityURL, APIURL: g.APIURL}
}

// checkGraph checks a project's Graph mailbox in two lines: the token
// (the tenant, the app registration and its secret) and the mailbox (the
// user, the Mail.ReadWrite permission, the folder).
func (c *cli) checkGraph(p config.Project, step func(string, time.Duration, func(context.Context) error)) {
	d := c.graphDialer(nil, nil) // a check lists nothing: no store needed, nothing counted
	var cl *graph.Client
	step(fmt.Sprintf("project %s graph token (tenant %s)", p.Key, p.Graph.TenantID), 30*time.Second, func(ctx context.Context) error {
		var err error
		cl, err = d.Dial(ctx, graphConfig(p.Graph))
		return err
	})
	step(fmt.Sprintf("project %s graph mailbox %s %s", p.Key, p.Graph.User, p.Graph.Folder), 30*time.Second, func(ctx context.Context) error {
		if cl == nil {
			return errors.New("not checked: no access token")
		}
		_, err := cl.Select(ctx, p.Graph.Folder)
		return err // a move target folder is created on first use
	})
}

// graphStore adapts the store to graph.Store.
type graphStore struct{ *store.Store }

func (s graphStore) DeltaLink(ctx context.Context, folder string) (string, error) {
	return s.GraphDeltaLink(ctx, folder)
}

func (s graphStore) SaveDelta(ctx context.Context, folder string, msgs []graph.Message, link string) error {
	out := make([]store.GraphMessage, len(msgs))
	for i, m := range msgs {
		out[i] = store.GraphMessage(m)
	}
	return s.SaveGraphDelta(ctx, folder, out, link)
}

func (s graphStore) MessagesAfter(ctx context.Context, folder string, after uint32, limit int) ([]graph.Message, error) {
	return graphMessages(s.GraphMessagesAfter(ctx, folder, after, limit))
}

func (s graphStore) MessagesByUID(ctx context.Context, folder string, uids []uint32) ([]graph.Message, error) {
	return graphMessages(s.GraphMessagesByUID(ctx, folder, uids))
}

func graphMessages(in []store.GraphMessage, err error) ([]graph.Message, error) {
	out := make([]graph.Message, len(in))
	for i, m := range in {
		out[i] = graph.Message(m)
	}
	return out, err
}
