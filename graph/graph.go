// Package graph reads a Microsoft 365 mailbox through Microsoft Graph v1.0
// (https://learn.microsoft.com/en-us/graph/api/resources/mail-api-overview)
// with the OAuth2 client credentials grant (RFC 6749, section 4.4), as the
// fetcher reads an IMAP mailbox: Client has the method set of
// mailbox.Client.
//
// Graph has no UIDs: a folder's messages are listed with a delta query
// (https://learn.microsoft.com/en-us/graph/delta-query-messages) and the
// store numbers the message IDs it has not seen before with increasing
// UIDs, under a UIDVALIDITY derived from the folder's ID. The delta link
// is stored with the numbers, in one transaction, so no message is missed
// or numbered twice. A message's size comes with the listing (the
// PidTagMessageSize property), so the size limit is checked before the
// download; the download is the MIME source (GET .../$value), read up to
// the limit and one byte.
//
// Throttling (429, 503, 504: https://learn.microsoft.com/en-us/graph/throttling)
// is waited out as Retry-After says, up to Options.MaxRetryWait; a longer
// wait ends the call with a temporary error, and the next scheduled fetch
// tries again. A token Graph refuses (expired early, revoked) is replaced
// once per call.
package graph

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/servicedesk/servicedesk/mailbox"
)

// Message is a message of a folder as the store numbered it. Size is in
// bytes as Graph announced it (0: unknown).
type Message struct {
	UID  uint32
	ID   string
	Size int64
}

// Store keeps, per folder (a key Client chooses), the UIDs given to message
// IDs and the delta link the listing continues from.
type Store interface {
	// DeltaLink returns the folder's saved link, "" before the first page.
	DeltaLink(ctx context.Context, folder string) (string, error)
	// SaveDelta numbers the messages not seen before with the next UIDs,
	// in order, and saves link, in one transaction.
	SaveDelta(ctx context.Context, folder string, msgs []Message, link string) error
	// MessagesAfter returns the messages with a UID above after,
	// ascending, at most limit (<= 0: all).
	MessagesAfter(ctx context.Context, folder string, after uint32, limit int) ([]Message, error)
	// MessagesByUID returns those of uids the folder has, ascending.
	MessagesByUID(ctx context.Context, folder string, uids []uint32) ([]Message, error)
}

// Config is one mailbox.
type Config struct {
	TenantID     string
	ClientID     string
	ClientSecret string
	// User is the mailbox's address or object ID.
	User string
	// AuthorityURL is the base of the token endpoint; APIURL the base of
	// Graph. Defaults: https://login.microsoftonline.com and
	// https://graph.microsoft.com/v1.0.
	AuthorityURL string
	APIURL       string
	// Name labels the mailbox for Options.Throttled (the project key).
	Name string
}

