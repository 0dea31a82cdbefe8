package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

// post sends body with contentType as role.
func (b *bundle) post(t *testing.T, role Role, path, contentType string, body io.Reader) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok := tokenFor(role); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	return rec
}

// notes returns what AddNote received so far.
func (b *bundle) notes() []noteCall {
	b.backend.mu.Lock()
	defer b.backend.mu.Unlock()
	return append([]noteCall(nil), b.backend.notes...)
}

// formPart is one part of a multipart/form-data body; a file when filename
// or contentType is set.
type formPart struct {
	field, filename, contentType, data string
}

// form encodes parts as multipart/form-data and returns the Content-Type
// and the body.
func form(t *testing.T, parts ...formPart) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	quote := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		cd := fmt.Sprintf(`form-data; name="%s"`, quote(p.field))
		if p.filename != "" {
			cd += fmt.Sprintf(`; filename="%s"`, quote(p.filename))
		}
		h.Set("Content-Disposition", cd)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatalf("create form part: %v", err)
		}
		io.WriteString(w, p.data)
	}
	if err := mw.Close(); err != nil {
		t.Fatalf("close form: %v", err)
	}
	return mw.FormDataContentType(), &buf
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

const notesPath = "/api/v1/projects/acme/tickets/1/notes"

func TestAddNoteJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		role       Role
		body       string
		wantAuthor string
		wantText   string
		internal   bool
	}{
		{"reply to the customer", RoleAgent, `{"text": "We are on it."}`, "helpdesk", "We are on it.", false},
		{"internal note", RoleAgent, `{"text": "Printer is model X.", "internal": true}`, "helpdesk", "Printer is model X.", true},
		{"explicitly not internal", RoleAgent, `{"text":"hi","internal":false}`, "helpdesk", "hi", false},
		{"admin is an agent too", RoleAdmin, `{"text": "Escalated."}`, "ops", "Escalated.", false},
		{"text kept as given", RoleAgent, `{"text": "  line one\nline two\n"}`, "helpdesk", "  line one\nline two\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			rec := b.post(t, tt.role, notesPath, "application/json; charset=utf-8", strings.NewReader(tt.body))
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status = %d, want 202; body %s", rec.Code, rec.Body)
			}
			notes := b.notes()
			if len(notes) != 1 {
				t.Fatalf("backend got %d notes, want 1", len(notes))
			}
			want := noteCall{"acme", 1, NoteRequest{Author: tt.wantAuthor, Text: tt.wantText, Internal: tt.internal}}
			if got := notes[0]; got.project != want.project || got.number != want.number ||
				fmt.Sprintf("%+v", got.note) != fmt.Sprintf("%+v", want.note) {
				t.Errorf("backend got %+v, want %+v", got, want)
			}

			v := decode(t, rec)
			if got := sortedKeys(v); got != "message" {
				t.Fatalf("answer keys = %s, want message; body %s", got, rec.Body)
			}
			m := v["message"].(map[string]any)
			if got, want := sortedKeys(m), "attachments cc created_at direction from html id internal kind message_id subject text to"; got != want {
				t.Errorf("message keys = %s, want %s", got, want)
			}
			if m["kind"] != "note" || m["text"] != tt.wantText || m["internal"] != tt.internal || m["id"] != float64(101) {
				t.Errorf("message kind/text/internal/id = %v/%q/%v/%v, want note/%q/%v/101",
					m["kind"], m["text"], m["internal"], m["id"], tt.wantText, tt.internal)
			}
			for _, f := range []string{"to", "cc", "attachments"} {
				if _, ok := m[f].([]any); !ok {
					t.Errorf("message.%s = %#v, want a list (never null)", f, m[f])
				}
			}
		})
	}
}

