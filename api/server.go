package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

type server struct {
	b     Backend
	opts  Options
	log   *slog.Logger
	creds []credential
	mux   *http.ServeMux
}

// New returns the HTTP handler of the API, the probes, /metrics and
// /monitor/. Tokens with no valid role or hash are logged and ignored.
func New(b Backend, tokens []Token, opts *Options) http.Handler {
	o := opts.withDefaults()
	s := &server{b: b, opts: o, log: o.Logger.With("component", "api"), mux: http.NewServeMux()}
	var problems []string
	s.creds, problems = credentials(tokens)
	for _, p := range problems {
		s.log.Error("ignoring API token", "problem", p)
	}

	s.handle("GET /healthz", RoleNone, s.healthz)
	s.handle("GET /readyz", RoleNone, s.readyz)
	if o.Metrics != nil {
		s.mux.Handle("GET /metrics", o.Metrics)
	}
	if o.Monitor != nil {
		// The monitor may hold a call long (a large queue's listing,
		// Redis INFO): its deadlines are extended once the admin is known.
		mon := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.extendDeadlines(w, r, false, true)
			o.Monitor.ServeHTTP(w, r)
		})
		s.mux.Handle("/monitor/", s.require(RoleAdmin, mon))
	}
	s.handle("GET /api/v1/projects", RoleGuest, s.projects)
	s.handle("GET /api/v1/projects/{key}/tickets", RoleGuest, s.tickets)
	s.handle("GET /api/v1/projects/{key}/tickets/{number}", RoleGuest, s.ticket)
	s.handle("GET /api/v1/projects/{key}/tickets/{number}/attachments/{id}", RoleGuest, s.attachment)
	s.handle("POST /api/v1/projects/{key}/tickets/{number}/notes", RoleAgent, s.addNote)
	s.handle("POST /api/v1/projects/{key}/tickets/{number}/close", RoleAgent, s.setStatus(ticket.StatusClosed))
	s.handle("POST /api/v1/projects/{key}/tickets/{number}/reopen", RoleAgent, s.setStatus(ticket.StatusOpen))
	s.handle("GET /api/v1/projects/{key}/inbound", RoleAgent, s.inbound)
	s.handle("GET /api/v1/deadletters", RoleAgent, s.deadLetters)
	s.handle("POST /api/v1/deadletters/{id}/retry", RoleAgent, s.retryDeadLetter)
	s.handle("POST /api/v1/deadletters/{id}/discard", RoleAgent, s.discardDeadLetter)
	if c := o.Customer; c != nil && c.Links != nil && c.Unsubscribe != nil {
		s.customerRoutes(c)
	}
	return s.logRequests(s.crossOrigin(http.HandlerFunc(s.route)))
}

// extendDeadlines moves the connection's read and/or write deadline to
// Options.SlowTimeout from now, past the http.Server's ReadTimeout and
// WriteTimeout, for a request that may rightly take long. Writers that
// cannot (httptest's recorder) are left as they are.
func (s *server) extendDeadlines(w http.ResponseWriter, r *http.Request, read, write bool) {
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(s.opts.SlowTimeout)
	if read {
		if err := rc.SetReadDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.log.DebugContext(r.Context(), "extend read deadline", "request_id", infoFrom(r.Context()).id, "err", err)
		}
	}
	if write {
		if err := rc.SetWriteDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.log.DebugContext(r.Context(), "extend write deadline", "request_id", infoFrom(r.Context()).id, "err", err)
		}
	}
}

// route answers unknown paths and methods in JSON rather than text.
func (s *server) route(w http.ResponseWriter, r *http.Request) {
	if h, pattern := s.mux.Handler(r); pattern == "" {
		rec := &statusOnly{header: w.Header()}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			s.writeError(w, r, errMethod)
			return
		}
		s.writeError(w, r, errNotFound("no such endpoint"))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// statusOnly records the status the mux's built-in 404/405 handler sets,
// keeping its Allow header, and discards its text body.
type statusOnly struct {
	header http.Header
	status int
}

func (s *statusOnly) Header() http.Header         { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(code int)        { s.status = code }

// handle registers an endpoint that needs role and reports failures as
// errors.
func (s *server) handle(pattern string, role Role, h func(http.ResponseWriter, *http.Request) error) {
	s.mux.Handle(pattern, s.require(role, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})))
}

// require lets a request through when its token has at least role:
// 401 with a basic-auth challenge for a missing or unknown token, 403 for
// too low a role.
func (s *server) require(role Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := infoFrom(r.Context())
		if tok, ok := presented(r); ok {
			if c, ok := authenticate(s.creds, tok); ok {
				info.token, info.role = c.name, c.role
			}
		}
		if role == RoleNone {
			next.ServeHTTP(w, r)
			return
		}
		if info.role == RoleNone {
			w.Header().Set("WWW-Authenticate", `Basic realm="servicedesk", charset="UTF-8"`)
			s.writeError(w, r, errUnauthorized)
			return
		}
		if info.role < role {
			s.writeError(w, r, &apiError{http.StatusForbidden, "forbidden",
				fmt.Sprintf("this needs the %s role; token %q has %s", role, info.token, info.role)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiError is an error with the status and code the client sees.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

var (
	errUnauthorized = &apiError{http.StatusUnauthorized, "unauthorized", "a valid token is required (Authorization: Bearer TOKEN, or basic auth with the token as password)"}
	errMethod       = &apiError{http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint"}
)

func errNotFound(msg string) error { return &apiError{http.StatusNotFound, "not_found", msg} }

func errBadRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

// writeError answers err as {"error": {"code", "message"}}. Backend errors
// other than ErrNotFound are logged with the request id and answered as a
// bare "internal error": their text is for operators, not clients.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, ErrNotFound):
		ae = &apiError{http.StatusNotFound, "not_found", "not found"}
	default:
		id := infoFrom(r.Context()).id
		s.log.ErrorContext(r.Context(), "request failed", "request_id", id,
			"method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{http.StatusInternalServerError, "internal", "internal error (request id " + id + ")"}
	}
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	s.writeJSON(w, r, ae.status, map[string]body{"error": {ae.code, ae.message}})
}

// writeJSON encodes v and, unless the caller is an agent or admin,
// obfuscates every address in the encoded bytes: the last pass over a
// guest's answer, after the typed redaction of the handlers (guest.go).
func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		id := infoFrom(r.Context()).id
		s.log.ErrorContext(r.Context(), "encode answer", "request_id", id, "err", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"internal error (request id ` + id + `)"}}` + "\n")
	}
	b := buf.Bytes()
	if infoFrom(r.Context()).role < RoleAgent {
		b = Redact(b)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// requestInfo is what the logging middleware and the auth share about one
// request.
type requestInfo struct {
	id    string
	token string // configured name, never the secret
	role  Role
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	if i, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{}
}

var goodRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// logRequests gives each request an id (X-Request-Id, taken from the
// request when it is sane) and logs method, path, status, duration, id and
// token name. It never logs the Authorization header or the query.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !goodRequestID.MatchString(id) {
			id = newRequestID()
		}
		info := &requestInfo{id: id}
		w.Header().Set("X-Request-Id", id)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(r.Context(), level, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)),
			slog.String("request_id", id), slog.String("token", info.token))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush passes flushes through for streaming handlers (the monitor).
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
