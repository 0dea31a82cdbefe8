package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/watch"
)

// idleMailboxes are the mailboxes configured with imap.idle, by the key
// their fetch tasks name (a project's key). A mailbox that is not a
// project's (the intake) is added here with its own key.
func idleMailboxes(desks []jobs.Desk) map[string]config.Project {
	out := map[string]config.Project{}
	for _, d := range desks {
		if d.Config.IMAP.Idle {
			out[d.Config.Key] = d.Config
		}
	}
	return out
}

// startIdleWatchers starts the IMAP IDLE watchers of the scheduler role
// (one per idle mailbox across all schedulers: the lease decides) and
// returns their stop. Without idle mailboxes it starts nothing.
func (c *cli) startIdleWatchers(ctx context.Context, rdb redis.UniversalClient, enq *jobs.Enqueuer, desks []jobs.Desk, reg prometheus.Registerer) func(context.Context) {
	boxes := idleMailboxes(desks)
	if len(boxes) == 0 {
		return func(context.Context) {}
	}
	list := make([]watch.Mailbox, 0, len(boxes))
	for key, p := range boxes {
		list = append(list, watch.Mailbox{Project: key, PollInterval: p.IMAP.PollInterval.D()})
	}
	dial := func(ctx context.Context, key string) (watch.Conn, error) {
		return mailbox.DialIdle(ctx, c.imapOf(boxes[key]), c.log)
	}
	w, err := watch.New(rdb, dial, enq, list, &watch.Options{Logger: c.log, Temporary: mailbox.Temporary, Metrics: watch.NewMetrics(reg)})
	if err != nil { // only the options are checked, and they are the defaults
		c.log.Error("idle watchers not started; polling still fetches", "err", err)
		return func(context.Context) {}
	}
	w.Start(ctx)
	c.log.Info("idle watchers started", slog.Int("mailboxes", len(list)))
	return w.Stop
}

// fetchAgain is the mark a fetch leaves when it finds its mailbox busy, so
// that the busy one fetches once more (an IDLE wake-up never waits for the
// next poll); nil (today's skip) when no mailbox is idle.
func fetchAgain(rdb redis.UniversalClient, desks []jobs.Desk) jobs.FetchAgain {
	if len(idleMailboxes(desks)) == 0 {
		return nil
	}
	return jobs.NewRedisFetchAgain(rdb)
}
