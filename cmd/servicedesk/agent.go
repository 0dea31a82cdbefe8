package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/ticket"
)

// fileList collects repeated --attach flags.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

func parseRef(s string) (string, int64, error) {
	key, num, ok := strings.Cut(s, "#")
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || key == "" {
		return "", 0, usageError{fmt.Errorf("%q: want KEY#NUMBER, e.g. acme#12", s)}
	}
	return key, n, nil
}

// agent opens what an agent action needs: the store, Redis to enqueue the
// mail, and the desks.
func (c *cli) agent(ctx context.Context) (*jobs.Agent, func(), error) {
	st, err := c.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	_, rdb, err := c.openRedis(ctx)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	desks, err := c.desks(ctx, st)
	if err != nil {
		rdb.Close()
		st.Close()
		return nil, nil, err
	}
	client := asynq.NewClientFromRedisClient(rdb)
	return jobs.NewAgent(st, jobs.NewEnqueuer(client, c.retries()), desks), func() { rdb.Close(); st.Close() }, nil
}

// reply is `tickets reply KEY#N --text T [--attach FILE]... [--internal] [--author NAME]`.
func (c *cli) reply(ctx context.Context, args []string) error {
	fs := newFlags("tickets reply")
	text := fs.String("text", "", "the reply (use - to read it from standard input)")
	internal := fs.Bool("internal", false, "an internal note: recorded, never mailed")
	author := fs.String("author", "", "who writes (default: $USER)")
	var files fileList
	fs.Var(&files, "attach", "attach a file (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("want KEY#NUMBER --text ...")}
	}
	key, n, err := parseRef(fs.Arg(0))
	if err != nil {
		return err
	}
	if *text == "-" {
		b, err := readAllStdin()
		if err != nil {
			return err
		}
		*text = string(b)
	}
	if strings.TrimSpace(*text) == "" && len(files) == 0 {
		return usageError{errors.New("--text or --attach is required")}
	}
	if *author == "" {
		*author = cmp.Or(envValue(c.env, "USER"), "cli")
	}
	var atts []ticket.Attachment
	for _, f := range files {
		a, err := readAttachment(f)
		if err != nil {
			return err
		}
		atts = append(atts, a)
	}
	agent, done, err := c.agent(ctx)
	if err != nil {
		return err
	}
	defer done()
	m, err := agent.AddNote(ctx, key, n, jobs.Note{Author: *author, Text: *text, Internal: *internal, Attachments: atts})
	if err != nil {
		return fmt.Errorf("reply to %s: %w", fs.Arg(0), err)
	}
	what := "reply queued for the participants"
	if *internal {
		what = "internal note added"
	}
	fmt.Fprintf(c.stdout, "%s: %s (message %d, %d attachments)\n", printable(fs.Arg(0)), what, m.ID, len(m.Attachments))
	return nil
}

func (c *cli) setStatus(ctx context.Context, status ticket.Status, args []string) error {
	if err := parseFlags(newFlags("tickets "+string(status)), args); err != nil {
		return err
	}
	if len(args) != 1 {
		return usageError{errors.New("want KEY#NUMBER")}
	}
	key, n, err := parseRef(args[0])
	if err != nil {
		return err
	}
	agent, done, err := c.agent(ctx)
	if err != nil {
		return err
	}
	defer done()
	t, err := agent.SetStatus(ctx, key, n, status)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	fmt.Fprintf(c.stdout, "%s is %s\n", printable(t.Ref), printable(string(t.Status)))
	return nil
}

// readAttachment reads a file for a reply; the API bounds uploads, the CLI
// bounds a single file to the same 50 MB.
func readAttachment(path string) (ticket.Attachment, error) {
	const maxFile = 50 << 20
	st, err := os.Stat(path)
	if err != nil {
		return ticket.Attachment{}, fmt.Errorf("attach: %w", err)
	}
	if st.Size() > maxFile {
		return ticket.Attachment{}, fmt.Errorf("attach %s: %d bytes, more than the 50 MB a note may carry", path, st.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ticket.Attachment{}, fmt.Errorf("attach: %w", err)
	}
	ct := mime.TypeByExtension(filepath.Ext(path))
	if ct == "" {
		ct = http.DetectContentType(data)
	}
	sum := sha256.Sum256(data)
	return ticket.Attachment{Filename: filepath.Base(path), ContentType: ct, Size: int64(len(data)),
		SHA256: hex.EncodeToString(sum[:]), Data: data}, nil
}

func readAllStdin() ([]byte, error) {
	b, err := io.ReadAll(os.Stdin)
	if err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	return b, nil
}
