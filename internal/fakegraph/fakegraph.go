// Package fakegraph is Microsoft Graph for tests: the identity platform's
// token endpoint (client credentials) and the v1.0 mail endpoints the graph
// package uses, on an httptest server, with the request and response
// shapes of Microsoft's published API reference (cited at each handler).
// It keeps one mailbox's folders and messages in memory, counts what was
// asked, and fails on demand (throttling, expired tokens, missing items).
package fakegraph

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a fake Graph with one mailbox (User) and one app registration
// (Tenant, ClientID, Secret). URL is the base of both the token endpoint
// (authority_url) and, with /v1.0, of the API (api_url).
type Server struct {
	Tenant, ClientID, Secret, User string
	URL                            string
	// Latency delays every answer, as a remote service would; requests
	// wait side by side. Set it before the first request.
	Latency time.Duration

	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	tokens   map[string]bool // access tokens currently valid
	issued   int
	seq      int                    // change counter of the delta state
	folders  map[string]*fakeFolder // by ID
	messages map[string]*fakeMessage
	nextID   int
	failures []*failure
	// what was asked
	tokenRequests int
	downloads     map[string]int // by message ID
	requests      []string       // "METHOD path", API calls only
	deltaQueries  []url.Values   // the query of each first delta request
	preferIDs     int            // requests that asked for immutable IDs
}

type fakeFolder struct {
	id, name, parent string
	removed          map[string]int // message ID -> change seq, for @removed
}

type fakeMessage struct {
	id, folder string
	mime       []byte
	isRead     bool
	received   time.Time
	changed    int // seq of the last change
}

// failure answers the next n requests that match with status, a
// Retry-After header and a Graph error body.
type failure struct {
	match      func(r *http.Request) bool
	n          int
	status     int
	retryAfter string
	code       string
}

// InboxID is the ID of the mailbox's Inbox.
const InboxID = "AAMkInbox="

// New starts a fake Graph whose mailbox has an empty Inbox; it stops at
// the end of the test.
func New(t testing.TB) *Server {
	f := &Server{t: t, Tenant: "contoso.onmicrosoft.com", ClientID: "app-1", Secret: "s3cret-value",
		User: "support@contoso.test", tokens: map[string]bool{}, folders: map[string]*fakeFolder{},
		messages: map[string]*fakeMessage{}, downloads: map[string]int{}}
	f.addFolder(InboxID, "Inbox", "")
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// AddFolder adds a folder under parent ("" for the top of the mailbox).
func (f *Server) AddFolder(id, name, parent string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addFolder(id, name, parent)
}

func (f *Server) addFolder(id, name, parent string) {
	f.folders[id] = &fakeFolder{id: id, name: name, parent: parent, removed: map[string]int{}}
}

// Deliver puts a message into the folder named folderName and returns its
// ID.
func (f *Server) Deliver(folderName string, mime string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	fo := f.folderNamed(folderName)
	f.nextID++
	f.seq++
	id := fmt.Sprintf("AAMkADMsg%04d=", f.nextID)
	f.messages[id] = &fakeMessage{id: id, folder: fo.id, mime: []byte(mime),
		received: time.Date(2026, 12, 1, 9, 0, f.nextID, 0, time.UTC), changed: f.seq}
	return id
}

// FolderID returns the ID of the folder named name.
func (f *Server) FolderID(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.folderNamed(name).id
}

// LookupFolder returns the ID of the folder named name, if there is one
// (a move target is created on first use).
func (f *Server) LookupFolder(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fo := f.findFolder(name); fo != nil {
		return fo.id, true
	}
	return "", false
}

// folderNamed is the folder named name; the test fails without one.
func (f *Server) folderNamed(name string) *fakeFolder {
	fo := f.findFolder(name)
	if fo == nil {
		f.t.Fatalf("fake graph: no folder %q", name)
	}
	return fo
}

// findFolder is the folder named name, ignoring case, or nil. The caller
// holds f.mu.
func (f *Server) findFolder(name string) *fakeFolder {
	for _, fo := range f.folders {
		if strings.EqualFold(fo.name, name) {
			return fo
		}
	}
	return nil
}

// FailNext makes the next n API requests whose path contains pathPart
// (and of method, if not "") fail with status, a Retry-After header (if
// not "") and Graph's error body with code.
func (f *Server) FailNext(method, pathPart string, n, status int, retryAfter, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, &failure{n: n, status: status, retryAfter: retryAfter, code: code,
		match: func(r *http.Request) bool {
			return (method == "" || r.Method == method) && strings.Contains(r.URL.Path, pathPart)
		}})
}

