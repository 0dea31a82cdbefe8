package api

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/servicedesk/servicedesk/ticket"
)

func (s *server) healthz(w http.ResponseWriter, r *http.Request) error {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz runs the database ping and every readiness check at once under one
// deadline; a check that has not answered by then has failed. Which check
// failed is answered; why is logged, not answered.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) error {
	type check struct {
		name string
		fn   func(context.Context) error
	}
	checks := []check{{"database", s.b.Ping}}
	for i, fn := range s.opts.Ready {
		name := fmt.Sprintf("check%d", i+1)
		if i < len(s.opts.ReadyNames) && s.opts.ReadyNames[i] != "" {
			name = s.opts.ReadyNames[i]
		}
		checks = append(checks, check{name, fn})
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.ReadyTimeout)
	defer cancel()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(checks)) // buffered: a late check never blocks
	for i, c := range checks {
		go func() {
			defer func() {
				if p := recover(); p != nil {
					results <- result{i, fmt.Errorf("panic: %v", p)}
				}
			}()
			results <- result{i, c.fn(ctx)}
		}()
	}
	errs := make([]error, len(checks))
	done := make([]bool, len(checks))
wait:
	for range checks {
		select {
		case res := <-results:
			errs[res.i], done[res.i] = res.err, true
		case <-ctx.Done():
			break wait
		}
	}
	status := map[string]string{}
	var failed []string
	for i, c := range checks {
		switch {
		case !done[i]:
			status[c.name] = "timeout"
		case errs[i] != nil:
			status[c.name] = "fail"
		default:
			status[c.name] = "ok"
			continue
		}
		failed = append(failed, c.name)
		s.log.WarnContext(r.Context(), "readiness check failed", "check", c.name,
			"request_id", infoFrom(r.Context()).id, "err", errs[i], "timeout", !done[i])
	}
	if len(failed) > 0 {
		s.writeJSON(w, r, http.StatusServiceUnavailable, map[string]any{
			"status": "unavailable", "failed": failed, "checks": status})
		return nil
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"status": "ok", "checks": status})
	return nil
}

// pageOf reads page (1 to MaxPage) and per_page (1 to MaxPerPage, default
// DefaultPerPage) from the query. The bounds keep (page-1)*per_page, the
// offset every list computes, far from overflowing.
func pageOf(r *http.Request) (Page, error) {
	p := Page{Page: 1, PerPage: DefaultPerPage}
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPage {
			return p, errBadRequest("page %q: want a whole number from 1 to %d", v, MaxPage)
		}
		p.Page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPerPage {
			return p, errBadRequest("per_page %q: want a whole number from 1 to %d", v, MaxPerPage)
		}
		p.PerPage = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return p, errBadRequest("after %q: want the next_after of the previous page", v)
		}
		// A page found by its cursor has no number: its answer's
		// next_page is null, next_after continues.
		p.Page, p.After = 0, n
	}
	return p, nil
}

func (s *server) projects(w http.ResponseWriter, r *http.Request) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	all, err := s.b.Projects(r.Context())
	if err != nil {
		return fmt.Errorf("list projects: %w", err)
	}
	// Only the public fields, whatever else a Project may grow.
	type project struct {
		Key     string `json:"key"`
		Name    string `json:"name"`
		Address string `json:"address"`
	}
	start := min((p.Page-1)*p.PerPage, len(all))
	end := min(start+p.PerPage, len(all))
	out := make([]project, 0, end-start)
	for _, pr := range all[start:end] {
		if isGuest(r) {
			pr.Address = RedactText(pr.Address)
		}
		out = append(out, project{pr.Key, pr.Name, pr.Address})
	}
	s.writeJSON(w, r, http.StatusOK, ListJSON("projects", out, p.Page, end < len(all)))
	return nil
}

// project checks that the {key} of the path names a project.
func (s *server) project(r *http.Request) (string, error) {
	key := r.PathValue("key")
	all, err := s.b.Projects(r.Context())
	if err != nil {
		return "", fmt.Errorf("look up project %q: %w", key, err)
	}
	for _, p := range all {
		if p.Key == key {
			return key, nil
		}
	}
	return "", errNotFound(fmt.Sprintf("no project %q", key))
}

// pathID reads a positive integer path value.
func pathID(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, errBadRequest("%s %q: want a positive whole number", name, v)
	}
	return n, nil
}

func (s *server) tickets(w http.ResponseWriter, r *http.Request) error {
	key, err := s.project(r)
	if err != nil {
		return err
	}
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	q := TicketQuery{Project: key, Page: p}
	switch st := ticket.Status(r.URL.Query().Get("status")); st {
	case "", ticket.StatusOpen, ticket.StatusClosed:
		q.Status = st
	default:
		return errBadRequest("status %q: want open or closed", st)
	}
	ts, more, err := s.b.Tickets(r.Context(), q)
	if err != nil {
		return fmt.Errorf("list tickets of %q: %w", key, err)
	}
	if isGuest(r) {
		for i := range ts {
			ts[i] = guestTicket(ts[i])
		}
	}
	s.writeJSON(w, r, http.StatusOK, ListJSON("tickets", ts, p.Page, more))
	return nil
}

