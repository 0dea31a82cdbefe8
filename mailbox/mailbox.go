// Package mailbox is the IMAP adapter: it dials and logs in to a mailbox
// (implicit TLS, STARTTLS or plain), selects a folder, lists messages by UID,
// downloads them without setting \Seen, and flags, moves, deletes and appends
// them. It is the only package that imports go-imap.
//
// Protocols: IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051), UIDPLUS (RFC 4315)
// for UID EXPUNGE and APPENDUID, MOVE (RFC 6851) with the COPY + \Deleted +
// UID EXPUNGE fallback, response codes (RFC 5530), STARTTLS/implicit TLS
// (RFC 8314).
//
// go-imap has no context: every operation closes the connection when its ctx
// ends and bounds each command with a deadline on the underlying net.Conn.
// A Client is one connection and is not meant for concurrent use; calls are
// serialized.
package mailbox

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Security values for Config.Security.
const (
	SecurityTLS      = "tls"
	SecurityStartTLS = "starttls"
	SecurityNone     = "none"
)

// Batch limits for Fetch: one UID FETCH asks for at most fetchMaxUIDs
// messages and, going by their RFC822.SIZE, at most fetchMaxBytes of them
// (a single larger message is fetched alone).
const (
	fetchMaxUIDs  = 50
	fetchMaxBytes = 32 << 20
)

// Config says where a mailbox is and how to log in.
type Config struct {
	// Host is the IMAP server's name or address. Required.
	Host string
	// Port is the TCP port. Defaults to 993 for "tls", 143 otherwise.
	Port int
	// Security is "tls" (implicit TLS), "starttls" or "none". Defaults to "tls".
	Security string
	// Username and Password are sent with LOGIN.
	Username, Password string
	// Tokens, when set, logs in with an OAuth2 access token instead of the
	// password: see auth.go.
	Tokens TokenSource
	// Mechanism is the SASL mechanism to prefer with Tokens: MechXOAUTH2
	// (default) or MechOAuthBearer; the other is used when the server
	// offers only that.
	Mechanism string
	// Folder is selected when an operation needs a mailbox and none was
	// selected. Defaults to "INBOX".
	Folder string
	// DialTimeout bounds the TCP connect, the TLS handshake, the greeting and
	// LOGIN. Defaults to 15s.
	DialTimeout time.Duration
	// CommandTimeout bounds each IMAP command. Defaults to 60s.
	CommandTimeout time.Duration
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool
	// MaxMessageSize caps the bytes of one message Fetch reads, whatever
	// RFC822.SIZE said: of a longer BODY[] literal (a server that lies
	// about the size) MaxMessageSize+1 bytes are kept and the rest is
	// discarded, so the caller sees a message over its limit and refuses
	// it as it refuses one whose announced size is too large. Defaults to
	// 0: no cap.
	MaxMessageSize int64

	// unilateral receives what the server reports unasked (EXISTS during
	// IDLE); set by DialIdle only.
	unilateral *imapclient.UnilateralDataHandler
}

// WithDefaults returns a copy of cfg with the documented defaults filled in.
func (cfg Config) WithDefaults() Config {
	cfg.Security = cmp.Or(cfg.Security, SecurityTLS)
	if cfg.Port == 0 {
		cfg.Port = 143
		if cfg.Security == SecurityTLS {
			cfg.Port = 993
		}
	}
	cfg.Folder = cmp.Or(cfg.Folder, "INBOX")
	cfg.DialTimeout = cmp.Or(cfg.DialTimeout, 15*time.Second)
	cfg.CommandTimeout = cmp.Or(cfg.CommandTimeout, 60*time.Second)
	return cfg
}

func (cfg Config) validate() error {
	switch cfg.Security {
	case SecurityTLS, SecurityStartTLS, SecurityNone:
	default:
		return fmt.Errorf("security %q: want tls, starttls or none", cfg.Security)
	}
	switch {
	case cfg.Host == "":
		return errors.New("host is empty")
	case cfg.Port < 1 || cfg.Port > 65535:
		return fmt.Errorf("port %d out of range", cfg.Port)
	case cfg.Username == "":
		return errors.New("username is empty")
	case cfg.DialTimeout < 0 || cfg.CommandTimeout < 0:
		return errors.New("timeouts must not be negative")
	}
	return nil
}