// ExpireTokens makes every access token issued so far invalid, as when
// one expires mid-run: Graph answers 401 InvalidAuthenticationToken.
func (f *Server) ExpireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
}

// Count is how many API requests ("METHOD /path", the path decoded) began
// with prefix.
func (f *Server) Count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

// Message is a message's state; ID "" when it is deleted.
type Message struct {
	ID, Folder string
	IsRead     bool
}

// Message returns the state of the message id.
func (f *Server) Message(id string) Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, ok := f.messages[id]; ok {
		return Message{ID: m.id, Folder: m.folder, IsRead: m.isRead}
	}
	return Message{}
}

// Downloads is how often the MIME source of message id was downloaded.
func (f *Server) Downloads(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.downloads[id]
}

// TokenRequests is how many tokens were asked for.
func (f *Server) TokenRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenRequests
}

// DeltaQueries are the queries of the first request of each delta round
// started from scratch.
func (f *Server) DeltaQueries() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deltaQueries)
}

// PreferIDs is how many API requests asked for immutable IDs.
func (f *Server) PreferIDs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.preferIDs
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// graphError is the error resource of https://learn.microsoft.com/en-us/graph/errors.
func graphError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": message,
		"innerError": map[string]any{"date": "2026-12-01T09:00:00", "request-id": "0b5a2d4e-0000-0000-0000-000000000000"}}})
}

var (
	tokenPath = regexp.MustCompile(`^/([^/]+)/oauth2/v2\.0/token$`)
	// Graph writes links with either segment form: /mailFolders/{id} and
	// /mailfolders('{id}').
	folderSeg = `(?i:mailfolders)(?:/([^/()]+)|\('([^']+)'\))`
	userPath  = regexp.MustCompile(`^/v1\.0/users/([^/]+)(/.*)?$`)
	deltaPath = regexp.MustCompile(`^/` + folderSeg + `/messages/delta$`)
	childPath = regexp.MustCompile(`^/` + folderSeg + `/childFolders$`)
	oneFolder = regexp.MustCompile(`^/` + folderSeg + `$`)
	msgPath   = regexp.MustCompile(`^/messages/([^/]+)(/\$value|/move)?$`)
)

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	time.Sleep(f.Latency)
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := tokenPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
		f.token(w, r, m[1])
		return
	}
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	for _, fl := range f.failures {
		if fl.n > 0 && fl.match(r) {
			fl.n--
			if fl.retryAfter != "" {
				w.Header().Set("Retry-After", fl.retryAfter)
			}
			graphError(w, fl.status, fl.code, "Injected by the test.")
			return
		}
	}
	// https://learn.microsoft.com/en-us/graph/auth-v2-service: every call
	// carries the bearer token; an expired one is 401 InvalidAuthenticationToken.
	if !f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
		return
	}
	if slices.Contains(r.Header.Values("Prefer"), `IdType="ImmutableId"`) {
		f.preferIDs++
	}
	m := userPath.FindStringSubmatch(r.URL.Path)
	if m == nil || !strings.EqualFold(m[1], f.User) {
		graphError(w, http.StatusNotFound, "ErrorInvalidUser", "The requested user is invalid.")
		return
	}
	rest := m[2]
	switch {
	case deltaPath.MatchString(rest) && r.Method == http.MethodGet:
		f.delta(w, r, firstOf(deltaPath.FindStringSubmatch(rest)))
	case childPath.MatchString(rest):
		f.childFolders(w, r, firstOf(childPath.FindStringSubmatch(rest)))
	case strings.EqualFold(rest, "/mailFolders"):
		f.childFolders(w, r, "")
	case oneFolder.MatchString(rest) && r.Method == http.MethodGet:
		f.getFolder(w, firstOf(oneFolder.FindStringSubmatch(rest)))
	case msgPath.MatchString(rest):
		mm := msgPath.FindStringSubmatch(rest)
		f.messageOp(w, r, mm[1], mm[2])
	default:
		graphError(w, http.StatusBadRequest, "BadRequest", "Unsupported segment type.")
	}
}

func firstOf(m []string) string {
	for _, s := range m[1:] {
		if s != "" {
			return s
		}
	}
	return ""
}

