package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/servicedesk/servicedesk/ticket"
)

// maxFilenameBytes bounds an uploaded file's name, as most file systems do.
const maxFilenameBytes = 255

func errTooLarge(limit int64) error {
	return &apiError{http.StatusRequestEntityTooLarge, "too_large",
		fmt.Sprintf("the request body is larger than the upload limit of %d bytes; nothing was stored", limit)}
}

var errUnsupportedType = &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type",
	"send the note as application/json or multipart/form-data"}

// addNote adds an agent's note, from JSON {"text", "internal"} or a
// multipart/form-data form (text, internal, files in attachments), and
// answers 202 with {"message": Message}. The whole body is bounded by
// Options.MaxUploadSize: over it, 413 and the Backend is not called.
func (s *server) addNote(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	number, err := pathID(r, "number")
	if err != nil {
		return err
	}
	ref := ticket.FormatRef(key, number)
	// An upload of tens of MB may outlast the server's ReadTimeout; only
	// an agent's, as require has run.
	s.extendDeadlines(w, r, true, true)
	n, err := s.readNote(w, r)
	if err != nil {
		return fmt.Errorf("read note for %s: %w", ref, err)
	}
	m, err := s.b.AddNote(r.Context(), key, number, n)
	if err != nil {
		return fmt.Errorf("add note to %s: %w", ref, err)
	}
	s.log.InfoContext(r.Context(), "note added", "ticket", ref, "message", m.ID,
		"internal", n.Internal, "attachments", len(n.Attachments),
		"author", n.Author, "request_id", infoFrom(r.Context()).id)
	s.writeJSON(w, r, http.StatusAccepted, map[string]any{"message": MessageJSON(m)})
	return nil
}

// readNote reads and checks the note in the request body. Errors are
// apiErrors: 413 over the limit, 415 for another media type, 400 for a
// malformed or empty note.
func (s *server) readNote(w http.ResponseWriter, r *http.Request) (NoteRequest, error) {
	limit := s.opts.MaxUploadSize
	if r.ContentLength > limit {
		return NoteRequest{}, errTooLarge(limit)
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return NoteRequest{}, errUnsupportedType
	}
	var n NoteRequest
	switch mt {
	case "application/json":
		n, err = readJSONNote(r.Body)
	case "multipart/form-data":
		n, err = readFormNote(r.Body, params["boundary"])
	default:
		return NoteRequest{}, errUnsupportedType
	}
	var tooLarge *http.MaxBytesError
	var ae *apiError
	switch {
	case errors.As(err, &tooLarge):
		return NoteRequest{}, errTooLarge(limit)
	case errors.As(err, &ae):
		return NoteRequest{}, err
	case err != nil:
		return NoteRequest{}, errBadRequest("%v", err)
	}
	if strings.TrimSpace(n.Text) == "" && len(n.Attachments) == 0 {
		return NoteRequest{}, errBadRequest("a note needs text or at least one attachment")
	}
	n.Author = TokenName(r.Context())
	return n, nil
}

// readJSONNote reads {"text": "...", "internal": false} and nothing else.
func readJSONNote(body io.Reader) (NoteRequest, error) {
	var in struct {
		Text     string `json:"text"`
		Internal bool   `json:"internal"`
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return NoteRequest{}, fmt.Errorf("decode JSON note: %w", err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		if err == nil {
			err = errors.New("more than one value")
		}
		return NoteRequest{}, fmt.Errorf("decode JSON note: after the object: %w", err)
	}
	return NoteRequest{Text: in.Text, Internal: in.Internal}, nil
}

// readFormNote reads a multipart/form-data note (RFC 7578): at most one
// "text", at most one "internal" (true/false/1/0/on/off) and any number of
// files in "attachments", each read whole into memory (the body is already
// bounded) and hashed. A file input left empty by a browser (no name, no
// content) is skipped; any other field is refused, so that a misspelt one
// does not silently drop a file.
func readFormNote(body io.Reader, boundary string) (NoteRequest, error) {
	if boundary == "" {
		return NoteRequest{}, errBadRequest("multipart/form-data without a boundary parameter")
	}
	var n NoteRequest
	seen := map[string]bool{}
	mr := multipart.NewReader(body, boundary)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return NoteRequest{}, fmt.Errorf("read form part: %w", err)
		}
		name := part.FormName()
		data, err := io.ReadAll(part)
		if err != nil {
			return NoteRequest{}, fmt.Errorf("read form field %q: %w", name, err)
		}
		switch name {
		case "text", "internal":
			if seen[name] {
				return NoteRequest{}, errBadRequest("form field %q given twice", name)
			}
			seen[name] = true
			if !utf8.Valid(data) {
				return NoteRequest{}, errBadRequest("form field %q is not UTF-8", name)
			}
			if name == "text" {
				n.Text = string(data)
				continue
			}
			if n.Internal, err = parseFormBool(string(data)); err != nil {
				return NoteRequest{}, err
			}
		case "attachments":
			filename := part.FileName()
			if filename == "" && len(data) == 0 {
				continue
			}
			sum := sha256.Sum256(data)
			n.Attachments = append(n.Attachments, ticket.Attachment{
				Filename:    cleanFilename(filename),
				ContentType: contentType(part.Header.Get("Content-Type")),
				Size:        int64(len(data)),
				SHA256:      hex.EncodeToString(sum[:]),
				Data:        data,
			})
		default:
			return NoteRequest{}, errBadRequest("unknown form field %q: want text, internal or attachments", name)
		}
	}
}

// parseFormBool reads the internal flag as strconv.ParseBool does, plus
// "on"/"off" (an HTML checkbox) and "" (false).
func parseFormBool(v string) (bool, error) {
	switch v = strings.ToLower(strings.TrimSpace(v)); v {
	case "", "off":
		return false, nil
	case "on":
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errBadRequest("form field \"internal\" %q: want true or false", v)
	}
	return b, nil
}

// cleanFilename makes an uploaded file's name safe to store and to offer
// for download: the base name only (after the last / or \), invalid UTF-8
// replaced, control and format characters (such as a right-to-left
// override) removed, surrounding space trimmed, at most 255 bytes with the
// extension kept; "attachment" when nothing usable is left.
func cleanFilename(name string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if ticket.HiddenRune(r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." {
		return "attachment"
	}
	if len(name) <= maxFilenameBytes {
		return name
	}
	ext := path.Ext(name)
	if len(ext) > 32 || len(ext) == len(name) {
		ext = ""
	}
	return ticket.TruncateUTF8(name[:len(name)-len(ext)], maxFilenameBytes-len(ext)) + ext
}

// setStatus closes or reopens a ticket and answers it as GET does.
func (s *server) setStatus(status ticket.Status) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		key := r.PathValue("key")
		number, err := pathID(r, "number")
		if err != nil {
			return err
		}
		ref := ticket.FormatRef(key, number)
		t, err := s.b.SetStatus(r.Context(), key, number, status)
		if err != nil {
			return fmt.Errorf("set status of %s to %s: %w", ref, status, err)
		}
		s.log.InfoContext(r.Context(), "ticket status set", "ticket", ref, "status", status,
			"token", TokenName(r.Context()), "request_id", infoFrom(r.Context()).id)
		s.writeJSON(w, r, http.StatusOK, TicketJSON(t))
		return nil
	}
}
