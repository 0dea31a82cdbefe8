package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/servicedesk/servicedesk/mailbox"
)

// Error is a failed Graph request: the HTTP status and Graph's error code
// and message (https://learn.microsoft.com/en-us/graph/errors), never a
// token or a secret. It unwraps to mailbox.ErrAuth for 401 and 403 (a
// configuration problem: consent, permission, application access policy),
// to mailbox.ErrUnavailable for throttling and server errors (temporary),
// and to errNotFound for 404.
type Error struct {
	Op      string // what was asked, e.g. "list new mail"
	Status  int
	Code    string // e.g. ErrorAccessDenied, TooManyRequests
	Message string
	// RetryAfter is the wait the server asked for, if any.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: Microsoft Graph answered %d", e.Op, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return msg
}

func (e *Error) Unwrap() error {
	switch {
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return mailbox.ErrAuth
	case e.Status == http.StatusNotFound:
		return errNotFound
	case e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout || e.Status >= 500:
		return mailbox.ErrUnavailable
	}
	return nil
}

// errNotFound is a 404: a message or folder that is not (or no longer)
// there.
var errNotFound = errors.New("not found")

// TokenError is a failed token request: the token endpoint's error code and
// description (never the secret). It unwraps to mailbox.ErrAuth when the
// endpoint refused the client (a wrong tenant, client ID or secret, an
// expired secret) and to mailbox.ErrUnavailable when it failed.
type TokenError struct {
	Status      int
	Code        string // e.g. invalid_client
	Description string
}

func (e *TokenError) Error() string {
	msg := fmt.Sprintf("token endpoint answered %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

func (e *TokenError) Unwrap() error {
	if e.Status == http.StatusTooManyRequests || e.Status >= 500 {
		return mailbox.ErrUnavailable
	}
	return mailbox.ErrAuth
}

// tokens is the cached access token of one app registration, shared by
// every client of a Dialer: one refresh serves all fetches, ahead of
// expiry, and a token Graph refused is dropped (invalidate).
type tokens struct {
	cfg clientcredentials.Config
	hc  *http.Client
	now func() time.Time

	mu  sync.Mutex
	tok *oauth2.Token
}

// tokenMargin is how long before its expiry a token is replaced.
const tokenMargin = 2 * time.Minute

// get returns a valid access token, fetching one when there is none or it
// expires within tokenMargin.
func (t *tokens) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && (t.tok.Expiry.IsZero() || t.now().Add(tokenMargin).Before(t.tok.Expiry)) {
		return t.tok.AccessToken, nil
	}
	tok, err := t.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, t.hc))
	if err != nil {
		return "", tokenError(err)
	}
	t.tok = tok
	return tok.AccessToken, nil
}

// invalidate drops the cached token if it is still access: Graph refused
// it (expired early, revoked).
func (t *tokens) invalidate(access string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && t.tok.AccessToken == access {
		t.tok = nil
	}
}

// tokenError turns what oauth2 returns into a TokenError, or keeps a
// transport error (temporary) with the step named.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		te := &TokenError{Code: re.ErrorCode, Description: firstLine(re.ErrorDescription, 300)}
		if re.Response != nil {
			te.Status = re.Response.StatusCode
		}
		return te
	}
	return fmt.Errorf("token request: %w", err)
}

// firstLine keeps the first line of s, printable, at most n bytes: Entra
// ID's descriptions end in trace and correlation IDs on further lines.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\r\n")
	s, _, _ = strings.Cut(s, "\n")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// request is one Graph call.
type request struct {
	op     string // for errors: what was asked
	method string
	url    string // absolute, under the API base
	body   any    // JSON-encoded when not nil
	prefer []string
}

// maxJSON bounds a JSON answer of Graph: a page of 100 messages' IDs is a
// few tens of kilobytes.
const maxJSON = 8 << 20