// token is the client credentials grant of the Microsoft identity platform:
// https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
// (form fields client_id, client_secret, scope, grant_type; the success
// and error responses as shown there).
func (f *Server) token(w http.ResponseWriter, r *http.Request, tenant string) {
	f.tokenRequests++
	_ = r.ParseForm()
	switch {
	case tenant != f.Tenant:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request",
			"error_description": "AADSTS90002: Tenant '" + tenant + "' not found.\r\nTrace ID: 1\r\nCorrelation ID: 2",
			"error_codes":       []int{90002}})
	case r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != f.srv.URL+"/.default":
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_scope",
			"error_description": "AADSTS70011: The provided value for the input parameter 'scope' is not valid."})
	case r.PostForm.Get("client_id") != f.ClientID || r.PostForm.Get("client_secret") != f.Secret:
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client",
			"error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 1",
			"error_codes":       []int{7000215}})
	default:
		f.issued++
		tok := fmt.Sprintf("eyJ0eXAiOiJKV1QiLCJub25jZSI6-%d", f.issued)
		f.tokens[tok] = true
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok})
	}
}

func folderJSON(fo *fakeFolder, total int) map[string]any {
	return map[string]any{"id": fo.id, "displayName": fo.name, "parentFolderId": fo.parent, "childFolderCount": 0,
		"unreadItemCount": 0, "totalItemCount": total, "isHidden": false}
}

func (f *Server) total(folderID string) int {
	n := 0
	for _, m := range f.messages {
		if m.folder == folderID {
			n++
		}
	}
	return n
}

// getFolder: https://learn.microsoft.com/en-us/graph/api/mailfolder-get
// (by ID or well-known name).
func (f *Server) getFolder(w http.ResponseWriter, id string) {
	fo, ok := f.folders[id]
	if !ok && strings.EqualFold(id, "inbox") {
		fo, ok = f.folders[InboxID], true
	}
	if !ok {
		graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
		return
	}
	writeJSON(w, http.StatusOK, folderJSON(fo, f.total(fo.id)))
}

// childFolders lists ($filter=displayName eq '...') or creates folders:
// https://learn.microsoft.com/en-us/graph/api/mailfolder-list-childfolders,
// https://learn.microsoft.com/en-us/graph/api/user-list-mailfolders,
// https://learn.microsoft.com/en-us/graph/api/mailfolder-post-childfolders,
// https://learn.microsoft.com/en-us/graph/api/user-post-mailfolders.
func (f *Server) childFolders(w http.ResponseWriter, r *http.Request, parent string) {
	if parent != "" {
		if _, ok := f.folders[parent]; !ok {
			graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
			return
		}
	}
	if r.Method == http.MethodPost {
		var body struct {
			DisplayName string `json:"displayName"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		for _, fo := range f.folders {
			if fo.parent == parent && strings.EqualFold(fo.name, body.DisplayName) {
				graphError(w, http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
				return
			}
		}
		f.nextID++
		id := fmt.Sprintf("AAMkFolder%d=", f.nextID)
		f.addFolder(id, body.DisplayName, parent)
		writeJSON(w, http.StatusCreated, folderJSON(f.folders[id], 0))
		return
	}
	want := ""
	if flt := r.URL.Query().Get("$filter"); flt != "" {
		m := regexp.MustCompile(`^displayName eq '((?:[^']|'')*)'$`).FindStringSubmatch(flt)
		if m == nil {
			graphError(w, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
			return
		}
		want = strings.ReplaceAll(m[1], "''", "'")
	}
	var value []any
	for _, fo := range f.folders {
		if fo.parent == parent && (want == "" || strings.EqualFold(fo.name, want)) {
			value = append(value, folderJSON(fo, f.total(fo.id)))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": value})
}

// delta is https://learn.microsoft.com/en-us/graph/api/message-delta with
// the rounds of https://learn.microsoft.com/en-us/graph/delta-query-messages:
// pages of Prefer: odata.maxpagesize, @odata.nextLink ($skiptoken) until
// the round ends with @odata.deltaLink ($deltatoken); later rounds return
// what changed, deletions as "@removed". The state token here is the
// change counter the client has seen.
func (f *Server) delta(w http.ResponseWriter, r *http.Request, folderID string) {
	fo, ok := f.folders[folderID]
	if !ok {
		graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
		return
	}
	q := r.URL.Query()
	token := q.Get("$skiptoken") + q.Get("$deltatoken")
	if token == "" {
		f.deltaQueries = append(f.deltaQueries, q)
	}
	after, _ := strconv.Atoi(strings.TrimPrefix(token, "seq-"))
	pageSize := 10
	for _, p := range r.Header.Values("Prefer") {
		if v, ok := strings.CutPrefix(p, "odata.maxpagesize="); ok {
			pageSize, _ = strconv.Atoi(v)
		}
	}
	type change struct {
		seq  int
		item map[string]any
	}
	var changes []change
	for _, m := range f.messages {
		if m.folder == fo.id && m.changed > after {
			item := map[string]any{"@odata.type": "#microsoft.graph.message", "@odata.etag": `W/"CQAAABYAAAARn2vd"`,
				"id": m.id, "internetMessageId": fmt.Sprintf("<%s@contoso.test>", m.id),
				"receivedDateTime": m.received.Format(time.RFC3339)}
			// Only when asked for: the size is an extended property
			// (https://learn.microsoft.com/en-us/graph/api/singlevaluelegacyextendedproperty-get).
			if strings.Contains(q.Get("$expand")+f.firstExpand(), "singleValueExtendedProperties($filter=id eq 'Integer 0x0E08')") {
				item["singleValueExtendedProperties"] = []any{map[string]any{"id": "Integer 0xe08", "value": strconv.Itoa(len(m.mime))}}
			}
			changes = append(changes, change{m.changed, item})
		}
	}
	if after > 0 {
		for id, seq := range fo.removed {
			if seq > after {
				changes = append(changes, change{seq, map[string]any{"@odata.type": "#microsoft.graph.message", "id": id,
					"@removed": map[string]any{"reason": "deleted"}}})
			}
		}
	}
	slices.SortFunc(changes, func(a, b change) int { return a.seq - b.seq })
	body := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)"}
	base := f.srv.URL + "/v1.0/users/" + url.PathEscape(f.User) + "/mailfolders('" + fo.id + "')/messages/delta"
	if len(changes) > pageSize {
		changes = changes[:pageSize]
		body["@odata.nextLink"] = base + "?$skiptoken=seq-" + strconv.Itoa(changes[len(changes)-1].seq)
	} else {
		body["@odata.deltaLink"] = base + "?$deltatoken=seq-" + strconv.Itoa(f.seq)
	}
	value := make([]any, 0, len(changes))
	for _, c := range changes {
		value = append(value, c.item)
	}
	body["value"] = value
	writeJSON(w, http.StatusOK, body)
}

