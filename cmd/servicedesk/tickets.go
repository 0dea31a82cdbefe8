package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/hibiken/asynq"

	"github.com/servicedesk/servicedesk/api"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

func (c *cli) migrate(ctx context.Context, args []string) error {
	if err := parseFlags(newFlags("migrate"), args); err != nil {
		return err
	}
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintln(c.stdout, "database schema is up to date")
	return nil
}

// printJSON prints v as the API answers it. encoding/json escapes the C0
// controls and U+2028/U+2029; jsonForTerminal escapes DEL and C1 too, so
// that --json output is as safe to view as the tables (bidi characters are
// data, and left as they are).
func (c *cli) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(append(jsonForTerminal(b), '\n'))
	return err
}

// pageFlags adds --page and --per-page to a list command; the page is
// normalised as the API's is (from 1, 50 per page, at most 1000).
func pageFlags(fs *flag.FlagSet) func() store.Page {
	pg := fs.Int("page", 1, "page, from 1")
	per := fs.Int("per-page", 50, "rows per page (at most 1000)")
	return func() store.Page { return store.Page{Page: *pg, PerPage: *per}.Normalize() }
}

func (c *cli) tickets(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("want list, show, reply, close or reopen")}
	}
	switch args[0] {
	case "reply":
		return c.reply(ctx, args[1:])
	case "close":
		return c.setStatus(ctx, ticket.StatusClosed, args[1:])
	case "reopen":
		return c.setStatus(ctx, ticket.StatusOpen, args[1:])
	}
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "list":
		fs := newFlags("tickets list")
		project := fs.String("project", "", "only this project")
		status := fs.String("status", "", "open or closed")
		page := pageFlags(fs)
		asJSON := fs.Bool("json", false, "print the API's JSON")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *project != "" {
			if _, err := st.ProjectByKey(ctx, *project); err != nil {
				return fmt.Errorf("project %q: %w", *project, err)
			}
		}
		p := page()
		ts, more, err := st.Tickets(ctx, store.TicketFilter{Project: *project, Status: ticket.Status(*status)}, p)
		if err != nil {
			return err
		}
		if *asJSON {
			return c.printJSON(api.ListJSON("tickets", ts, p.Page, more))
		}
		return printTickets(c.stdout, ts)
	case "show":
		fs := newFlags("tickets show")
		asJSON := fs.Bool("json", false, "print the API's JSON")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return usageError{errors.New("want KEY#NUMBER, e.g. acme#12")}
		}
		key, n, err := parseRef(fs.Arg(0))
		if err != nil {
			return err
		}
		t, err := st.TicketByNumber(ctx, key, n)
		if err != nil {
			return fmt.Errorf("ticket %s: %w", fs.Arg(0), err)
		}
		api.Normalize(&t)
		if *asJSON {
			return c.printJSON(t)
		}
		return printTicket(c.stdout, t)
	}
	return usageError{fmt.Errorf("unknown subcommand %q: want list, show, reply, close or reopen", args[0])}
}

func (c *cli) inbound(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "list" {
		return usageError{errors.New("want list")}
	}
	fs := newFlags("inbound list")
	project := fs.String("project", "", "only this project")
	outcome := fs.String("outcome", "", "only this outcome: ticket_created, reply_added, auto_reply, bounce, duplicate, rejected, failed or unroutable")
	page := pageFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	p := page()
	rows, more, err := st.ListInbound(ctx, store.InboundFilter{Project: *project, Outcome: ticket.Outcome(*outcome)}, p)
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(api.ListJSON("inbound", rows, p.Page, more))
	}
	return printInbound(c.stdout, rows)
}