// do sends req and returns the response of a 2xx answer; the caller
// closes its body. It refreshes the token once when Graph says it is
// invalid, and waits out throttling (429, 503, 504) and other server
// errors as Retry-After says, or with a doubling backoff, up to
// Options.Retries times; a wait longer than Options.MaxRetryWait ends the
// call at once with the throttling error (temporary), so a fetch never
// sleeps past its lease.
func (c *Client) do(ctx context.Context, req request) (*http.Response, error) {
	if !c.underAPI(req.url) {
		return nil, fmt.Errorf("%s: link %q is not under the configured api_url", req.op, c.redactLink(req.url))
	}
	var payload []byte
	if req.body != nil {
		var err error
		if payload, err = json.Marshal(req.body); err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", req.op, err)
		}
	}
	refreshed := false
	backoff := c.d.opts.MinBackoff
	for attempt := 0; ; attempt++ {
		token, err := c.tok.get(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", req.op, err)
		}
		hr, err := http.NewRequestWithContext(ctx, req.method, req.url, bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", req.op, err)
		}
		hr.Header.Set("Authorization", "Bearer "+token)
		hr.Header.Set("Accept", "application/json")
		if payload != nil {
			hr.Header.Set("Content-Type", "application/json")
		}
		// Immutable IDs stay the same when a message moves between
		// folders of the mailbox (https://learn.microsoft.com/en-us/graph/outlook-immutable-id).
		hr.Header.Add("Prefer", `IdType="ImmutableId"`)
		for _, p := range req.prefer {
			hr.Header.Add("Prefer", p)
		}
		resp, err := c.d.hc.Do(hr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", req.op, err)
		}
		if resp.StatusCode/100 == 2 {
			return resp, nil
		}
		gerr := readError(req.op, resp)
		switch {
		case resp.StatusCode == http.StatusUnauthorized && !refreshed:
			// The token expired early or was revoked: a new one, once.
			c.d.log.Info("graph refused the access token; fetching a new one", "code", gerr.Code)
			c.tok.invalidate(token)
			refreshed = true
			continue
		case errors.Is(gerr, mailbox.ErrUnavailable):
			if c.d.opts.Throttled != nil {
				c.d.opts.Throttled(c.cfg.Name, gerr.Status)
			}
			wait := gerr.RetryAfter
			if wait == 0 {
				wait = backoff
				backoff = min(2*backoff, c.d.opts.MaxRetryWait)
			}
			if attempt >= c.d.opts.Retries || wait > c.d.opts.MaxRetryWait {
				return nil, gerr
			}
			c.d.log.Warn("graph throttled or busy; waiting", "op", req.op, "status", gerr.Status, "wait", wait)
			if err := c.d.opts.Sleep(ctx, wait); err != nil {
				return nil, errors.Join(gerr, err)
			}
			continue
		}
		return nil, gerr
	}
}

// doJSON sends req and decodes a 2xx answer into out (nil: discard).
func (c *Client) doJSON(ctx context.Context, req request, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.d.opts.RequestTimeout)
	defer cancel()
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJSON))
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSON+1))
	if err != nil {
		return fmt.Errorf("%s: read answer: %w", req.op, err)
	}
	if len(body) > maxJSON {
		return fmt.Errorf("%s: answer larger than %d bytes", req.op, maxJSON)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", req.op, err)
	}
	return nil
}

// readError reads Graph's error body
// ({"error": {"code": "...", "message": "..."}}) and Retry-After, and
// closes the body.
func readError(op string, resp *http.Response) *Error {
	defer resp.Body.Close()
	e := &Error{Op: op, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &body) == nil {
		e.Code = firstLine(body.Error.Code, 100)
		e.Message = firstLine(body.Error.Message, 300)
	}
	return e
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110, section 10.2.3). Nothing usable is 0.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour).Round(time.Second)
	}
	return 0
}

// underAPI reports whether link is the API base or below it: links Graph
// hands out (@odata.nextLink, @odata.deltaLink) get the access token, so
// they must point at Graph and nowhere else.
func (c *Client) underAPI(link string) bool {
	return link == c.cfg.APIURL || strings.HasPrefix(link, c.cfg.APIURL+"/")
}

// redactLink shows where a link points without its query (state tokens).
func (c *Client) redactLink(link string) string {
	link, _, _ = strings.Cut(link, "?")
	return firstLine(link, 200)
}