// firstExpand is the $expand of the first delta request: the links of a
// round carry its options encoded in their tokens.
func (f *Server) firstExpand() string {
	if len(f.deltaQueries) == 0 {
		return ""
	}
	return f.deltaQueries[len(f.deltaQueries)-1].Get("$expand")
}

// messageOp is one of:
// GET .../messages/{id}/$value (MIME: https://learn.microsoft.com/en-us/graph/api/message-get),
// PATCH .../messages/{id} (https://learn.microsoft.com/en-us/graph/api/message-update),
// POST .../messages/{id}/move (https://learn.microsoft.com/en-us/graph/api/message-move),
// DELETE .../messages/{id} (https://learn.microsoft.com/en-us/graph/api/message-delete).
func (f *Server) messageOp(w http.ResponseWriter, r *http.Request, id, op string) {
	m, ok := f.messages[id]
	if !ok {
		graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
		return
	}
	msgJSON := func() map[string]any {
		return map[string]any{"id": m.id, "isRead": m.isRead, "parentFolderId": m.folder,
			"receivedDateTime": m.received.Format(time.RFC3339)}
	}
	switch {
	case op == "/$value" && r.Method == http.MethodGet:
		f.downloads[id]++
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(m.mime)
	case op == "" && r.Method == http.MethodPatch:
		var body map[string]any
		_ = json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body)
		if v, ok := body["isRead"].(bool); ok {
			m.isRead = v
			f.seq++
			m.changed = f.seq
		}
		writeJSON(w, http.StatusOK, msgJSON())
	case op == "/move" && r.Method == http.MethodPost:
		var body struct {
			DestinationID string `json:"destinationId"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if _, ok := f.folders[body.DestinationID]; !ok {
			graphError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
			return
		}
		f.seq++
		f.folders[m.folder].removed[m.id] = f.seq
		m.folder, m.changed = body.DestinationID, f.seq
		writeJSON(w, http.StatusCreated, msgJSON())
	case op == "" && r.Method == http.MethodDelete:
		f.seq++
		f.folders[m.folder].removed[m.id] = f.seq
		delete(f.messages, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		graphError(w, http.StatusMethodNotAllowed, "BadRequest", "Method not allowed.")
	}
}
