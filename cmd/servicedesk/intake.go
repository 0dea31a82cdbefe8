package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// mailboxes returns the mailboxes to fetch: the intake's, when configured
// (its project row, ticket.IntakeKey, synced into the store), and every
// desk's own. intake is what the processor needs to route the intake's
// mail; nil without an intake.
func (c *cli) mailboxes(ctx context.Context, st *store.Store, desks []jobs.Desk) ([]jobs.Desk, *ingest.Intake, error) {
	var out []jobs.Desk
	var intake *ingest.Intake
	if in := c.cfg.Intake; in.Enabled() {
		synced, err := st.SyncProjects(ctx, []ticket.Project{{Key: ticket.IntakeKey, Name: "intake", Address: in.Address}})
		if err != nil {
			return nil, nil, fmt.Errorf("sync the intake mailbox: %w", err)
		}
		out = append(out, jobs.Desk{ID: synced[0].ID, Config: intakeProject(in)})
		intake = &ingest.Intake{ID: synced[0].ID, Address: in.Address}
	}
	for _, d := range desks {
		if d.Config.HasMailbox() {
			out = append(out, d)
		}
	}
	return out, intake, nil
}

// intakeProject is the intake mailbox in the shape the fetcher, the
// scheduler and the dialer take a mailbox: a project of its own.
func intakeProject(in config.Intake) config.Project {
	return config.Project{Key: ticket.IntakeKey, Name: "intake", Address: in.Address, IMAP: in.IMAP, Graph: in.Graph}
}

// verifier is the address verifier, looking at the intake's ledger too
// when there is an intake.
func (c *cli) verifier(st *store.Store) *jobs.Verifier {
	v := jobs.NewVerifier(st)
	v.Intake = c.cfg.Intake.Address
	return v
}

// checkIMAP logs in to a mailbox and selects its folder.
func (c *cli) checkIMAP(ctx context.Context, p config.Project) error {
	mb, err := mailbox.Dial(ctx, c.imapOf(p), c.log)
	if err != nil {
		return err
	}
	defer mb.Close()
	if p.IMAP.Idle {
		if err := mb.CheckIdle(ctx); errors.Is(err, mailbox.ErrNoIdle) {
			return fmt.Errorf("imap.idle is on, but the server offers neither IDLE nor IMAP4rev2: no watcher can start, "+
				"and new mail waits for imap.poll_interval (%s)", p.IMAP.PollInterval)
		} else if err != nil {
			return err
		}
	}
	if _, err := mb.Select(ctx, p.IMAP.Folder); err != nil {
		return fmt.Errorf("select %q: %w", p.IMAP.Folder, err)
	}
	return nil // a move target folder is created on first use
}

// imapLine names the check line of who's IMAP mailbox; with idle on, the
// line also says whether the server offers IDLE (checkIMAP).
func imapLine(who string, m config.IMAP) string {
	name := fmt.Sprintf("%s imap %s:%d", who, m.Host, m.Port)
	if m.Idle {
		name += " with idle"
	}
	return name
}

// checkIntake checks the intake mailbox like a desk's own, when there is
// one.
func (c *cli) checkIntake(step func(name string, timeout time.Duration, f func(context.Context) error)) {
	in := c.cfg.Intake
	if !in.Enabled() {
		return
	}
	if in.Graph.Configured() {
		c.checkGraph(intakeProject(in), step)
		return
	}
	step(imapLine("intake "+in.Address, in.IMAP), 30*time.Second, func(ctx context.Context) error {
		return c.checkIMAP(ctx, intakeProject(in))
	})
}