func TestAddNoteMultipart(t *testing.T) {
	t.Parallel()
	pdf := "%PDF-1.4\x00\xff binary"
	csv := "name,mail\nalice,alice@customer.test\n"
	tests := []struct {
		name        string
		parts       []formPart
		wantText    string
		internal    bool
		wantFiles   []ticket.Attachment // Data is compared as a string of SHA256 input
		wantContent []string
	}{
		{
			name: "text and two files",
			parts: []formPart{
				{field: "text", data: "See the attached."},
				{field: "attachments", filename: "report.pdf", contentType: "application/pdf", data: pdf},
				{field: "attachments", filename: "Übersicht.csv", contentType: "text/csv; charset=utf-8", data: csv},
			},
			wantText: "See the attached.",
			wantFiles: []ticket.Attachment{
				{Filename: "report.pdf", ContentType: "application/pdf", Size: int64(len(pdf)), SHA256: sha256Hex(pdf)},
				{Filename: "Übersicht.csv", ContentType: "text/csv; charset=utf-8", Size: int64(len(csv)), SHA256: sha256Hex(csv)},
			},
			wantContent: []string{pdf, csv},
		},
		{
			name: "files only, internal, unsafe names and no content type",
			parts: []formPart{
				{field: "internal", data: "true"},
				{field: "attachments", filename: `C:\Users\bob\..\evil.txt`, contentType: "text/plain", data: "x"},
				{field: "attachments", filename: "../../etc/pass\twd", data: "root:x:0:0"},
			},
			internal: true,
			wantFiles: []ticket.Attachment{
				{Filename: "evil.txt", ContentType: "text/plain", Size: 1, SHA256: sha256Hex("x")},
				{Filename: "passwd", ContentType: "application/octet-stream", Size: 10, SHA256: sha256Hex("root:x:0:0")},
			},
			wantContent: []string{"x", "root:x:0:0"},
		},
		{
			name: "checkbox on, bad content type falls back",
			parts: []formPart{
				{field: "text", data: "internal via checkbox"},
				{field: "internal", data: "on"},
				{field: "attachments", filename: "a.bin", contentType: "not a media type", data: "\x00\x01"},
			},
			wantText: "internal via checkbox",
			internal: true,
			wantFiles: []ticket.Attachment{
				{Filename: "a.bin", ContentType: "application/octet-stream", Size: 2, SHA256: sha256Hex("\x00\x01")},
			},
			wantContent: []string{"\x00\x01"},
		},
		{
			name: "empty file input of a browser is skipped",
			parts: []formPart{
				{field: "text", data: "no file chosen"},
				{field: "internal", data: "false"},
				{field: "attachments", filename: "", contentType: "application/octet-stream", data: ""},
			},
			wantText: "no file chosen",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			ct, body := form(t, tt.parts...)
			rec := b.post(t, RoleAgent, notesPath, ct, body)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status = %d, want 202; body %s", rec.Code, rec.Body)
			}
			notes := b.notes()
			if len(notes) != 1 {
				t.Fatalf("backend got %d notes, want 1", len(notes))
			}
			n := notes[0].note
			if n.Author != "helpdesk" || n.Text != tt.wantText || n.Internal != tt.internal {
				t.Errorf("note author/text/internal = %q/%q/%v, want helpdesk/%q/%v", n.Author, n.Text, n.Internal, tt.wantText, tt.internal)
			}
			if len(n.Attachments) != len(tt.wantFiles) {
				t.Fatalf("backend got %d attachments, want %d: %+v", len(n.Attachments), len(tt.wantFiles), n.Attachments)
			}
			for i, want := range tt.wantFiles {
				got := n.Attachments[i]
				if string(got.Data) != tt.wantContent[i] {
					t.Errorf("attachment %d data = %q, want %q (whole, unchanged)", i, got.Data, tt.wantContent[i])
				}
				if got.SHA256 != sha256Hex(string(got.Data)) {
					t.Errorf("attachment %d sha256 = %s, does not match its data", i, got.SHA256)
				}
				got.Data = nil
				if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
					t.Errorf("attachment %d = %+v, want %+v", i, got, want)
				}
			}

			m := decode(t, rec)["message"].(map[string]any)
			atts := m["attachments"].([]any)
			if len(atts) != len(tt.wantFiles) {
				t.Fatalf("answer has %d attachments, want %d", len(atts), len(tt.wantFiles))
			}
			for i, want := range tt.wantFiles {
				a := atts[i].(map[string]any)
				if a["sha256"] != want.SHA256 || a["size"] != float64(want.Size) || a["filename"] != want.Filename {
					t.Errorf("answer attachment %d = %v, want sha256 %s, size %d, filename %q", i, a, want.SHA256, want.Size, want.Filename)
				}
				if _, ok := a["data"]; ok {
					t.Errorf("answer attachment %d carries the file's data", i)
				}
			}
		})
	}
}