// Status is what SELECT reports about a folder.
type Status struct {
	// UIDValidity changes when the server renumbers the folder; UIDs from an
	// earlier UIDValidity mean nothing.
	UIDValidity uint32
	// UIDNext is the UID the next message will get (0 if not reported).
	UIDNext uint32
	// Messages is the number of messages in the folder.
	Messages uint32
}

// Entry is one message as List sees it.
type Entry struct {
	UID  uint32
	Size int64 // RFC822.SIZE in bytes
}

// Client is one logged-in IMAP connection.
type Client struct {
	cfg    Config
	logger *slog.Logger
	raw    net.Conn // deadlines and forced close act here
	ic     *imapclient.Client

	mu         sync.Mutex // serializes operations
	selected   string     // folder of the last successful SELECT
	selectFail bool       // the last SELECT failed: no implicit SELECT of cfg.Folder
}

// Dial connects to cfg.Host, sets up TLS as cfg.Security says and logs in.
// A refused login returns an error matching ErrAuth. The connection is closed
// when ctx ends during Dial; after Dial returns, ctx no longer matters.
func Dial(ctx context.Context, cfg Config, logger *slog.Logger) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("mailbox: invalid config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	logger = logger.With("component", "mailbox", "addr", addr, "security", cfg.Security)

	dialer := net.Dialer{Timeout: cfg.DialTimeout}
	raw, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := &Client{cfg: cfg, logger: logger, raw: raw}
	tlsConfig := &tls.Config{
		ServerName:         cfg.Host,
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"imap"},
	}
	err = c.run(ctx, cfg.DialTimeout, func() error {
		conn := net.Conn(noDeadlineConn{raw})
		opts := &imapclient.Options{TLSConfig: tlsConfig, UnilateralDataHandler: cfg.unilateral}
		switch cfg.Security {
		case SecurityTLS:
			tc := tls.Client(raw, tlsConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				return fmt.Errorf("tls handshake: %w", err)
			}
			c.ic = imapclient.New(noDeadlineConn{tc}, opts)
		case SecurityStartTLS:
			ic, err := imapclient.NewStartTLS(conn, opts)
			if err != nil {
				return fmt.Errorf("starttls: %w", err)
			}
			c.ic = ic
		default:
			c.ic = imapclient.New(conn, opts)
		}
		if err := c.ic.WaitGreeting(); err != nil {
			return fmt.Errorf("greeting: %w", err)
		}
		return c.login(ctx)
	})
	if err != nil {
		c.closeNow()
		return nil, err
	}
	logger.Debug("logged in")
	return c, nil
}

func temporaryCode(code imap.ResponseCode) bool {
	switch code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeInUse, imap.ResponseCodeServerBug:
		return true
	}
	return false
}

// run executes fn with a deadline of timeout (or ctx's, if sooner) on the
// connection and closes the connection if ctx ends first. The error then
// wraps ctx.Err().
func (c *Client) run(ctx context.Context, timeout time.Duration, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	ctxDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxDeadline = d, true
	}
	if err := c.raw.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.raw.Close() })
	err := fn()
	stopped := stop()
	if !stopped && err == nil {
		return ctx.Err() // ctx ended as fn returned: the connection is closed
	}
	if stopped {
		// Idle between operations: no deadline, or the read loop would
		// time out while nobody is waiting (also after a NO or BAD).
		if derr := c.raw.SetDeadline(time.Time{}); err == nil {
			return derr
		}
	}
	// imapclient formats transport errors with %v: restore what they mean.
	var ie *imap.Error
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	case ctxDeadline && !time.Now().Before(deadline):
		// The conn deadline, set from ctx's, fired before ctx's timer.
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	case !time.Now().Before(deadline):
		return fmt.Errorf("%w after %v: %w", errTimeout, timeout, err)
	case errors.As(err, &ie), errors.Is(err, ErrAuth), errors.Is(err, errToken), isTLSError(err):
		return err
	default:
		return fmt.Errorf("%w: %w", errConnection, err)
	}
}

