package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// What a customer sees, through the signed links in our mail (no token):
//   - GET /tickets/{key}/{number}?r=&e=&s= : a read-only HTML page of the
//     ticket: its subject, status and public messages (never an internal
//     one, nor a bounce or auto-reply), each message's attachments linked
//     with the same signature. Addresses are obfuscated as for a guest,
//     except the viewer's own. Plain server-rendered HTML, no script.
//   - GET /tickets/{key}/{number}/attachments/{id}?r=&e=&s= : a file of a
//     message the page shows. The desk's own files and the viewer's own
//     are served as they are; another customer's only under the guests'
//     rules (guestMayDownload).
//   - GET /tickets/{key}/{number}/unsubscribe?r=&s= : a page with one
//     button; POST to the same URL unsubscribes at once (RFC 8058
//     one-click: List-Unsubscribe=One-Click, no page needed).
//
// A link that does not verify is answered 403 with a page that says so and
// shows nothing of the ticket; an expired one 403 saying it expired.

// Unsubscriber records that an address wants no more mail on a ticket.
type Unsubscriber interface {
	// Unsubscribe is idempotent; ErrNotFound for an unknown ticket.
	Unsubscribe(ctx context.Context, project string, number int64, email string) error
}

// Customer serves the customer pages; see Options.Customer.
type Customer struct {
	// Links verifies the links. Required.
	Links *ticket.CustomerLinks
	// Unsubscribe records unsubscribes. Required.
	Unsubscribe Unsubscriber
}

// maxUnsubscribeBody bounds the body of an unsubscribe POST (RFC 8058's is
// "List-Unsubscribe=One-Click"; a form's is about as long).
const maxUnsubscribeBody = 4 << 10

func (s *server) customerRoutes(c *Customer) {
	s.mux.HandleFunc("GET /tickets/{key}/{number}", s.customerPage(c, s.customerTicket))
	s.mux.HandleFunc("GET /tickets/{key}/{number}/attachments/{id}", s.customerPage(c, s.customerAttachment))
	s.mux.HandleFunc("GET /tickets/{key}/{number}/unsubscribe", s.customerPage(c, s.customerUnsubscribeForm))
	s.mux.HandleFunc("POST /tickets/{key}/{number}/unsubscribe", s.customerPage(c, s.customerUnsubscribe))
}

// pageError is a customer page's error: its status and what the page says.
type pageError struct {
	status       int
	title, about string
}

func (e *pageError) Error() string { return e.title }

var (
	errLinkForged = &pageError{http.StatusForbidden, "This link is not valid",
		"The link is incomplete or was changed. Open it again from the email we sent you, or reply to that email."}
	errLinkExpired = &pageError{http.StatusForbidden, "This link has expired",
		"Links in our emails are valid for a limited time. Each new email about your request carries a fresh link; " +
			"you can also reply to any of them."}
	errPageNotFound = &pageError{http.StatusNotFound, "Not found", "There is nothing here."}
)

// customerRequest is a verified request of a customer page.
type customerRequest struct {
	project string
	number  int64
	viewer  string // the address the link was signed for, lower-cased
}

// customerPage verifies the path and answers the handler's error as a page.
func (s *server) customerPage(c *Customer, h func(w http.ResponseWriter, r *http.Request, c *Customer, cr customerRequest) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header())
		cr := customerRequest{project: r.PathValue("key")}
		n, err := strconv.ParseInt(r.PathValue("number"), 10, 64)
		if err == nil && n > 0 {
			cr.number = n
			err = h(w, r, c, cr)
		} else {
			err = errPageNotFound
		}
		if err != nil {
			s.writePageError(w, r, err)
		}
	}
}

// setPageHeaders: no script, no framing, no cache, no Referer that would
// carry the signed link to another site, no indexing.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Robots-Tag", "noindex, nofollow")
	h.Set("X-Frame-Options", "DENY")
}

func (s *server) writePageError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *pageError
	switch {
	case errors.As(err, &pe):
	case errors.Is(err, ErrNotFound):
		pe = errPageNotFound
	default:
		id := infoFrom(r.Context()).id
		s.log.ErrorContext(r.Context(), "customer page failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
		pe = &pageError{http.StatusInternalServerError, "Something went wrong",
			"Please try again later. If it keeps failing, reply to our email and quote request id " + id + "."}
	}
	s.writePage(w, r, pe.status, "message", messagePage{Title: pe.title, About: pe.about})
}