// Options tune a Dialer; nil or zero fields mean the defaults.
type Options struct {
	// MaxMessageSize is the most bytes read of a message: a larger one is
	// read to the limit and one byte, so the caller can tell. 0: no limit.
	MaxMessageSize int64
	// Downloads is how many messages are downloaded at once. Defaults to 4
	// (Outlook's limit of concurrent requests per mailbox and app).
	Downloads int
	// PageSize is the most messages a listing page holds. Defaults to 100.
	PageSize int
	// MaxPages bounds the pages one List reads. Defaults to 50.
	MaxPages int
	// RequestTimeout bounds one request, a download included. Defaults to
	// 2m.
	RequestTimeout time.Duration
	// Retries is how often one request is retried after throttling or a
	// server error. Defaults to 4.
	Retries int
	// MinBackoff is the first wait after throttling without Retry-After;
	// it doubles up to MaxRetryWait. Defaults to 1s.
	MinBackoff time.Duration
	// MaxRetryWait is the longest wait for a retry; a longer Retry-After
	// ends the call with the throttling error (temporary). Defaults to 30s.
	MaxRetryWait time.Duration
	// Throttled, when set, is told of every answer that asked a request
	// to wait (429 throttled; 503, 504 or another 5xx busy), with the
	// mailbox's Config.Name and the status, whether the wait is then
	// waited out or ends the call.
	Throttled func(name string, status int)
	// HTTPClient sends the requests. Defaults to one of its own.
	HTTPClient *http.Client
	// Sleep waits between retries. Defaults to a timer that ends with ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock of token expiry. Defaults to time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	o.Downloads = cmp.Or(o.Downloads, 4)
	o.PageSize = cmp.Or(o.PageSize, 100)
	o.MaxPages = cmp.Or(o.MaxPages, 50)
	o.RequestTimeout = cmp.Or(o.RequestTimeout, 2*time.Minute)
	o.Retries = cmp.Or(o.Retries, 4)
	o.MinBackoff = cmp.Or(o.MinBackoff, time.Second)
	o.MaxRetryWait = cmp.Or(o.MaxRetryWait, 30*time.Second)
	if o.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = time.Minute
		o.HTTPClient = &http.Client{Transport: t}
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Dialer opens clients; it holds the access tokens, shared by all clients
// of one app registration. Safe for concurrent use.
type Dialer struct {
	store Store
	opts  Options
	hc    *http.Client
	log   *slog.Logger

	mu     sync.Mutex
	tokens map[string]*tokens
}

// NewDialer returns a Dialer over st.
func NewDialer(st Store, opts *Options) *Dialer {
	var o Options
	if opts != nil {
		o = *opts
	}
	o = o.withDefaults()
	return &Dialer{store: st, opts: o, hc: o.HTTPClient, log: o.Logger.With("component", "graph"), tokens: map[string]*tokens{}}
}

// Dial returns a client of the mailbox, with an access token: an error
// here is the token endpoint's (a TokenError, or a transport error).
func (d *Dialer) Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg.AuthorityURL = strings.TrimRight(cmp.Or(cfg.AuthorityURL, "https://login.microsoftonline.com"), "/")
	cfg.APIURL = strings.TrimRight(cmp.Or(cfg.APIURL, "https://graph.microsoft.com/v1.0"), "/")
	c := &Client{d: d, cfg: cfg, tok: d.tokensFor(cfg)}
	if _, err := c.tok.get(ctx); err != nil {
		return nil, fmt.Errorf("get an access token for %s: %w", cfg.User, err)
	}
	return c, nil
}

func (d *Dialer) tokensFor(cfg Config) *tokens {
	key := cfg.AuthorityURL + "\x00" + cfg.TenantID + "\x00" + cfg.ClientID + "\x00" + cfg.ClientSecret
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.tokens[key]; ok {
		return t
	}
	t := &tokens{hc: d.hc, now: d.opts.Now, cfg: clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		// https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
		TokenURL:  cfg.AuthorityURL + "/" + url.PathEscape(cfg.TenantID) + "/oauth2/v2.0/token",
		Scopes:    []string{scopeOf(cfg.APIURL)},
		AuthStyle: oauth2.AuthStyleInParams,
	}}
	d.tokens[key] = t
	return t
}

// scopeOf is the .default scope of the API's resource: the application
// permissions granted to the app (Mail.ReadWrite).
func scopeOf(apiURL string) string {
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" {
		return "https://graph.microsoft.com/.default"
	}
	return u.Scheme + "://" + u.Host + "/.default"
}

// Client is one mailbox session. Its methods are not safe for concurrent
// use (nor are mailbox.Client's).
type Client struct {
	d   *Dialer
	cfg Config
	tok *tokens

	folderID string // the selected folder
	key      string // the store's name of it
	moveTo   map[string]string
}

// Select resolves folder (a well-known name or a path of display names)
// and makes it the folder the other methods act on. UIDVALIDITY is derived
// from the folder's ID: a folder deleted and made again starts afresh.
func (c *Client) Select(ctx context.Context, folder string) (mailbox.Status, error) {
	f, err := c.resolveFolder(ctx, folder, false)
	if err != nil {
		return mailbox.Status{}, err
	}
	c.folderID = f.ID
	c.key = strings.ToLower(c.cfg.User) + "/" + f.ID
	h := fnv.New32a()
	_, _ = h.Write([]byte(f.ID))
	return mailbox.Status{UIDValidity: max(h.Sum32(), 1), Messages: uint32(max(f.TotalItemCount, 0))}, nil
}

// listing is a page of a message listing or delta
// (https://learn.microsoft.com/en-us/graph/api/message-delta).
type listing struct {
	Value []struct {
		ID                            string    `json:"id"`
		InternetMessageID             string    `json:"internetMessageId"`
		ReceivedDateTime              time.Time `json:"receivedDateTime"`
		Removed                       *struct{} `json:"@removed"`
		SingleValueExtendedProperties []struct {
			ID    string `json:"id"`
			Value string `json:"value"`
		} `json:"singleValueExtendedProperties"`
	} `json:"value"`
	NextLink  string `json:"@odata.nextLink"`
	DeltaLink string `json:"@odata.deltaLink"`
}