func TestAddNoteRejects(t *testing.T) {
	t.Parallel()
	const limit = 1024
	big := strings.Repeat("x", limit)
	type request struct {
		path, contentType string
		body              io.Reader
	}
	jsonReq := func(body string) request {
		return request{notesPath, "application/json", strings.NewReader(body)}
	}
	formReq := func(parts ...formPart) func(t *testing.T) request {
		return func(t *testing.T) request {
			ct, body := form(t, parts...)
			return request{notesPath, ct, body}
		}
	}
	// unsized hides the length, as a chunked upload does, so that only
	// reading the body can find it too large.
	unsized := func(f func(t *testing.T) request) func(t *testing.T) request {
		return func(t *testing.T) request {
			r := f(t)
			r.body = io.MultiReader(r.body)
			return r
		}
	}
	tests := []struct {
		name        string
		role        Role
		req         func(t *testing.T) request
		status      int
		code        string
		backendSees bool
	}{
		{"empty JSON text", RoleAgent, func(*testing.T) request { return jsonReq(`{"text": ""}`) }, 400, "bad_request", false},
		{"blank JSON text", RoleAgent, func(*testing.T) request { return jsonReq(`{"text": " \n\t", "internal": true}`) }, 400, "bad_request", false},
		{"empty JSON object", RoleAgent, func(*testing.T) request { return jsonReq(`{}`) }, 400, "bad_request", false},
		{"empty body", RoleAgent, func(*testing.T) request { return jsonReq(``) }, 400, "bad_request", false},
		{"unknown JSON field", RoleAgent, func(*testing.T) request { return jsonReq(`{"text": "hi", "attachments": []}`) }, 400, "bad_request", false},
		{"two JSON values", RoleAgent, func(*testing.T) request { return jsonReq(`{"text": "a"} {"text": "b"}`) }, 400, "bad_request", false},
		{"JSON internal not a bool", RoleAgent, func(*testing.T) request { return jsonReq(`{"text": "a", "internal": "yes"}`) }, 400, "bad_request", false},
		{"empty form", RoleAgent, formReq(), 400, "bad_request", false},
		{"form with only an empty file input", RoleAgent, formReq(formPart{field: "attachments", contentType: "application/octet-stream"}), 400, "bad_request", false},
		{"misspelt form field", RoleAgent, formReq(formPart{field: "text", data: "hi"}, formPart{field: "attachment", filename: "a.txt", data: "x"}), 400, "bad_request", false},
		{"bad internal value", RoleAgent, formReq(formPart{field: "text", data: "hi"}, formPart{field: "internal", data: "maybe"}), 400, "bad_request", false},
		{"text twice", RoleAgent, formReq(formPart{field: "text", data: "a"}, formPart{field: "text", data: "b"}), 400, "bad_request", false},
		{"text not UTF-8", RoleAgent, formReq(formPart{field: "text", data: "caf\xe9"}), 400, "bad_request", false},
		{"form without boundary", RoleAgent, func(*testing.T) request {
			return request{notesPath, "multipart/form-data", strings.NewReader("--x\r\n")}
		}, 400, "bad_request", false},
		{"broken form", RoleAgent, func(*testing.T) request {
			return request{notesPath, "multipart/form-data; boundary=zz", strings.NewReader("--zz\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhi")}
		}, 400, "bad_request", false},
		{"plain text body", RoleAgent, func(*testing.T) request {
			return request{notesPath, "text/plain", strings.NewReader("hello")}
		}, 415, "unsupported_media_type", false},
		{"no content type", RoleAgent, func(*testing.T) request {
			return request{notesPath, "", strings.NewReader(`{"text": "hi"}`)}
		}, 415, "unsupported_media_type", false},
		{"JSON over the limit", RoleAgent, func(*testing.T) request { return jsonReq(`{"text": "` + big + `"}`) }, 413, "too_large", false},
		{"JSON over the limit, unsized", RoleAgent, unsized(func(*testing.T) request { return jsonReq(`{"text": "` + big + `"}`) }), 413, "too_large", false},
		{"file over the limit", RoleAgent, formReq(formPart{field: "text", data: "hi"}, formPart{field: "attachments", filename: "big.bin", data: big}), 413, "too_large", false},
		{"second file over the limit, unsized", RoleAgent, unsized(formReq(
			formPart{field: "attachments", filename: "small.txt", data: "fits"},
			formPart{field: "attachments", filename: "big.bin", data: big})), 413, "too_large", false},
		{"guest may not write", RoleGuest, func(*testing.T) request { return jsonReq(`{"text": "hi"}`) }, 403, "forbidden", false},
		{"no token", RoleNone, func(*testing.T) request { return jsonReq(`{"text": "hi"}`) }, 401, "unauthorized", false},
		{"unknown ticket", RoleAgent, func(*testing.T) request {
			return request{"/api/v1/projects/acme/tickets/99/notes", "application/json", strings.NewReader(`{"text": "hi"}`)}
		}, 404, "not_found", true},
		{"unknown project", RoleAgent, func(*testing.T) request {
			return request{"/api/v1/projects/nope/tickets/1/notes", "application/json", strings.NewReader(`{"text": "hi"}`)}
		}, 404, "not_found", true},
		{"ticket number not a number", RoleAgent, func(*testing.T) request {
			return request{"/api/v1/projects/acme/tickets/one/notes", "application/json", strings.NewReader(`{"text": "hi"}`)}
		}, 400, "bad_request", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, &Options{MaxUploadSize: limit})
			r := tt.req(t)
			rec := b.post(t, tt.role, r.path, r.contentType, r.body)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			e, ok := decode(t, rec)["error"].(map[string]any)
			if !ok || e["code"] != tt.code {
				t.Errorf("answer %s, want error code %q", rec.Body, tt.code)
			}
			if msg, _ := e["message"].(string); msg == "" {
				t.Errorf("error message is empty, want a reason")
			}
			if got := len(b.notes()); got != map[bool]int{false: 0, true: 1}[tt.backendSees] {
				t.Errorf("backend got %d notes, want %d", got, map[bool]int{false: 0, true: 1}[tt.backendSees])
			}
		})
	}

	t.Run("just within the limit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &Options{MaxUploadSize: limit})
		body := `{"text": "` + big[:limit-len(`{"text": ""}`)] + `"}`
		if len(body) != limit {
			t.Fatalf("test body is %d bytes, want exactly %d", len(body), limit)
		}
		if rec := b.post(t, RoleAgent, notesPath, "application/json", strings.NewReader(body)); rec.Code != http.StatusAccepted {
			t.Fatalf("status = %d, want 202 for a body of exactly the limit; body %s", rec.Code, rec.Body)
		}
	})

	t.Run("backend failure is 500 without details", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		b.backend.err = errDatabaseDown
		rec := b.post(t, RoleAgent, notesPath, "application/json", strings.NewReader(`{"text": "hi"}`))
		if rec.Code != 500 || strings.Contains(rec.Body.String(), "hunter2") {
			t.Errorf("status = %d, body %s; want 500 without the backend's error text", rec.Code, rec.Body)
		}
	})
}

