package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	mail "github.com/wneessen/go-mail"

	"github.com/servicedesk/servicedesk/ticket"
)

// DefaultMaxAttachmentsSize is the default Options.MaxAttachmentsSize:
// 10 MB (10 << 20 bytes) of attachments in total, GitLab Service Desk's
// limit.
const DefaultMaxAttachmentsSize int64 = 10 << 20

// attachment is an attachment of a note with its content, to mail.
type attachment struct {
	meta ticket.Attachment
	data []byte
}

// attachments decides how the attachments of a note notification travel:
// natively when their total size is within the limit (returned with their
// content, checked against their SHA-256), else as a list of links added
// to out's text and HTML. Other kinds carry no attachments.
func (d *Deliverer) attachments(ctx context.Context, p Project, t ticket.Ticket, n ticket.Notification, out *outgoing) ([]attachment, error) {
	if n.Kind != ticket.NotifyNote {
		return nil, nil
	}
	i := slices.IndexFunc(t.Messages, func(m ticket.Message) bool { return m.ID == n.MessageID })
	if i < 0 || len(t.Messages[i].Attachments) == 0 {
		return nil, nil
	}
	atts := t.Messages[i].Attachments
	var total int64
	for _, a := range atts {
		total += a.Size
	}
	if d.maxAttach < 0 || total > d.maxAttach {
		addLinks(out, p, t, atts, total)
		return nil, nil
	}
	files := make([]attachment, 0, len(atts))
	for _, a := range atts {
		data, err := d.store.AttachmentData(ctx, a.SHA256)
		if err != nil {
			return nil, &Error{Step: "load attachment", Err: fmt.Errorf("attachment %d %q: %w", a.ID, a.Filename, err)}
		}
		if sum := sha256.Sum256(data); !strings.EqualFold(hex.EncodeToString(sum[:]), a.SHA256) {
			return nil, permanentf("load attachment", "attachment %d %q: content does not match its SHA-256 %s", a.ID, a.Filename, a.SHA256)
		}
		files = append(files, attachment{meta: a, data: data})
	}
	return files, nil
}

// attach adds files to m. go-mail streams each one from a reader over the
// blob into a base64 buffer of its part, so a send holds the blobs plus
// about 1.4 times the largest of them (and the whole encoded mail once
// more when DKIM signs it).
func attach(m *mail.Msg, files []attachment) {
	for _, f := range files {
		name := attachmentName(f.meta.Filename)
		m.AttachReadSeeker(name, bytes.NewReader(f.data), partHeaders(name, f.meta.ContentType))
	}
}

// partHeaders sets Content-Type (the stored type, with a name parameter)
// and Content-Disposition (attachment, with a filename) of an attachment
// part. A non-ASCII name is given twice: as RFC 2231 name*/filename* for
// standard parsers and as an RFC 2047 encoded word in name/filename for
// the clients that only know that (Outlook).
func partHeaders(name, contentType string) mail.FileOption {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt == "" || !strings.Contains(mt, "/") {
		mt, params = "application/octet-stream", map[string]string{}
	}
	delete(params, "name")
	ctParams := map[string]string{"name": name}
	if cs, ok := params["charset"]; ok {
		ctParams["charset"] = cs
	}
	ct := withEncodedWord(mime.FormatMediaType(mt, ctParams), "name", name)
	if ct == "" {
		ct = withEncodedWord(mime.FormatMediaType("application/octet-stream", map[string]string{"name": name}), "name", name)
	}
	cd := withEncodedWord(mime.FormatMediaType("attachment", map[string]string{"filename": name}), "filename", name)
	return func(f *mail.File) {
		f.Header.Set(string(mail.HeaderContentType), ct)
		f.Header.Set(string(mail.HeaderContentDisposition), cd)
	}
}

// withEncodedWord adds the RFC 2047 form of a non-ASCII value as param to
// a header value that carries it as RFC 2231 param*.
func withEncodedWord(v, param, value string) string {
	if v == "" || isASCII(value) {
		return v
	}
	return v + ";\r\n " + param + `="` + mime.BEncoding.Encode("utf-8", value) + `"` // folded: both forms of a long name may exceed a line
}

func isASCII(s string) bool {
	for _, r := range s {
		if r > unicode.MaxASCII {
			return false
		}
	}
	return true
}

// attachmentName makes a stored filename safe for a header: the last path
// element, without control characters, at most 200 bytes, never empty.
func attachmentName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	for len(name) > 200 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == ".." {
		return "attachment"
	}
	return name
}

// AttachmentURL is where a ticket's attachment can be downloaded:
// publicURL + "/api/v1/projects/{key}/tickets/{number}/attachments/{id}",
// "" without a public URL.
func AttachmentURL(publicURL, projectKey string, number, attachmentID int64) string {
	if publicURL == "" {
		return ""
	}
	return strings.TrimRight(publicURL, "/") + "/api/v1/projects/" + url.PathEscape(projectKey) +
		"/tickets/" + strconv.FormatInt(number, 10) + "/attachments/" + strconv.FormatInt(attachmentID, 10)
}

// addLinks lists attachments too large to mail in out's text and HTML,
// after the rendered template.
func addLinks(out *outgoing, p Project, t ticket.Ticket, atts []ticket.Attachment, total int64) {
	intro := fmt.Sprintf("The %d attached files (%s in total) were too large to send by email.", len(atts), humanSize(total))
	if p.PublicURL != "" {
		intro += " Download them here:"
	} else {
		intro += fmt.Sprintf(" They are on ticket %s:", t.Ref)
	}
	var text, h strings.Builder
	text.WriteString("\n" + intro + "\n")
	h.WriteString("<p>" + html.EscapeString(intro) + "</p>\n<ul>\n")
	for _, a := range atts {
		name := attachmentName(a.Filename)
		link := AttachmentURL(p.PublicURL, p.Key, t.Number, a.ID)
		if p.Links != nil {
			link = p.Links.AttachmentURL(p.Key, t.Number, a.ID, out.To)
		}
		label := fmt.Sprintf("%s (%s)", name, humanSize(a.Size))
		if link == "" {
			text.WriteString("- " + label + "\n")
			h.WriteString("<li>" + html.EscapeString(label) + "</li>\n")
			continue
		}
		text.WriteString("- " + label + ": " + link + "\n")
		h.WriteString(`<li><a href="` + html.EscapeString(link) + `">` + html.EscapeString(name) + "</a> (" +
			html.EscapeString(humanSize(a.Size)) + ")</li>\n")
	}
	h.WriteString("</ul>\n")
	out.Text = strings.TrimRight(out.Text, "\n") + "\n" + text.String()
	if i := strings.LastIndex(strings.ToLower(out.HTML), "</body>"); i >= 0 {
		out.HTML = out.HTML[:i] + h.String() + out.HTML[i:]
	} else {
		out.HTML += h.String()
	}
}

// humanSize writes a byte count for people: 512 B, 3.4 KB, 12.0 MB.
func humanSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
}