func (s *server) writePage(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := customerTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.ErrorContext(r.Context(), "render customer page", "request_id", infoFrom(r.Context()).id, "err", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("<!DOCTYPE html><title>Error</title><p>Something went wrong.</p>\n")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// verifyView checks the view signature of the request's query.
func verifyView(c *Customer, r *http.Request, cr *customerRequest) error {
	viewer, err := c.Links.VerifyView(cr.project, cr.number, r.URL.Query())
	switch {
	case errors.Is(err, ticket.ErrLinkExpired):
		return errLinkExpired
	case err != nil:
		return errLinkForged
	}
	cr.viewer = viewer
	return nil
}

// shownOnPage says whether a message is on a customer's page: public, and
// written by a person or the desk (no bounce, no auto-reply).
func shownOnPage(m ticket.Message) bool {
	return !m.Internal && m.Kind != ticket.KindBounce && m.Kind != ticket.KindAutoReply
}

type messagePage struct{ Title, About string }

type ticketPage struct {
	Project, Ref, Subject, Status string
	Open                          bool
	Messages                      []pageMessage
	Unsubscribed                  bool
	UnsubscribeURL                string
	Viewer                        string
}

type pageMessage struct {
	Who, When, Text string
	Mine, Desk      bool
	Attachments     []pageAttachment
}

type pageAttachment struct{ Name, Size, URL string }

func (s *server) customerTicket(w http.ResponseWriter, r *http.Request, c *Customer, cr customerRequest) error {
	if err := verifyView(c, r, &cr); err != nil {
		return err
	}
	t, err := s.b.Ticket(r.Context(), cr.project, cr.number)
	if err != nil {
		return fmt.Errorf("ticket %s: %w", ticket.FormatRef(cr.project, cr.number), err)
	}
	name := s.projectName(r.Context(), cr.project)
	q := url.Values{"r": {r.URL.Query().Get("r")}, "e": {r.URL.Query().Get("e")}, "s": {r.URL.Query().Get("s")}}.Encode()
	base := ticket.CustomerTicketPath(cr.project, cr.number)
	page := ticketPage{
		Project: name, Ref: ticket.FormatRef(cr.project, cr.number), Subject: redactExcept(t.Subject, cr.viewer),
		Status: string(t.Status), Open: t.Status == ticket.StatusOpen, Viewer: cr.viewer,
		UnsubscribeURL: c.Links.UnsubscribeURL(cr.project, cr.number, cr.viewer),
	}
	for _, u := range t.Unsubscribed {
		page.Unsubscribed = page.Unsubscribed || strings.EqualFold(u, cr.viewer)
	}
	if page.UnsubscribeURL == "" { // no public URL: a path on this server
		page.UnsubscribeURL = base + "/unsubscribe"
	}
	for _, m := range t.Messages {
		if !shownOnPage(m) {
			continue
		}
		pm := pageMessage{When: m.CreatedAt.UTC().Format("2 Jan 2006, 15:04 UTC"),
			Text: redactExcept(cutForGuest(strings.TrimSpace(m.Text)), cr.viewer)}
		switch {
		case m.Direction == ticket.DirectionOutbound:
			pm.Who, pm.Desk = name, true
		case sameAddress(m.From, cr.viewer):
			pm.Who, pm.Mine = "You", true
		default:
			pm.Who = redactExcept(m.From, cr.viewer)
		}
		if pm.Text == "" {
			pm.Text = "(This message has no plain-text part.)"
		}
		for _, a := range m.Attachments {
			if a.Inline && strings.HasPrefix(a.ContentType, "image/") && a.ContentID != "" {
				continue // pictures of a signature or a letterhead
			}
			pm.Attachments = append(pm.Attachments, pageAttachment{Name: redactExcept(a.Filename, cr.viewer),
				Size: sizeText(a.Size), URL: base + "/attachments/" + strconv.FormatInt(a.ID, 10) + "?" + q})
		}
		page.Messages = append(page.Messages, pm)
	}
	s.writePage(w, r, http.StatusOK, "ticket", page)
	return nil
}

// projectName is the project's display name, its key when unknown.
func (s *server) projectName(ctx context.Context, key string) string {
	ps, err := s.b.Projects(ctx)
	if err != nil {
		return key
	}
	for _, p := range ps {
		if p.Key == key && p.Name != "" {
			return p.Name
		}
	}
	return key
}

func (s *server) customerAttachment(w http.ResponseWriter, r *http.Request, c *Customer, cr customerRequest) error {
	if err := verifyView(c, r, &cr); err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return errPageNotFound
	}
	ref := ticket.FormatRef(cr.project, cr.number)
	t, err := s.b.Ticket(r.Context(), cr.project, cr.number)
	if err != nil {
		return fmt.Errorf("attachment %d of %s: %w", id, ref, err)
	}
	var (
		msg  *ticket.Message
		meta ticket.Attachment
	)
	for i := range t.Messages {
		for _, a := range t.Messages[i].Attachments {
			if a.ID == id {
				msg, meta = &t.Messages[i], a
			}
		}
	}
	if msg == nil || !shownOnPage(*msg) {
		return errPageNotFound // an internal note's file is as absent as a missing one
	}
	// The desk's files were sent to the viewer, and the viewer's own are
	// theirs; another customer's go by the guests' rules.
	asGuest := msg.Direction != ticket.DirectionOutbound && !sameAddress(msg.From, cr.viewer)
	if asGuest && !guestMayDownloadType(meta.Filename, meta.ContentType) {
		return errAttachmentRefused
	}
	a, data, err := s.b.Attachment(r.Context(), cr.project, cr.number, id)
	if err != nil {
		return fmt.Errorf("attachment %d of %s: %w", id, ref, err)
	}
	ct := contentType(a.ContentType)
	if asGuest {
		if !guestMayDownload(a.Filename, a.ContentType, data) {
			return errAttachmentRefused
		}
		ct, _, _ = strings.Cut(ct, ";")
	}
	s.extendDeadlines(w, r, false, true)
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", ContentDisposition(redactExcept(a.Filename, cr.viewer)))
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
	return nil
}

var errAttachmentRefused = &pageError{http.StatusForbidden, "This file cannot be downloaded here",
	"Another participant sent this file. Files of this type can show other people's addresses, so only the support team opens them."}

type unsubscribePage struct {
	Ref, Action, Viewer string
	Done                bool
}

func verifyUnsubscribe(c *Customer, r *http.Request, cr *customerRequest) error {
	viewer, err := c.Links.VerifyUnsubscribe(cr.project, cr.number, r.URL.Query())
	if err != nil {
		return errLinkForged
	}
	cr.viewer = viewer
	return nil
}

func (s *server) customerUnsubscribeForm(w http.ResponseWriter, r *http.Request, c *Customer, cr customerRequest) error {
	if err := verifyUnsubscribe(c, r, &cr); err != nil {
		return err
	}
	if _, err := s.b.Ticket(r.Context(), cr.project, cr.number); err != nil {
		return fmt.Errorf("ticket %s: %w", ticket.FormatRef(cr.project, cr.number), err)
	}
	s.writePage(w, r, http.StatusOK, "unsubscribe", unsubscribePage{Ref: ticket.FormatRef(cr.project, cr.number),
		Action: r.URL.Path + "?" + r.URL.RawQuery, Viewer: cr.viewer})
	return nil
}

// customerUnsubscribe is the one-click POST of RFC 8058 (a mail provider's
// server posts List-Unsubscribe=One-Click) and the page's button alike.
func (s *server) customerUnsubscribe(w http.ResponseWriter, r *http.Request, c *Customer, cr customerRequest) error {
	if err := verifyUnsubscribe(c, r, &cr); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxUnsubscribeBody))
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := c.Unsubscribe.Unsubscribe(ctx, cr.project, cr.number, cr.viewer); err != nil {
		return fmt.Errorf("unsubscribe from %s: %w", ticket.FormatRef(cr.project, cr.number), err)
	}
	s.log.InfoContext(r.Context(), "unsubscribed", "request_id", infoFrom(r.Context()).id,
		"ticket", ticket.FormatRef(cr.project, cr.number))
	s.writePage(w, r, http.StatusOK, "unsubscribe", unsubscribePage{Ref: ticket.FormatRef(cr.project, cr.number),
		Viewer: cr.viewer, Done: true})
	return nil
}