// do serializes an operation that needs cfg.Folder (or the last selected
// folder) selected, and runs fn under the command timeout.
func (c *Client) do(ctx context.Context, fn func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.selected == "" {
		if c.selectFail {
			return errors.New("no folder selected: the last SELECT failed")
		}
		if _, err := c.selectLocked(ctx, c.cfg.Folder); err != nil {
			return err
		}
	}
	return c.run(ctx, c.cfg.CommandTimeout, fn)
}

// Select opens folder read-write and reports its UIDVALIDITY, UIDNEXT and
// message count. Later operations act on this folder. A missing folder
// returns an error matching ErrNoMailbox.
func (c *Client) Select(ctx context.Context, folder string) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.selectLocked(ctx, folder)
}

func (c *Client) selectLocked(ctx context.Context, folder string) (Status, error) {
	var st Status
	err := c.run(ctx, c.cfg.CommandTimeout, func() error {
		data, err := c.ic.Select(folder, nil).Wait()
		if err != nil {
			return err
		}
		st = Status{UIDValidity: data.UIDValidity, UIDNext: uint32(data.UIDNext), Messages: data.NumMessages}
		return nil
	})
	if err != nil {
		c.selected, c.selectFail = "", true
		if typ, code := imapCode(err); typ == imap.StatusResponseTypeNo && !temporaryCode(code) {
			return Status{}, fmt.Errorf("select mailbox %q: %w: %w", folder, ErrNoMailbox, err)
		}
		return Status{}, fmt.Errorf("select mailbox %q: %w", folder, err)
	}
	c.selected, c.selectFail = folder, false
	return st, nil
}

// List returns the messages with a UID greater than afterUID in ascending
// UID order, at most limit of them (limit <= 0 means all), with their sizes.
// It downloads no bodies: one UID SEARCH, then one UID FETCH (UID
// RFC822.SIZE) for the chosen UIDs.
func (c *Client) List(ctx context.Context, afterUID uint32, limit int) ([]Entry, error) {
	var entries []Entry
	err := c.do(ctx, func() error {
		uids, err := c.searchAfter(afterUID, limit)
		if err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
		sizes, err := c.sizes(uids)
		if err != nil {
			return err
		}
		entries = make([]Entry, 0, len(uids))
		for _, uid := range uids {
			if size, ok := sizes[uid]; ok {
				entries = append(entries, Entry{UID: uid, Size: size})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list messages after UID %d in %q: %w", afterUID, c.selected, err)
	}
	return entries, nil
}

// searchAfter returns the UIDs greater than after, ascending, at most limit.
// "UID SEARCH UID n:*" also matches the highest UID when it is below n
// (n:* is read as *:n), so the result is filtered.
func (c *Client) searchAfter(after uint32, limit int) ([]uint32, error) {
	if after == ^uint32(0) {
		return nil, nil
	}
	criteria := &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: imap.UID(after + 1), Stop: 0}}}}
	var opts *imap.SearchOptions
	if caps := c.ic.Caps(); caps.Has(imap.CapESearch) || caps.Has(imap.CapIMAP4rev2) {
		opts = &imap.SearchOptions{ReturnAll: true} // ranges, not 20,000 numbers
	}
	data, err := c.ic.UIDSearch(criteria, opts).Wait()
	if err != nil {
		return nil, fmt.Errorf("uid search: %w", err)
	}
	all, _ := data.All.(imap.UIDSet)
	uids, err := firstUIDsAfter(all, after, limit)
	if err != nil {
		return nil, fmt.Errorf("uid search: %w", err)
	}
	return uids, nil
}