// TestAddNoteOverTheWire checks the 413 through a real server and client,
// where http.MaxBytesReader also closes the connection.
func TestAddNoteOverTheWire(t *testing.T) {
	t.Parallel()
	b := setup(t, &Options{MaxUploadSize: 4096})
	srv := httptest.NewServer(b.handler)
	t.Cleanup(srv.Close)
	tests := []struct {
		name   string
		size   int
		sized  bool
		status int
	}{
		{"small file", 100, true, 202},
		{"large file, sized", 64 << 10, true, 413},
		{"large file, chunked", 64 << 10, false, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, body := form(t, formPart{field: "attachments", filename: "f.bin", data: strings.Repeat("z", tt.size)})
			var r io.Reader = body
			if !tt.sized {
				r = io.MultiReader(body)
			}
			req, err := http.NewRequest("POST", srv.URL+notesPath, r)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Authorization", "Bearer "+agentToken)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.status, got)
			}
			if tt.status == 413 && !strings.Contains(string(got), `"code":"too_large"`) {
				t.Errorf("body %s, want error code too_large", got)
			}
		})
	}
	if n := len(b.notes()); n != 1 {
		t.Errorf("backend got %d notes, want only the small one", n)
	}
}

func TestSetStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		role       Role
		path       string
		status     int
		wantStatus string // the ticket's status in the answer
	}{
		{"close an open ticket", RoleAgent, "/api/v1/projects/acme/tickets/1/close", 200, "closed"},
		{"reopen a closed ticket", RoleAgent, "/api/v1/projects/acme/tickets/3/reopen", 200, "open"},
		{"close a closed ticket", RoleAgent, "/api/v1/projects/acme/tickets/3/close", 200, "closed"},
		{"reopen an open ticket", RoleAdmin, "/api/v1/projects/acme/tickets/2/reopen", 200, "open"},
		{"close unknown ticket", RoleAgent, "/api/v1/projects/acme/tickets/99/close", 404, ""},
		{"reopen in unknown project", RoleAgent, "/api/v1/projects/nope/tickets/1/reopen", 404, ""},
		{"bad number", RoleAgent, "/api/v1/projects/acme/tickets/0/close", 400, ""},
		{"guest may not close", RoleGuest, "/api/v1/projects/acme/tickets/1/close", 403, ""},
		{"guest may not reopen", RoleGuest, "/api/v1/projects/acme/tickets/3/reopen", 403, ""},
		{"no token", RoleNone, "/api/v1/projects/acme/tickets/1/close", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			rec := b.do(t, tt.role, "POST", tt.path)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			v := decode(t, rec)
			if tt.status != 200 {
				if _, ok := v["error"]; !ok {
					t.Errorf("answer %s, want an error object", rec.Body)
				}
				if tt.status >= 401 && tt.status <= 403 && b.backend.statusCalls != 0 {
					t.Errorf("backend was called %d times for a refused request", b.backend.statusCalls)
				}
				return
			}
			if v["status"] != tt.wantStatus {
				t.Errorf("ticket status = %v, want %s", v["status"], tt.wantStatus)
			}
			if got, want := sortedKeys(v), "created_at messages number participants project ref requester status subject updated_at"; got != want {
				t.Errorf("ticket keys = %s, want %s (as GET answers)", got, want)
			}
			// The change is what GET now answers.
			number := strings.Split(tt.path, "/")[6]
			if got := decode(t, b.do(t, RoleAgent, "GET", "/api/v1/projects/acme/tickets/"+number))["status"]; got != tt.wantStatus {
				t.Errorf("GET after the change: status %v, want %s", got, tt.wantStatus)
			}
		})
	}

	t.Run("guest is refused before the backend", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		b.do(t, RoleGuest, "POST", "/api/v1/projects/acme/tickets/1/close")
		if b.backend.statusCalls != 0 {
			t.Errorf("backend SetStatus called %d times, want 0", b.backend.statusCalls)
		}
	})

	t.Run("wrong method", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		if rec := b.do(t, RoleAgent, "GET", "/api/v1/projects/acme/tickets/1/close"); rec.Code != 405 {
			t.Errorf("GET close: status %d, want 405", rec.Code)
		}
	})
}

