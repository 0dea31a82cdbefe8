package main

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/notify"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// openStore opens the database and brings its schema up to date.
func (c *cli) openStore(ctx context.Context) (*store.Store, error) {
	st, err := store.Open(ctx, c.cfg.Database.URL, &store.Options{Logger: c.log})
	if err != nil {
		return nil, err // "open database: ...", never with the URL
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	return st, nil
}

// openRedis connects the one Redis client every asynq part shares.
func (c *cli) openRedis(ctx context.Context) (asynq.RedisConnOpt, redis.UniversalClient, error) {
	opt, err := jobs.RedisOpt(c.cfg.Redis.URL)
	if err != nil {
		return nil, nil, err
	}
	rdb := jobs.RedisClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("redis unreachable: %v", err)
	}
	return opt, rdb, nil
}

// desks syncs the configured projects into the store and pairs each with
// its ID.
func (c *cli) desks(ctx context.Context, st *store.Store) ([]jobs.Desk, error) {
	ps := make([]ticket.Project, 0, len(c.cfg.Projects))
	for _, p := range c.cfg.Projects {
		ps = append(ps, ticket.Project{Key: p.Key, Name: p.Name, Address: p.Address})
	}
	synced, err := st.SyncProjects(ctx, ps)
	if err != nil {
		return nil, fmt.Errorf("sync projects: %w", err)
	}
	ids := map[string]int64{}
	for _, p := range synced {
		ids[p.Key] = p.ID
	}
	desks := make([]jobs.Desk, 0, len(c.cfg.Projects))
	for _, p := range c.cfg.Projects {
		desks = append(desks, jobs.Desk{ID: ids[p.Key], Config: p})
	}
	return desks, nil
}

func (c *cli) replyKeys() (*ticket.ReplyKeys, error) {
	return ticket.NewReplyKeys([]byte(c.cfg.Mail.ReplyKeySecret))
}

func imapConfig(p config.Project) mailbox.Config {
	return mailbox.Config{Host: p.IMAP.Host, Port: p.IMAP.Port, Security: p.IMAP.Security,
		Username: p.IMAP.Username, Password: p.IMAP.Password, Folder: p.IMAP.Folder,
		InsecureSkipVerify: p.IMAP.InsecureSkipVerify}
}

func smtpConfig(p config.Project) notify.SMTPConfig {
	return notify.SMTPConfig{Host: p.SMTP.Host, Port: p.SMTP.Port, Security: p.SMTP.Security,
		Username: p.SMTP.Username, Password: p.SMTP.Password, InsecureSkipVerify: p.SMTP.InsecureSkipVerify}
}

// dialer opens a project's mailbox: Microsoft Graph or IMAP, as
// configured. st keeps the UIDs of Graph messages; m counts Graph's
// throttling.
func (c *cli) dialer(st *store.Store, m *jobs.Metrics) jobs.Dialer {
	graphs := c.graphDialer(st, m)
	return func(ctx context.Context, p config.Project) (jobs.Mailbox, error) {
		if p.Graph.Configured() {
			return dialGraph(ctx, graphs, p)
		}
		cfg := c.imapOf(p)
		// Whatever a server says a message's size is, no more than the
		// limit (and a byte, to tell) is read of it.
		cfg.MaxMessageSize = int64(c.cfg.Limits.MaxMessageSize)
		return mailbox.Dial(ctx, cfg, c.log)
	}
}

func ingestProjects(desks []jobs.Desk) []ingest.Project {
	out := make([]ingest.Project, 0, len(desks))
	for _, d := range desks {
		out = append(out, ingest.Project{ID: d.ID, Key: d.Config.Key, Address: d.Config.Address, Aliases: d.Config.Aliases,
			NotifyAgents: d.Config.NotifyAgents})
	}
	return out
}

