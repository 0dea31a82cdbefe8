package main

import (
	"context"
	"fmt"
	"time"

	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/notify"
	"github.com/servicedesk/servicedesk/store"
)

// check prints one line per check, "ok" or "FAIL" with the reason, and
// fails if any did. It never prints a secret: reasons come from the
// servers' answers and the config's field names.
func (c *cli) check(ctx context.Context, args []string) error {
	if err := parseFlags(newFlags("check"), args); err != nil {
		return err
	}
	failed := false
	// A reason may quote a server's answer or a stored detail: printable.
	line := func(name string, err error) {
		if err != nil {
			failed = true
			fmt.Fprintf(c.stdout, "FAIL  %-28s %s\n", printable(name), printable(oneLine(err)))
			return
		}
		fmt.Fprintf(c.stdout, "ok    %s\n", printable(name))
	}
	if err := c.loadConfig(); err != nil {
		line("config "+c.configPath, err)
		return errChecksFailed
	}
	if _, err := notifyTemplates(c.cfg.Projects); err != nil {
		line("config "+c.configPath, err)
		return errChecksFailed
	}
	line("config "+c.configPath, nil)

	step := func(name string, timeout time.Duration, f func(context.Context) error) {
		sctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		line(name, f(sctx))
	}
	step("redis", 5*time.Second, func(ctx context.Context) error {
		_, rdb, err := c.openRedis(ctx)
		if err == nil {
			rdb.Close()
		}
		return err
	})
	var st *store.Store
	step("database", 15*time.Second, func(ctx context.Context) error {
		var err error
		st, err = c.openStore(ctx)
		return err
	})
	if st != nil {
		defer st.Close()
	}
	if err := c.startMailTokens(st, nil); err != nil {
		line("oauth2 tokens", err)
	}
	if c.cfg.Intake.Enabled() {
		c.checkTokens(ctx, intakeProject(c.cfg.Intake), line)
	}
	c.checkIntake(step)
	for _, p := range c.cfg.Projects {
		c.checkTokens(ctx, p, line)
		switch {
		case p.Graph.Configured():
			c.checkGraph(p, step)
		case p.HasMailbox():
			step(imapLine("project "+p.Key, p.IMAP), 30*time.Second, func(ctx context.Context) error {
				return c.checkIMAP(ctx, p)
			})
		}
		step(fmt.Sprintf("project %s smtp %s:%d", p.Key, p.SMTP.Host, p.SMTP.Port), 30*time.Second, func(ctx context.Context) error {
			return notify.Check(ctx, c.smtpOf(p))
		})
		if st != nil {
			c.verificationLine(ctx, st, p.Key, line)
		}
	}
	if failed {
		return errChecksFailed
	}
	return nil
}

// verificationLine reports the project's last address verification, when
// there was one: a failed verification fails the check.
func (c *cli) verificationLine(ctx context.Context, st *store.Store, key string, line func(string, error)) {
	p, err := st.ProjectByKey(ctx, key)
	if err != nil {
		return
	}
	v, err := st.VerificationOf(ctx, p.ID)
	if err != nil || v.FinishedAt.IsZero() {
		return
	}
	name := fmt.Sprintf("project %s verification", key)
	if v.Status == jobs.VerifyOK {
		line(name+" ("+v.FinishedAt.Format(time.RFC3339)+")", nil)
		return
	}
	line(name, fmt.Errorf("%s at %s: %s", v.Status, v.FinishedAt.Format(time.RFC3339), v.Detail))
}