func TestCleanFilename(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("ä", 200) // 400 bytes
	tests := []struct{ name, in, want string }{
		{"plain", "report.pdf", "report.pdf"},
		{"unicode kept", "Übersicht März.csv", "Übersicht März.csv"},
		{"unix path", "/home/bob/report.pdf", "report.pdf"},
		{"windows path", `C:\Users\bob\report.pdf`, "report.pdf"},
		{"traversal", "../../etc/passwd", "passwd"},
		{"control characters", "a\r\nb\x00c\x7f.txt", "abc.txt"},
		{"right-to-left override", "invoice\u202Efdp.exe", "invoicefdp.exe"},
		{"invalid UTF-8", "caf\xe9.txt", "caf_.txt"},
		{"surrounding space", "  notes.txt \t", "notes.txt"},
		{"empty", "", "attachment"},
		{"only a directory", "dir/", "attachment"},
		{"dot dot", "..", "attachment"},
		{"only control characters", "\x01\x02", "attachment"},
		{"long name keeps extension", long + ".pdf", strings.Repeat("ä", 125) + ".pdf"},
		{"long name without extension", long, strings.Repeat("ä", 127)},
		{"long odd cut does not split a character", "a" + long + ".txt", "a" + strings.Repeat("ä", 125) + ".txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cleanFilename(tt.in)
			if got != tt.want {
				t.Errorf("cleanFilename(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if len(got) > 255 {
				t.Errorf("cleanFilename(%q) is %d bytes, want at most 255", tt.in, len(got))
			}
		})
	}
}

func TestTokenName(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tests := []struct {
		name string
		set  func(r *http.Request)
		want string
	}{
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+agentToken) }, "helpdesk"},
		{"basic", func(r *http.Request) { r.SetBasicAuth("whoever", adminToken) }, "ops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", notesPath, strings.NewReader(`{"text":"by token name"}`))
			req.Header.Set("Content-Type", "application/json")
			tt.set(req)
			before := len(b.notes())
			rec := httptest.NewRecorder()
			b.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status = %d, want 202: %s", rec.Code, rec.Body)
			}
			notes := b.notes()
			if len(notes) != before+1 || notes[before].note.Author != tt.want {
				t.Errorf("author = %+v, want %q", notes[len(notes)-1].note.Author, tt.want)
			}
		})
	}

	t.Run("unnamed token gets its position", func(t *testing.T) {
		fb := newFakeBackend()
		h := New(fb, []Token{{Token: "a", Role: RoleGuest}, {Token: "b", Role: RoleAgent}}, nil)
		req := httptest.NewRequest("POST", notesPath, strings.NewReader(`{"text":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer b")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("status = %d, want 202: %s", rec.Code, rec.Body)
		}
		if len(fb.notes) != 1 || fb.notes[0].note.Author != "token2" {
			t.Errorf("backend got notes %+v, want one by token2", fb.notes)
		}
	})

	if got := TokenName(t.Context()); got != "" {
		t.Errorf("TokenName of a bare context = %q, want empty", got)
	}
}