func (s *server) ticket(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	number, err := pathID(r, "number")
	if err != nil {
		return err
	}
	t, err := s.b.Ticket(r.Context(), key, number)
	if err != nil {
		return fmt.Errorf("ticket %s: %w", ticket.FormatRef(key, number), err)
	}
	if isGuest(r) {
		t = guestTicket(t)
	}
	s.writeJSON(w, r, http.StatusOK, TicketJSON(t))
	return nil
}

// attachment serves the file. Agents get every attachment. A guest gets
// 404 for an attachment of an internal message, exactly as for one that
// does not exist, and 403 for one whose name, type or content is not on
// the guests' allow list (guestMayDownloadType before the content is read,
// guestMayDownload after); the rest is served as stored, under an
// obfuscated file name.
func (s *server) attachment(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	number, err := pathID(r, "number")
	if err != nil {
		return err
	}
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ref := ticket.FormatRef(key, number)
	guest := isGuest(r)
	if guest {
		// Look at the message first: nothing of an internal note, and no
		// content of a refused type, is read for a guest.
		t, err := s.b.Ticket(r.Context(), key, number)
		if err != nil {
			return fmt.Errorf("attachment %d of %s: %w", id, ref, err)
		}
		meta, ok := guestAttachmentOf(t, id)
		if !ok {
			return fmt.Errorf("attachment %d of %s: %w", id, ref, ErrNotFound)
		}
		if !guestMayDownloadType(meta.Filename, meta.ContentType) {
			return errAgentsOnlyType
		}
	}
	a, data, err := s.b.Attachment(r.Context(), key, number, id)
	if err != nil {
		return fmt.Errorf("attachment %d of %s: %w", id, ref, err)
	}
	name, ct := a.Filename, contentType(a.ContentType)
	if guest {
		if !guestMayDownload(a.Filename, a.ContentType, data) {
			return errAgentsOnlyType
		}
		name = RedactText(name)
		ct, _, _ = strings.Cut(ct, ";") // parameters may carry a name
	}
	s.extendDeadlines(w, r, false, true)
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", ContentDisposition(name))
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("X-Content-Type-Options", "nosniff")
	// An HTML or SVG attachment opened in the browser must not run script
	// with the API's origin.
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
	return nil
}

// contentType returns ct when it is a well-formed media type, else
// application/octet-stream.
func contentType(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "application/octet-stream"
	}
	return mime.FormatMediaType(mt, params)
}

var unsafeFilename = regexp.MustCompile(`[^A-Za-z0-9 !#$&*+,.\-=@^_~()\[\]{}';]`)

// ContentDisposition returns an "attachment" Content-Disposition for
// filename per RFC 6266: an ASCII filename="..." fallback for old clients
// and, when the name is not plain ASCII, filename*=UTF-8”... (RFC 8187).
func ContentDisposition(filename string) string {
	filename = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, filename)
	if !utf8.ValidString(filename) {
		filename = strings.ToValidUTF8(filename, "_")
	}
	if strings.TrimSpace(filename) == "" {
		filename = "attachment"
	}
	ascii := unsafeFilename.ReplaceAllString(filename, "_")
	cd := `attachment; filename="` + ascii + `"`
	if ascii != filename {
		cd += "; filename*=UTF-8''" + encodeExtValue(filename)
	}
	return cd
}

// encodeExtValue percent-encodes every byte of s that is not an attr-char
// of RFC 8187.
func encodeExtValue(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func (s *server) inbound(w http.ResponseWriter, r *http.Request) error {
	key, err := s.project(r)
	if err != nil {
		return err
	}
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	q := InboundQuery{Project: key, Page: p}
	switch o := ticket.Outcome(r.URL.Query().Get("outcome")); o {
	case "", ticket.OutcomeTicketCreated, ticket.OutcomeReplyAdded, ticket.OutcomeAutoReply,
		ticket.OutcomeBounce, ticket.OutcomeDuplicate, ticket.OutcomeRejected, ticket.OutcomeFailed, ticket.OutcomeUnroutable,
		ticket.OutcomeUnsubscribed:
		q.Outcome = o
	default:
		return errBadRequest("outcome %q: want ticket_created, reply_added, auto_reply, bounce, duplicate, unsubscribed, rejected, failed or unroutable", o)
	}
	rows, more, err := s.b.Inbound(r.Context(), q)
	if err != nil {
		return fmt.Errorf("list inbound of %q: %w", key, err)
	}
	s.writeJSON(w, r, http.StatusOK, ListJSON("inbound", rows, p.Page, more))
	return nil
}

func (s *server) deadLetters(w http.ResponseWriter, r *http.Request) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	rows, more, err := s.b.DeadLetters(r.Context(), p)
	if err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	s.writeJSON(w, r, http.StatusOK, ListJSON("deadletters", rows, p.Page, more))
	return nil
}

// retryDeadLetter hands the dead letter back to the queue: 202.
func (s *server) retryDeadLetter(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.b.RetryDeadLetter(r.Context(), id); err != nil {
		return fmt.Errorf("retry dead letter %d: %w", id, err)
	}
	s.writeJSON(w, r, http.StatusAccepted, map[string]any{"id": id, "status": "retrying"})
	return nil
}

// discardDeadLetter drops the dead letter for good: 200.
func (s *server) discardDeadLetter(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.b.DiscardDeadLetter(r.Context(), id); err != nil {
		return fmt.Errorf("discard dead letter %d: %w", id, err)
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"id": id, "status": "discarded"})
	return nil
}