func notifyProjects(desks []jobs.Desk, publicURL string) []notify.Project {
	out := make([]notify.Project, 0, len(desks))
	for _, d := range desks {
		np := notify.Project{ID: d.ID, Key: d.Config.Key, Name: d.Config.Name,
			Address: d.Config.Address, SMTP: smtpConfig(d.Config), PublicURL: publicURL}
		if k := d.Config.DKIM; k != nil {
			np.DKIM = &notify.DKIMConfig{Domain: k.Domain, Selector: k.Selector, PrivateKeyPEM: []byte(k.PrivateKey)}
		}
		out = append(out, np)
	}
	return out
}

var (
	_ notify.Store = (*store.Store)(nil)
	_ ingest.Store = ingestStore{}
)

// ingestStore adapts the store to what ingest asks: "no ticket" is (0, nil),
// and mail this process's fetches just stored comes from the hand-off.
type ingestStore struct {
	*store.Store
	handoff *jobs.Handoff
}

func (s ingestStore) InboundMessage(ctx context.Context, id, maxSize int64) (ticket.Inbound, []byte, error) {
	if in, raw, ok := s.handoff.Take(id); ok && in.Size <= maxSize {
		return in, raw, nil
	}
	return s.Store.InboundMessage(ctx, id, maxSize)
}

func (c *cli) retries() jobs.Retries {
	return jobs.Retries{Process: c.cfg.Worker.ProcessRetries, Send: c.cfg.Worker.NotifyRetries}
}

// notifyTemplates turns the configured templates into notify's, checking
// their placeholders: a typo is a start-up error, not a dead letter later.
func notifyTemplates(ps []config.Project) (map[string]map[ticket.NotificationKind]notify.Template, error) {
	out := map[string]map[ticket.NotificationKind]notify.Template{}
	for _, p := range ps {
		if p.DKIM != nil {
			k := notify.DKIMConfig{Domain: p.DKIM.Domain, Selector: p.DKIM.Selector, PrivateKeyPEM: []byte(p.DKIM.PrivateKey)}
			if err := k.Validate(); err != nil {
				return nil, fmt.Errorf("project %s dkim: %w", p.Key, err)
			}
		}
		for kind, t := range p.Templates {
			nt := notify.Template{Text: t.Text, HTML: t.HTML}
			if err := nt.ValidateFor(ticket.NotificationKind(kind)); err != nil {
				return nil, fmt.Errorf("project %s template %s: %w", p.Key, kind, err)
			}
			if out[p.Key] == nil {
				out[p.Key] = map[ticket.NotificationKind]notify.Template{}
			}
			out[p.Key][ticket.NotificationKind(kind)] = nt
		}
	}
	return out, nil
}

// customerLinks signs the links customers get by mail (the ticket's page,
// attachments, unsubscribe): with http.link_secret, else with a secret
// derived from mail.reply_key_secret under a label of its own.
func (c *cli) customerLinks() (*ticket.CustomerLinks, error) {
	secret := []byte(c.cfg.HTTP.LinkSecret)
	if len(secret) == 0 {
		secret = ticket.DeriveLinkSecret([]byte(c.cfg.Mail.ReplyKeySecret))
	}
	return ticket.NewCustomerLinks(secret, c.cfg.HTTP.PublicURL, ticket.LinkOptions{TTL: c.cfg.HTTP.LinkTTL.D()})
}

// withCustomerLinks gives notify's projects the customer links and the
// texts of GitLab's %{SYSTEM_HEADER}, %{SYSTEM_FOOTER} and
// %{ADDITIONAL_TEXT}.
func withCustomerLinks(ps []notify.Project, cfg *config.Config, links *ticket.CustomerLinks) []notify.Project {
	for i := range ps {
		ps[i].Links = links
		ps[i].SystemHeader, ps[i].SystemFooter = cfg.Mail.SystemHeader, cfg.Mail.SystemFooter
		if p, ok := cfg.Project(ps[i].Key); ok {
			ps[i].AdditionalText = p.AdditionalText
		}
	}
	return ps
}

// unsubscriber records the unsubscribes of the customer pages' links.
type unsubscriber struct{ st *store.Store }

func (u unsubscriber) Unsubscribe(ctx context.Context, project string, number int64, email string) error {
	return u.st.Unsubscribe(ctx, project, number, email, store.UnsubscribedViaLink)
}
