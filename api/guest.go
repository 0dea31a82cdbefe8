package api

import (
	"mime"
	"net/http"
	"strings"

	"github.com/servicedesk/servicedesk/ticket"
)

// What a guest sees, in one place:
//   - no internal message, nor anything of one (its text, its addresses,
//     its attachments: asking for one is answered 404 as for a missing one);
//   - every address obfuscated in every field, on the typed values before
//     they are encoded (RedactText), and once more over the encoded answer
//     (Redact in writeJSON);
//   - no attachment whose content could show an address: text, mail,
//     delivery reports, HTML, XML, JSON and anything that sniffs as text are
//     refused with 403; images, PDFs, office files and other binary files
//     are served as they are.

// isGuest reports whether the request's token sees the guest view: any
// role below agent.
func isGuest(r *http.Request) bool { return infoFrom(r.Context()).role < RoleAgent }

// guestTicket returns t as a guest may see it: internal messages left
// out, every address obfuscated. t is not changed.
func guestTicket(t ticket.Ticket) ticket.Ticket {
	t.Subject = RedactText(t.Subject)
	t.Requester = RedactText(t.Requester)
	t.Participants = redactList(t.Participants)
	var msgs []ticket.Message
	if t.Messages != nil {
		msgs = make([]ticket.Message, 0, len(t.Messages))
	}
	for _, m := range t.Messages {
		if m.Internal {
			continue
		}
		msgs = append(msgs, guestMessage(m))
	}
	t.Messages = msgs
	return t
}

// guestMessage returns m with every address obfuscated; m is not changed.
func guestMessage(m ticket.Message) ticket.Message {
	m.From = RedactText(m.From)
	m.To = redactList(m.To)
	m.Cc = redactList(m.Cc)
	m.Subject = RedactText(m.Subject)
	m.Text = RedactText(m.Text)
	m.HTML = RedactText(m.HTML)
	m.MessageID = RedactText(m.MessageID)
	m.InReplyTo = RedactText(m.InReplyTo)
	m.References = redactList(m.References)
	if m.Attachments != nil {
		atts := make([]ticket.Attachment, len(m.Attachments))
		for i, a := range m.Attachments {
			atts[i] = guestAttachment(a)
		}
		m.Attachments = atts
	}
	return m
}

// guestAttachment returns a's metadata with its name (and any name in its
// content type's parameters) obfuscated.
func guestAttachment(a ticket.Attachment) ticket.Attachment {
	a.Filename = RedactText(a.Filename)
	a.ContentType = RedactText(a.ContentType)
	a.Data = nil
	return a
}

// redactList returns a copy of list with every entry redacted; nil stays nil.
func redactList(list []string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = RedactText(s)
	}
	return out
}

// guestAttachmentOf finds attachment id among the messages of t that a
// guest may see; ok is false when there is none or it belongs to an
// internal message.
func guestAttachmentOf(t ticket.Ticket, id int64) (ticket.Attachment, bool) {
	for _, m := range t.Messages {
		for _, a := range m.Attachments {
			if a.ID == id {
				return a, !m.Internal
			}
		}
	}
	return ticket.Attachment{}, false
}

// errAgentsOnlyType answers a guest asking for an attachment whose content
// could show addresses.
var errAgentsOnlyType = &apiError{http.StatusForbidden, "forbidden",
	"this attachment type is for agents: text, mail and report attachments can show addresses"}

// textualTypes are media types, besides text/*, message/* and multipart/*
// and the +xml and +json suffixes, whose content is text that can show
// addresses.
var textualTypes = map[string]bool{
	"application/json":                  true,
	"application/xml":                   true,
	"application/javascript":            true,
	"application/ecmascript":            true,
	"application/x-javascript":          true,
	"application/x-www-form-urlencoded": true,
	"application/mbox":                  true,
	"application/vcard":                 true,
	"application/ics":                   true,
	"application/rtf":                   true,
	"application/x-sh":                  true,
	"application/postscript":            true,
	"application/pgp-keys":              true,
	"application/pgp-signature":         true,
	"application/pkcs7-signature":       true, // S/MIME signatures carry certificates with addresses
	"application/x-pkcs7-signature":     true,
	"application/pkcs7-mime":            true,
	"application/x-pkcs7-mime":          true,
}

// guestMayDownloadType reports whether a guest may download an attachment
// labelled contentType: false for text, mail and delivery reports
// (text/*, message/*, multipart/*, */*delivery-status*, */*rfc822*) and
// other textual types. An unparsable label is judged by the content alone.
func guestMayDownloadType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return true // application/octet-stream; guestMayDownloadContent decides
	}
	top, sub, _ := strings.Cut(mt, "/")
	switch {
	case top == "text", top == "message", top == "multipart":
		return false
	case strings.Contains(sub, "delivery-status"), strings.Contains(sub, "rfc822"),
		strings.Contains(sub, "disposition-notification"):
		return false
	case strings.HasSuffix(sub, "+xml"), strings.HasSuffix(sub, "+json"):
		return false
	}
	return !textualTypes[mt]
}

// guestMayDownloadContent reports whether data, whatever its label, is
// binary: content that sniffs as text (http.DetectContentType: text/plain,
// text/html, text/xml, application/postscript, ...) could show addresses
// and is refused.
func guestMayDownloadContent(data []byte) bool {
	if len(data) == 0 {
		return true
	}
	return guestMayDownloadType(http.DetectContentType(data))
}