// firstUIDsAfter returns the lowest UIDs of set above after, ascending and
// without repeats, at most limit (0: all). It walks the set's ranges
// rather than expanding them: with 100,000 messages waiting, each batch of
// a drain would otherwise build and sort a slice of every UID left. A set
// holding "*" is the server's error (RFC 9051 answers numbers), not a
// panic, as expanding it in go-imap would be.
func firstUIDsAfter(set imap.UIDSet, after uint32, limit int) ([]uint32, error) {
	ranges := make([]imap.UIDRange, 0, len(set))
	for _, r := range set {
		if r.Start == 0 || r.Stop == 0 {
			return nil, fmt.Errorf("the server answered a UID set with \"*\" (%s)", set)
		}
		lo, hi := min(r.Start, r.Stop), max(r.Start, r.Stop)
		if uint32(hi) <= after {
			continue
		}
		ranges = append(ranges, imap.UIDRange{Start: max(lo, imap.UID(after+1)), Stop: hi})
	}
	slices.SortFunc(ranges, func(a, b imap.UIDRange) int { return cmp.Compare(a.Start, b.Start) })
	var uids []uint32
	next := after + 1 // the lowest UID not yet taken
	for _, r := range ranges {
		for uid := max(uint32(r.Start), next); uid <= uint32(r.Stop); uid++ {
			if limit > 0 && len(uids) == limit {
				return uids, nil
			}
			uids = append(uids, uid)
			if uid == ^uint32(0) {
				return uids, nil // the highest UID there is: nothing follows
			}
			next = uid + 1
		}
	}
	return uids, nil
}

// sizes returns RFC822.SIZE for those of uids that exist.
func (c *Client) sizes(uids []uint32) (map[uint32]int64, error) {
	msgs, err := c.ic.Fetch(uidSet(uids), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("uid fetch rfc822.size: %w", err)
	}
	sizes := make(map[uint32]int64, len(msgs))
	for _, m := range msgs {
		if m.UID != 0 {
			sizes[uint32(m.UID)] = m.RFC822Size
		}
	}
	return sizes, nil
}

