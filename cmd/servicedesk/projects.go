package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/store"
)

// projects is `projects list` and `projects verify KEY [--timeout D]`.
func (c *cli) projects(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("want list or verify KEY")}
	}
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := c.startMailTokens(st, nil); err != nil {
		return err
	}
	desks, err := c.desks(ctx, st)
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tNAME\tADDRESS\tVERIFICATION")
		for _, d := range desks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(d.Config.Key), printable(d.Config.Name), printable(d.Config.Address),
				printable(verificationState(ctx, st, d.ID)))
		}
		return tw.Flush()
	case "verify":
		fs := newFlags("projects verify")
		timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the mail to come back through the mailbox")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageError{errors.New("want a project key")}
		}
		for _, d := range desks {
			if d.Config.Key != fs.Arg(0) {
				continue
			}
			fmt.Fprintf(c.stdout, "sending a verification mail from %s to itself through %s:%d; waiting up to %s for a worker to fetch it\n",
				printable(d.Config.Address), printable(d.Config.SMTP.Host), d.Config.SMTP.Port, *timeout)
			status, detail, err := c.verifier(st).Verify(ctx, d, c.smtpOf(d.Config), *timeout)
			if err != nil {
				return fmt.Errorf("verify %s: %w", d.Config.Key, err)
			}
			fmt.Fprintf(c.stdout, "%s: %s (%s)\n", printable(d.Config.Key), printable(status), printable(detail))
			if status != jobs.VerifyOK {
				return errChecksFailed
			}
			return nil
		}
		return fmt.Errorf("no project %q in the config", fs.Arg(0))
	}
	return usageError{fmt.Errorf("unknown subcommand %q: want list or verify", args[0])}
}

func verificationState(ctx context.Context, st *store.Store, projectID int64) string {
	v, err := st.VerificationOf(ctx, projectID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "never verified"
	case err != nil:
		return "unknown: " + err.Error()
	case v.FinishedAt.IsZero():
		return "started " + v.StartedAt.Format(time.RFC3339)
	}
	return v.Status + " at " + v.FinishedAt.Format(time.RFC3339)
}