func (c *cli) deadletters(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("want list, retry ID or discard ID")}
	}
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "list":
		fs := newFlags("deadletters list")
		asJSON := fs.Bool("json", false, "print the API's JSON")
		page := pageFlags(fs)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		p := page()
		dls, more, err := st.DeadLetters(ctx, p)
		if err != nil {
			return err
		}
		if *asJSON {
			return c.printJSON(api.ListJSON("deadletters", dls, p.Page, more))
		}
		return printDeadLetters(c.stdout, dls)
	case "retry", "discard":
		if len(args) != 2 {
			return usageError{fmt.Errorf("%s wants one dead letter ID", args[0])}
		}
		id, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return usageError{fmt.Errorf("dead letter ID %q: want a number", args[1])}
		}
		if args[0] == "discard" {
			if err := st.DiscardDeadLetter(ctx, id); err != nil {
				return fmt.Errorf("discard dead letter %d: %w", id, err)
			}
			fmt.Fprintf(c.stdout, "dead letter %d discarded\n", id)
			return nil
		}
		_, rdb, err := c.openRedis(ctx)
		if err != nil {
			return err
		}
		defer rdb.Close()
		client := asynq.NewClientFromRedisClient(rdb)
		dl := jobs.NewDeadLetters(st, jobs.NewEnqueuer(client, c.retries()), asynq.NewInspectorFromRedisClient(rdb))
		if err := dl.Retry(ctx, id); err != nil {
			return fmt.Errorf("retry dead letter %d: %w", id, err)
		}
		fmt.Fprintf(c.stdout, "dead letter %d queued again\n", id)
		return nil
	}
	return usageError{fmt.Errorf("unknown subcommand %q: want list, retry or discard", args[0])}
}

// The printers below show what the store holds, every field of it through
// printable (printableText for a message body): a subject, an address or
// a reason is whatever a stranger's mail or server said.

// printTickets prints tickets as a table, one row each.
func printTickets(w io.Writer, ts []ticket.Ticket) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REF\tSTATUS\tREQUESTER\tCREATED\tSUBJECT")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(t.Ref), printable(string(t.Status)), printable(t.Requester),
			t.CreatedAt.Format("2006-01-02 15:04"), printable(t.Subject))
	}
	return tw.Flush()
}

// printTicket prints one ticket with its messages.
func printTicket(w io.Writer, t ticket.Ticket) error {
	participants := make([]string, len(t.Participants))
	for i, p := range t.Participants {
		participants[i] = printable(p)
	}
	fmt.Fprintf(w, "%s  [%s]  %s\nrequester: %s\nparticipants: %s\ncreated: %s\n",
		printable(t.Ref), printable(string(t.Status)), printable(t.Subject), printable(t.Requester),
		strings.Join(participants, ", "), t.CreatedAt.Format("2006-01-02 15:04:05"))
	for _, m := range t.Messages {
		fmt.Fprintf(w, "\n--- %s %s from %s at %s %s\n", printable(string(m.Direction)), printable(string(m.Kind)),
			printable(m.From), m.CreatedAt.Format("2006-01-02 15:04:05"), printable(m.MessageID))
		fmt.Fprintln(w, strings.TrimSpace(printableText(m.Text)))
		for _, r := range m.Delivery {
			line := fmt.Sprintf("[to %s: %s", printable(r.To), printable(r.Status))
			if r.Reason != "" {
				line += " (" + printable(r.Reason) + ")"
			}
			fmt.Fprintln(w, line+"]")
		}
		for _, a := range m.Attachments {
			fmt.Fprintf(w, "[attachment %d: %s, %s, %d bytes, sha256 %s]\n", a.ID, printable(a.Filename),
				printable(a.ContentType), a.Size, printable(a.SHA256))
		}
	}
	return nil
}

// printInbound prints ledger rows as a table.
func printInbound(w io.Writer, rows []ticket.Inbound) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROJECT\tUID\tOUTCOME\tTICKET\tFROM\tSUBJECT\tREASON")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", r.ID, printable(r.Project), r.UID, printable(string(r.Outcome)),
			r.TicketNumber, printable(r.From), printable(r.Subject), printable(r.Reason))
	}
	return tw.Flush()
}

// printDeadLetters prints dead letters as a table.
func printDeadLetters(w io.Writer, dls []ticket.DeadLetter) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tPROJECT\tCREATED\tADDRESS\tMESSAGE-ID\tREASON")
	for _, d := range dls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, printable(string(d.Kind)), printable(d.Project),
			d.CreatedAt.Format("2006-01-02 15:04:05"), printable(d.Address), printable(d.MessageID), printable(d.Reason))
	}
	return tw.Flush()
}