// sizeProperty is PidTagMessageSize, a MAPI integer property: the
// message's size in bytes
// (https://learn.microsoft.com/en-us/office/client-developer/outlook/mapi/pidtagmessagesize-canonical-property).
const sizeProperty = "Integer 0x0E08"

// deltaURL is the first request of a sync of the folder: only the IDs, the
// Message-ID, the arrival time and the size.
func (c *Client) deltaURL() string {
	q := "$select=id,internetMessageId,receivedDateTime" +
		"&$expand=" + escape("singleValueExtendedProperties($filter=id eq '"+sizeProperty+"')")
	return c.userURL() + "/mailFolders/" + url.PathEscape(c.folderID) + "/messages/delta?" + q
}

// List returns the messages with a UID above afterUID, ascending, at most
// limit, with their sizes. It first reads the folder's delta pages until
// enough new messages are numbered, the round is complete, or
// Options.MaxPages pages were read.
func (c *Client) List(ctx context.Context, afterUID uint32, limit int) ([]mailbox.Entry, error) {
	if c.folderID == "" {
		return nil, errors.New("list: no folder selected")
	}
	if err := c.sync(ctx, afterUID, limit); err != nil {
		return nil, err
	}
	msgs, err := c.d.store.MessagesAfter(ctx, c.key, afterUID, limit)
	if err != nil {
		return nil, fmt.Errorf("list new mail: %w", err)
	}
	out := make([]mailbox.Entry, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, mailbox.Entry{UID: m.UID, Size: m.Size})
	}
	return out, nil
}

// sync reads delta pages of the selected folder into the store.
func (c *Client) sync(ctx context.Context, afterUID uint32, limit int) error {
	link, err := c.d.store.DeltaLink(ctx, c.key)
	if err != nil {
		return fmt.Errorf("list new mail: %w", err)
	}
	if link == "" || !c.underAPI(link) {
		link = c.deltaURL()
	}
	for range c.d.opts.MaxPages {
		var page listing
		err := c.doJSON(ctx, request{op: "list new mail", method: http.MethodGet, url: link,
			prefer: []string{"odata.maxpagesize=" + strconv.Itoa(c.d.opts.PageSize)}}, &page)
		var gerr *Error
		if errors.As(err, &gerr) && gerr.Status == http.StatusGone && link != c.deltaURL() {
			// The sync state expired: a new round from the start. Messages
			// already numbered keep their UIDs.
			c.d.log.Warn("graph delta state expired; listing the folder again", "user", c.cfg.User)
			link = c.deltaURL()
			continue
		}
		if err != nil {
			return err
		}
		next := cmp.Or(page.NextLink, page.DeltaLink)
		if next == "" {
			return errors.New("list new mail: Microsoft Graph answered a page without @odata.nextLink or @odata.deltaLink")
		}
		msgs := make([]Message, 0, len(page.Value))
		for _, m := range page.Value {
			if m.Removed != nil || m.ID == "" {
				continue
			}
			var size int64
			for _, p := range m.SingleValueExtendedProperties {
				if isSizeProperty(p.ID) {
					size, _ = strconv.ParseInt(p.Value, 10, 64)
				}
			}
			msgs = append(msgs, Message{ID: m.ID, Size: max(size, 0)})
		}
		if err := c.d.store.SaveDelta(ctx, c.key, msgs, next); err != nil {
			return fmt.Errorf("list new mail: %w", err)
		}
		if page.DeltaLink != "" {
			return nil
		}
		link = next
		if limit > 0 {
			have, err := c.d.store.MessagesAfter(ctx, c.key, afterUID, limit)
			if err != nil {
				return fmt.Errorf("list new mail: %w", err)
			}
			if len(have) >= limit {
				return nil
			}
		}
	}
	return nil
}

// isSizeProperty matches the ID Graph gives PidTagMessageSize back with
// ("Integer 0xe08" as well as "Integer 0x0E08").
func isSizeProperty(id string) bool {
	kind, num, ok := strings.Cut(strings.TrimSpace(id), " ")
	if !ok || !strings.EqualFold(kind, "Integer") {
		return false
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(num), "0x"), 16, 32)
	return err == nil && n == 0x0E08
}

