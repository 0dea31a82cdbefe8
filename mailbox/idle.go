package mailbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// ErrNoIdle means the server offers neither IDLE (RFC 2177) nor IMAP4rev2:
// permanent, polling is all there is.
var ErrNoIdle = errors.New("mailbox: server does not support IDLE")

// idleAnswerTimeout bounds the wait for the server's answer to DONE: with
// Wait called every 30 s, a dead connection is noticed within 45 s.
const idleAnswerTimeout = 15 * time.Second

// IdleConn is one connection that waits in IDLE (RFC 2177) on a folder,
// opened read-only (EXAMINE), for the server to report new mail. It never
// reads or changes a message. Like Client, it is not for concurrent use.
type IdleConn struct {
	c *Client
	// exists holds one notice of an EXISTS the server sent; more notices
	// before it is taken are one: a burst is one wake-up.
	exists chan struct{}
}

// DialIdle dials and logs in as Dial does, checks that the server offers
// IDLE (ErrNoIdle otherwise) and opens cfg.Folder read-only. A missing
// folder returns an error matching ErrNoMailbox.
func DialIdle(ctx context.Context, cfg Config, logger *slog.Logger) (*IdleConn, error) {
	w := &IdleConn{exists: make(chan struct{}, 1)}
	cfg.unilateral = &imapclient.UnilateralDataHandler{
		// Called on the client's read goroutine: never block it.
		Mailbox: func(m *imapclient.UnilateralDataMailbox) {
			if m.NumMessages != nil {
				select {
				case w.exists <- struct{}{}:
				default:
				}
			}
		},
	}
	c, err := Dial(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	w.c = c
	if err := c.CheckIdle(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	folder := c.cfg.Folder
	err = c.run(ctx, c.cfg.CommandTimeout, func() error {
		_, err := c.ic.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		return err
	})
	if err != nil {
		_ = c.Close()
		if typ, code := imapCode(err); typ == imap.StatusResponseTypeNo && !temporaryCode(code) {
			err = fmt.Errorf("%w: %w", ErrNoMailbox, err)
		}
		return nil, fmt.Errorf("examine mailbox %q: %w", folder, err)
	}
	return w, nil
}

// Wait waits in IDLE until the server reports new mail (EXISTS: true),
// until d has passed (false), or until ctx ends (ctx's error). New mail
// reported since the last Wait, or by the NOOP that precedes each IDLE,
// returns true at once.
//
// Every Wait sends NOOP and ends IDLE with DONE, and waits for the server's
// answer to each at most 15 s (or CommandTimeout, if shorter): a nil error
// says the server answered, so Wait in a loop with d of 30 s notices a dead connection (a
// server gone without a word, a half-open TCP connection) within 45 s, and
// a connection the server closes (BYE, shutdown) at once. d also re-IDLEs
// well before the 29 minutes after which RFC 2177 lets a server log the
// client out. After an error the connection is unusable: Close it and dial
// again. Wait may report new mail and an error together.
func (w *IdleConn) Wait(ctx context.Context, d time.Duration) (bool, error) {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ic == nil {
		return false, fmt.Errorf("idle: %w: connection closed", errConnection)
	}
	answer := min(c.cfg.CommandTimeout, idleAnswerTimeout)
	// NOOP first: not every server reports at the start of IDLE what
	// changed since the last command (imapmemserver does not); every
	// server answers a NOOP with it.
	err := c.run(ctx, answer, func() error { return c.ic.Noop().Wait() })
	if err != nil {
		return false, fmt.Errorf("noop: %w", err)
	}
	select {
	case <-w.exists:
		return true, nil
	default:
	}
	var cmd *imapclient.IdleCommand
	err = c.run(ctx, c.cfg.CommandTimeout, func() (err error) {
		cmd, err = c.ic.Idle()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("start IDLE: %w", err)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	newMail := false
	select {
	case <-w.exists:
		newMail = true
	case <-timer.C:
	case <-c.ic.Closed():
		_ = cmd.Close()
		return len(w.exists) > 0, fmt.Errorf("idle: %w: the server closed the connection", errConnection)
	case <-ctx.Done():
		answer = min(answer, 2*time.Second) // leaving: be quick about it
	}
	err = c.run(context.Background(), answer, func() error {
		if err := cmd.Close(); err != nil {
			return err
		}
		return cmd.Wait()
	})
	if err != nil {
		return newMail, fmt.Errorf("end IDLE: %w", err)
	}
	return newMail, ctx.Err()
}

// Close logs out and closes the connection. It is safe to call more than
// once.
func (w *IdleConn) Close() error { return w.c.Close() }

// CheckIdle returns nil when the server offers IDLE (RFC 2177), or
// IMAP4rev2, which includes it, and an error matching ErrNoIdle when it
// offers neither.
func (c *Client) CheckIdle(ctx context.Context) error {
	var caps imap.CapSet
	err := c.run(ctx, c.cfg.CommandTimeout, func() error {
		caps = c.ic.Caps()
		return nil
	})
	if err == nil && !caps.Has(imap.CapIdle) && !caps.Has(imap.CapIMAP4rev2) {
		err = ErrNoIdle
	}
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	return nil
}