// Fetch downloads the messages with the given UIDs (BODY.PEEK[]: \Seen is
// not set) and calls fn for each in ascending UID order. UIDs that no longer
// exist are skipped. Messages are fetched in batches of at most 50 and about
// 32 MiB, so memory stays bounded; fn runs between commands, not under the
// command timeout. An error from fn stops Fetch and is returned as is.
func (c *Client) Fetch(ctx context.Context, uids []uint32, fn func(uid uint32, raw []byte) error) error {
	uids = sortedUnique(uids)
	if len(uids) == 0 {
		return nil
	}
	var sizes map[uint32]int64
	err := c.do(ctx, func() (err error) {
		sizes, err = c.sizes(uids)
		return err
	})
	if err != nil {
		return fmt.Errorf("fetch messages from %q: %w", c.selected, err)
	}
	for _, batch := range batches(uids, sizes) {
		var bodies map[uint32][]byte
		err := c.do(ctx, func() (err error) {
			bodies, err = c.fetchBodies(batch)
			return err
		})
		if err != nil {
			return fmt.Errorf("fetch messages %v from %q: %w", uidSet(batch), c.selected, err)
		}
		for _, uid := range batch {
			raw, ok := bodies[uid]
			if !ok {
				continue // expunged since the size query
			}
			delete(bodies, uid)
			if err := fn(uid, raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// batches splits the existing UIDs (those in sizes) into groups of at most
// fetchMaxUIDs UIDs and fetchMaxBytes bytes.
func batches(uids []uint32, sizes map[uint32]int64) [][]uint32 {
	var out [][]uint32
	var cur []uint32
	var bytes int64
	for _, uid := range uids {
		size, ok := sizes[uid]
		if !ok {
			continue
		}
		if len(cur) > 0 && (len(cur) == fetchMaxUIDs || bytes+size > fetchMaxBytes) {
			out = append(out, cur)
			cur, bytes = nil, 0
		}
		cur = append(cur, uid)
		bytes += size
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (c *Client) fetchBodies(uids []uint32) (map[uint32][]byte, error) {
	section := &imap.FetchItemBodySection{Peek: true}
	cmd := c.ic.Fetch(uidSet(uids), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
	bodies := make(map[uint32][]byte, len(uids))
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		uid, raw, err := readFetched(msg, c.cfg.MaxMessageSize)
		if err != nil {
			_ = cmd.Close()
			return nil, fmt.Errorf("read message: %w", err)
		}
		if uid == 0 {
			continue // unilateral FETCH (flags update), not ours
		}
		if raw != nil {
			bodies[uid] = raw
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("uid fetch body.peek[]: %w", err)
	}
	return bodies, nil
}

// readFetched reads the UID and the BODY[] literal of one FETCH response,
// at most maxSize+1 bytes of the literal when maxSize > 0 (the rest is
// discarded by the client when it moves to the next item).
func readFetched(msg *imapclient.FetchMessageData, maxSize int64) (uint32, []byte, error) {
	var (
		uid uint32
		raw []byte
	)
	for {
		item := msg.Next()
		if item == nil {
			return uid, raw, nil
		}
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = uint32(item.UID)
		case imapclient.FetchItemDataBodySection:
			b, err := readCapped(item.Literal, maxSize)
			if err != nil {
				return 0, nil, err
			}
			raw = b
		}
	}
}

// readCapped reads r whole, or only its first maxSize+1 bytes when
// maxSize > 0: enough to tell that it is over the limit.
func readCapped(r io.Reader, maxSize int64) ([]byte, error) {
	if r == nil {
		return []byte{}, nil
	}
	if maxSize > 0 {
		r = io.LimitReader(r, maxSize+1)
	}
	b, err := io.ReadAll(r)
	if b == nil {
		b = []byte{}
	}
	return b, err
}

// MarkSeen sets \Seen on the messages (UID STORE +FLAGS.SILENT).
func (c *Client) MarkSeen(ctx context.Context, uids []uint32) error {
	return c.store(ctx, "mark seen", uids, imap.FlagSeen)
}

func (c *Client) store(ctx context.Context, step string, uids []uint32, flag imap.Flag) error {
	uids = sortedUnique(uids)
	if len(uids) == 0 {
		return nil
	}
	err := c.do(ctx, func() error {
		flags := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}
		return c.ic.Store(uidSet(uids), flags, nil).Close()
	})
	if err != nil {
		return fmt.Errorf("%s %v in %q: %w", step, uidSet(uids), c.selected, err)
	}
	return nil
}

// Move moves the messages to folder, creating it when missing. It uses MOVE
// when the server has it, else COPY + \Deleted + UID EXPUNGE (plain EXPUNGE
// without UIDPLUS, which also removes other messages flagged \Deleted).
func (c *Client) Move(ctx context.Context, uids []uint32, folder string) error {
	uids = sortedUnique(uids)
	if len(uids) == 0 {
		return nil
	}
	move := func() error {
		_, err := c.ic.Move(uidSet(uids), folder).Wait()
		return err
	}
	err := c.do(ctx, move)
	if _, code := imapCode(err); code == imap.ResponseCodeTryCreate || (err != nil && !c.folderExists(ctx, folder)) {
		c.logger.Info("creating folder", "folder", folder)
		err = c.do(ctx, func() error {
			if err := c.ic.Create(folder, nil).Wait(); err != nil {
				if _, code := imapCode(err); code != imap.ResponseCodeAlreadyExists {
					return fmt.Errorf("create folder: %w", err)
				}
			}
			return move()
		})
	}
	if err != nil {
		return fmt.Errorf("move %v from %q to %q: %w", uidSet(uids), c.selected, folder, err)
	}
	return nil
}

// folderExists reports whether LIST finds folder; on error it says yes, so
// the caller reports its original error.
func (c *Client) folderExists(ctx context.Context, folder string) bool {
	exists := true
	_ = c.do(ctx, func() error {
		boxes, err := c.ic.List("", folder, nil).Collect()
		if err == nil {
			exists = len(boxes) > 0
		}
		return err
	})
	return exists
}

// Delete flags the messages \Deleted and expunges exactly those (UID
// EXPUNGE; without UIDPLUS plain EXPUNGE, which also removes other messages
// flagged \Deleted).
func (c *Client) Delete(ctx context.Context, uids []uint32) error {
	if err := c.store(ctx, "delete", uids, imap.FlagDeleted); err != nil {
		return err
	}
	uids = sortedUnique(uids)
	if len(uids) == 0 {
		return nil
	}
	err := c.do(ctx, func() error {
		if c.ic.Caps().Has(imap.CapUIDPlus) || c.ic.Caps().Has(imap.CapIMAP4rev2) {
			return c.ic.UIDExpunge(uidSet(uids)).Close()
		}
		c.logger.Warn("server lacks UIDPLUS: plain EXPUNGE removes every message flagged \\Deleted")
		return c.ic.Expunge().Close()
	})
	if err != nil {
		return fmt.Errorf("expunge %v in %q: %w", uidSet(uids), c.selected, err)
	}
	return nil
}

// Append stores raw in folder and returns its UID (0 when the server does not
// report APPENDUID). It does not change the selected folder.
func (c *Client) Append(ctx context.Context, folder string, raw []byte) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var uid uint32
	err := c.run(ctx, c.cfg.CommandTimeout, func() error {
		cmd := c.ic.Append(folder, int64(len(raw)), nil)
		if _, err := cmd.Write(raw); err != nil {
			_ = cmd.Close()
			return fmt.Errorf("write literal: %w", err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("close literal: %w", err)
		}
		data, err := cmd.Wait()
		if err != nil {
			return err
		}
		uid = uint32(data.UID)
		return nil
	})
	if err != nil {
		if _, code := imapCode(err); code == imap.ResponseCodeTryCreate || code == imap.ResponseCodeNonExistent {
			err = fmt.Errorf("%w: %w", ErrNoMailbox, err)
		}
		return 0, fmt.Errorf("append to %q: %w", folder, err)
	}
	return uid, nil
}

// Close logs out (bounded by 5s or CommandTimeout, if shorter) and closes
// the connection. It is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ic == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(5*time.Second, c.cfg.CommandTimeout))
	defer cancel()
	err := c.run(ctx, c.cfg.CommandTimeout, func() error { return c.ic.Logout().Wait() })
	c.closeNow()
	if err != nil && !Temporary(err) {
		return fmt.Errorf("logout: %w", err)
	}
	// A logout on a dead connection is not worth reporting.
	return nil
}

func (c *Client) closeNow() {
	if c.ic != nil {
		_ = c.ic.Close()
		c.ic = nil
	}
	_ = c.raw.Close()
}

// noDeadlineConn hides deadlines from imapclient, which sets its own fixed
// read timeouts; the Client sets per-command deadlines on the raw conn.
type noDeadlineConn struct{ net.Conn }

func (noDeadlineConn) SetDeadline(time.Time) error      { return nil }
func (noDeadlineConn) SetReadDeadline(time.Time) error  { return nil }
func (noDeadlineConn) SetWriteDeadline(time.Time) error { return nil }

// uidSet turns ascending UIDs into ranges.
func uidSet(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, uid := range uids {
		if n := len(set); n > 0 && uint32(set[n-1].Stop)+1 == uid {
			set[n-1].Stop = imap.UID(uid)
			continue
		}
		set = append(set, imap.UIDRange{Start: imap.UID(uid), Stop: imap.UID(uid)})
	}
	return set
}

func sortedUnique(uids []uint32) []uint32 {
	uids = slices.Clone(uids)
	slices.Sort(uids)
	uids = slices.Compact(uids)
	if len(uids) > 0 && uids[0] == 0 {
		uids = uids[1:] // 0 is never a UID
	}
	return uids
}

var _ io.Closer = (*Client)(nil)