// Fetch downloads the MIME source of the messages with the given UIDs and
// calls fn for each in ascending UID order; a message no longer in the
// mailbox is skipped. At most Options.MaxMessageSize and one byte is read
// of each. An error from fn stops Fetch and is returned as is.
//
// Up to Options.Downloads messages are downloaded at once (Outlook allows
// four concurrent requests per mailbox and app), so no more messages than
// that, and the one fn has, are held in memory.
func (c *Client) Fetch(ctx context.Context, uids []uint32, fn func(uid uint32, raw []byte) error) error {
	msgs, err := c.messages(ctx, uids)
	if err != nil {
		return err
	}
	type result struct {
		raw []byte
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	results := make([]chan result, len(msgs))
	for i := range results {
		results[i] = make(chan result, 1)
	}
	slots := make(chan struct{}, c.d.opts.Downloads) // taken from start to handed over
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, m := range msgs {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				raw, err := c.download(ctx, m)
				results[i] <- result{raw, err}
			}()
		}
	}()
	for i, m := range msgs {
		var r result
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-slots
		if errors.Is(r.err, errNotFound) {
			continue
		}
		if r.err != nil {
			return r.err
		}
		if err := fn(m.UID, r.raw); err != nil {
			return err
		}
	}
	return nil
}

// download reads a message's MIME source
// (https://learn.microsoft.com/en-us/graph/api/message-get, "Get MIME
// content").
func (c *Client) download(ctx context.Context, m Message) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.d.opts.RequestTimeout)
	defer cancel()
	op := fmt.Sprintf("download UID %d", m.UID)
	resp, err := c.do(ctx, request{op: op, method: http.MethodGet, url: c.messageURL(m.ID) + "/$value"})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := io.Reader(resp.Body)
	if limit := c.d.opts.MaxMessageSize; limit > 0 {
		r = io.LimitReader(r, limit+1)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return raw, nil
}

// MarkSeen marks the messages read
// (https://learn.microsoft.com/en-us/graph/api/message-update).
func (c *Client) MarkSeen(ctx context.Context, uids []uint32) error {
	return c.each(ctx, "mark read", uids, func(m Message) request {
		return request{method: http.MethodPatch, url: c.messageURL(m.ID), body: map[string]any{"isRead": true}}
	})
}

// Move moves the messages to folder (a path of display names from the top
// of the mailbox, or a well-known name), creating it when missing
// (https://learn.microsoft.com/en-us/graph/api/message-move).
func (c *Client) Move(ctx context.Context, uids []uint32, folder string) error {
	if len(uids) == 0 {
		return nil
	}
	dest, ok := c.moveTo[folder]
	if !ok {
		f, err := c.resolveFolder(ctx, folder, true)
		if err != nil {
			return err
		}
		dest = f.ID
		if c.moveTo == nil {
			c.moveTo = map[string]string{}
		}
		c.moveTo[folder] = dest
	}
	return c.each(ctx, "move to "+folder, uids, func(m Message) request {
		return request{method: http.MethodPost, url: c.messageURL(m.ID) + "/move", body: map[string]string{"destinationId": dest}}
	})
}

// Delete deletes the messages: Outlook moves them to Deleted Items
// (https://learn.microsoft.com/en-us/graph/api/message-delete).
func (c *Client) Delete(ctx context.Context, uids []uint32) error {
	return c.each(ctx, "delete", uids, func(m Message) request {
		return request{method: http.MethodDelete, url: c.messageURL(m.ID)}
	})
}

// each sends one request per message; a message no longer there is done.
func (c *Client) each(ctx context.Context, op string, uids []uint32, req func(Message) request) error {
	msgs, err := c.messages(ctx, uids)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		r := req(m)
		r.op = fmt.Sprintf("%s UID %d", op, m.UID)
		err := c.doJSON(ctx, r, nil)
		if err != nil && !errors.Is(err, errNotFound) {
			return err
		}
	}
	return nil
}

// messages returns the store's messages of the selected folder for uids.
func (c *Client) messages(ctx context.Context, uids []uint32) ([]Message, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	if c.folderID == "" {
		return nil, errors.New("no folder selected")
	}
	uids = slices.Clone(uids)
	slices.Sort(uids)
	msgs, err := c.d.store.MessagesByUID(ctx, c.key, slices.Compact(uids))
	if err != nil {
		return nil, fmt.Errorf("look up messages: %w", err)
	}
	return msgs, nil
}

// Close ends the session. The HTTP connections and the token stay with
// the Dialer.
func (c *Client) Close() error { return nil }

func (c *Client) userURL() string {
	return c.cfg.APIURL + "/users/" + url.PathEscape(c.cfg.User)
}

func (c *Client) messageURL(id string) string {
	return c.userURL() + "/messages/" + url.PathEscape(id)
}

// escape is a query value as Graph's examples write it: spaces as %20.
func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