// redactExcept obfuscates every address in s as RedactText does, except
// viewer's own (any case).
func redactExcept(s, viewer string) string {
	if viewer == "" || !strings.Contains(strings.ToLower(s), viewer) {
		return RedactText(s)
	}
	const mark = "\uE000viewer\uE001" // private-use characters, taken out of s first
	s = strings.ReplaceAll(s, mark, "")
	s = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(viewer)).ReplaceAllString(s, mark)
	return strings.ReplaceAll(RedactText(s), mark, viewer)
}

// sameAddress reports whether from ("Alice <alice@x>" or a bare address)
// is addr, ignoring case.
func sameAddress(from, addr string) bool {
	if a, err := mail.ParseAddress(from); err == nil {
		from = a.Address
	}
	return strings.EqualFold(strings.TrimSpace(from), addr)
}

func sizeText(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}

var customerTemplates = template.Must(template.New("customer").Parse(`
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{.}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d1f23;line-height:1.5}
main{max-width:44rem;margin:0 auto;padding:1rem}
header h1{font-size:1.3rem;margin:.2rem 0 .4rem;overflow-wrap:anywhere}
.ref{color:#5b6270;font-size:.9rem}
.status{display:inline-block;padding:.05rem .55rem;border-radius:1rem;font-size:.85rem;background:#e3e6ea}
.status.open{background:#d8f0dd;color:#125c26}
article{background:#fff;border:1px solid #dde1e6;border-radius:.5rem;padding:.8rem 1rem;margin:.8rem 0}
article.desk{border-left:4px solid #3a6fd8}
article.mine{border-left:4px solid #2e9a4f}
.meta{font-size:.85rem;color:#5b6270;margin-bottom:.4rem}
.text{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;font-family:inherit}
ul.files{margin:.5rem 0 0;padding-left:1.2rem}
footer{font-size:.85rem;color:#5b6270;margin:1.5rem 0}
button{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #3a6fd8;background:#3a6fd8;color:#fff}
a{color:#2453b3}
</style></head><body><main>
{{end}}
{{define "foot"}}</main></body></html>
{{end}}
{{define "message"}}{{template "head" .Title}}
<h1>{{.Title}}</h1>
<p>{{.About}}</p>
{{template "foot"}}{{end}}
{{define "ticket"}}{{template "head" (printf "%s: %s" .Ref .Subject)}}
<header>
<div class="ref">{{.Project}} · request {{.Ref}}</div>
<h1>{{.Subject}}</h1>
<span class="status{{if .Open}} open{{end}}">{{if .Open}}Open{{else}}Closed{{end}}</span>
</header>
{{range .Messages}}<article class="{{if .Desk}}desk{{else if .Mine}}mine{{end}}">
<div class="meta"><strong>{{.Who}}</strong> · {{.When}}</div>
<pre class="text">{{.Text}}</pre>
{{if .Attachments}}<ul class="files">{{range .Attachments}}<li><a href="{{.URL}}">{{.Name}}</a> ({{.Size}})</li>{{end}}</ul>{{end}}
</article>
{{end}}
<footer>
<p>To add anything, reply to any email about this request. This page is for {{.Viewer}} only: please do not share its link.</p>
<p>{{if .Unsubscribed}}You get no more email about this request.{{else}}<a href="{{.UnsubscribeURL}}">Stop email about this request</a>{{end}}</p>
</footer>
{{template "foot"}}{{end}}
{{define "unsubscribe"}}{{template "head" (printf "Unsubscribe from %s" .Ref)}}
{{if .Done}}<h1>You are unsubscribed</h1>
<p>{{.Viewer}} gets no more email about request {{.Ref}}.</p>
{{else}}<h1>Stop email about request {{.Ref}}?</h1>
<p>{{.Viewer}} will get no more email about this request, including our answers.</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>
{{end}}
{{template "foot"}}{{end}}
`))
