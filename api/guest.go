package api

import (
	"bytes"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/servicedesk/servicedesk/ticket"
)

// What a guest sees, in one place:
//   - no internal message, nor anything of one (its text, its addresses,
//     its attachments: asking for one is answered 404 as for a missing one;
//     its time: a ticket's updated_at is that of its newest public message);
//   - every address obfuscated in every field, on the typed values before
//     they are encoded (RedactText), and once more over the encoded answer
//     (Redact in writeJSON);
//   - of a message's text and HTML, at most GuestBodyLimit bytes each, cut
//     before redaction so that the work a guest's request causes is bounded
//     whatever a stranger mailed in;
//   - only attachments of the types in guestAllowedTypes, whose content
//     does not sniff as text and whose name has no textual or mail
//     extension (guestMayDownload); everything else, mail containers and
//     unlabelled or unknown binary files included, is refused with 403.

// GuestBodyLimit is the most of a message's text, and of its HTML, that a
// guest is shown: 256 KiB each, cut at a character boundary and followed
// by GuestCutMarker. Agents always get the whole message.
const GuestBodyLimit = 256 << 10

// GuestCutMarker ends a message body cut for a guest.
const GuestCutMarker = "\n[… cut for guests; an agent sees the whole message]"

// isGuest reports whether the request's token sees the guest view: any
// role below agent.
func isGuest(r *http.Request) bool { return infoFrom(r.Context()).role < RoleAgent }

// guestTicket returns t as a guest may see it: internal messages left
// out, every address obfuscated, long bodies cut, and updated_at the time
// of the newest message the guest sees (created_at when there is none), so
// that adding an internal note does not show. t is not changed.
//
// A ticket of a list comes without messages (Backend.Tickets); its
// updated_at could be moved by an internal note, and the Backend offers no
// cheaper way to the newest public message than loading every listed ticket
// with its messages (up to MaxPerPage of them per request), so a guest's
// list shows created_at as updated_at: it never tells of internal activity,
// and GET of the ticket gives the true time.
func guestTicket(t ticket.Ticket) ticket.Ticket {
	t.Subject = RedactText(t.Subject)
	t.Requester = RedactText(t.Requester)
	t.Participants = redactList(t.Participants)
	t.Unsubscribed = redactList(t.Unsubscribed)
	t.UpdatedAt = t.CreatedAt
	var msgs []ticket.Message
	if t.Messages != nil {
		msgs = make([]ticket.Message, 0, len(t.Messages))
	}
	for _, m := range t.Messages {
		if m.Internal {
			continue
		}
		if m.CreatedAt.After(t.UpdatedAt) {
			t.UpdatedAt = m.CreatedAt
		}
		msgs = append(msgs, guestMessage(m))
	}
	t.Messages = msgs
	return t
}

// guestMessage returns m with every address obfuscated and its text and
// HTML cut to GuestBodyLimit; m is not changed.
func guestMessage(m ticket.Message) ticket.Message {
	m.From = RedactText(m.From)
	m.To = redactList(m.To)
	m.Cc = redactList(m.Cc)
	m.Subject = RedactText(m.Subject)
	m.Text = RedactText(cutForGuest(m.Text))
	m.HTML = RedactText(cutForGuest(m.HTML))
	m.FullText = RedactText(cutForGuest(m.FullText))
	m.MessageID = RedactText(m.MessageID)
	m.InReplyTo = RedactText(m.InReplyTo)
	m.References = redactList(m.References)
	if m.Delivery != nil {
		ds := make([]ticket.Recipient, len(m.Delivery))
		for i, r := range m.Delivery {
			r.To, r.Reason, r.MessageID = RedactText(r.To), RedactText(r.Reason), RedactText(r.MessageID)
			ds[i] = r
		}
		m.Delivery = ds
	}
	if m.Attachments != nil {
		atts := make([]ticket.Attachment, len(m.Attachments))
		for i, a := range m.Attachments {
			atts[i] = guestAttachment(a)
		}
		m.Attachments = atts
	}
	return m
}

// cutForGuest returns s cut to GuestBodyLimit bytes, at the start of a
// character, with GuestCutMarker after it; s when it is not longer.
func cutForGuest(s string) string {
	if len(s) <= GuestBodyLimit {
		return s
	}
	n := GuestBodyLimit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + GuestCutMarker
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
	"this attachment type is for agents: guests get images, PDFs, office documents, zip archives, audio and video"}

// guestAllowedTypes are the media types a guest may download: binary
// formats that do not show an address in clear text when opened as they
// are (images but SVG, PDF, office documents, zip archives, audio and
// video). Everything else is refused, text, mail (message/*, Outlook's
// .msg, TNEF's winmail.dat), delivery reports, certificates and unknown
// types alike. PDFs and office documents can hold addresses in their
// compressed text; they stay downloadable, as the README says.
var guestAllowedTypes = map[string]bool{
	"image/png": true, "image/x-png": true, "image/jpeg": true, "image/jpg": true, "image/pjpeg": true,
	"image/gif": true, "image/webp": true, "image/heic": true, "image/heif": true, "image/avif": true,
	"image/bmp": true, "image/x-ms-bmp": true, "image/tiff": true,
	"application/pdf":    true,
	"application/msword": true, "application/vnd.ms-excel": true, "application/vnd.ms-powerpoint": true,
	"application/zip": true, "application/x-zip-compressed": true,
	"application/ogg": true,
}

// guestAllowedPrefixes extend guestAllowedTypes: audio and video, and the
// office families (OOXML, OpenDocument, the macro-enabled Office types).
// application/vnd.ms-outlook and application/vnd.ms-tnef match none.
var guestAllowedPrefixes = []string{
	"audio/", "video/",
	"application/vnd.openxmlformats-officedocument.",
	"application/vnd.oasis.opendocument.",
	"application/vnd.ms-word.", "application/vnd.ms-excel.", "application/vnd.ms-powerpoint.",
}

// guestRefusedNames are file extensions (and whole names) refused to a
// guest whatever the type: text, web pages, mail and mail containers,
// contacts, calendars, certificates. A browser or mail program opens a
// file by its name, so a .msg labelled application/msword is still mail.
var guestRefusedNames = map[string]bool{
	".txt": true, ".text": true, ".log": true, ".csv": true, ".tsv": true, ".md": true, ".rtf": true,
	".html": true, ".htm": true, ".xhtml": true, ".mht": true, ".mhtml": true, ".svg": true, ".svgz": true,
	".xml": true, ".json": true, ".js": true,
	".eml": true, ".emlx": true, ".msg": true, ".oft": true, ".mbox": true, ".mbx": true, ".tnef": true,
	".vcf": true, ".vcard": true, ".ics": true, ".ical": true,
	".p7m": true, ".p7s": true, ".p7c": true, ".pem": true, ".asc": true,
	"winmail.dat": true,
}

// guestTypeVerdict is what a label says about an attachment for a guest.
type guestTypeVerdict int

const (
	typeRefused guestTypeVerdict = iota
	typeAllowed                  // in guestAllowedTypes: served unless its content or name says otherwise
	typeBySniff                  // application/octet-stream or no valid label: the content decides
)

// guestTypeRule judges a media type label.
func guestTypeRule(contentType string) guestTypeVerdict {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt == "application/octet-stream" {
		return typeBySniff
	}
	if guestAllowedTypes[mt] {
		return typeAllowed
	}
	for _, p := range guestAllowedPrefixes {
		if strings.HasPrefix(mt, p) && !strings.HasSuffix(mt, "+xml") && !strings.HasSuffix(mt, "+json") {
			return typeAllowed
		}
	}
	return typeRefused
}

// guestMayDownloadType reports whether a guest may download an attachment
// labelled contentType and named name, before its content is read: its
// name is not refused (guestRefusedNames), and its type is allowed or is
// application/octet-stream (or no valid label), which the content decides
// (guestMayDownload).
func guestMayDownloadType(name, contentType string) bool {
	return guestNameAllowed(name) && guestTypeRule(contentType) != typeRefused
}

// guestNameAllowed reports whether name's extension, or the name itself,
// is not in guestRefusedNames. Case, and trailing dots and spaces (which
// Windows drops), do not matter.
func guestNameAllowed(name string) bool {
	name = strings.ToLower(strings.TrimRight(name, ". "))
	if guestRefusedNames[name] {
		return false
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 && guestRefusedNames[name[i:]] {
		return false
	}
	return true
}

// guestMayDownload reports whether a guest may download the attachment
// named name, labelled contentType, with content data:
//   - its name and label pass guestMayDownloadType;
//   - the content is not a mail container whatever its label (TNEF's
//     signature; an Outlook .msg, a compound file with __substg1.0_
//     streams);
//   - with an allowed label, the content does not sniff as text
//     (http.DetectContentType: text/plain, text/html, text/xml,
//     application/postscript);
//   - labelled application/octet-stream or not validly labelled, the
//     content sniffs as an allowed type (a PNG, a PDF, a zip, ...): a
//     binary file nobody can identify is refused.
func guestMayDownload(name, contentType string, data []byte) bool {
	if !guestMayDownloadType(name, contentType) || isMailContainer(data) {
		return false
	}
	sniffed := http.DetectContentType(data)
	if guestTypeRule(contentType) == typeBySniff {
		return len(data) == 0 || guestTypeRule(sniffed) == typeAllowed
	}
	mt, _, _ := mime.ParseMediaType(sniffed)
	return !strings.HasPrefix(mt, "text/") && mt != "application/postscript"
}

var (
	tnefSignature = []byte{0x78, 0x9f, 0x3e, 0x22}
	cfbSignature  = []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}
	// msgStreamName is "__substg1.0_" in UTF-16LE, the prefix of the
	// property streams of an Outlook message in its compound file.
	msgStreamName = []byte("_\x00_\x00s\x00u\x00b\x00s\x00t\x00g\x001\x00.\x000\x00_\x00")
)

// isMailContainer reports whether data is a TNEF file (winmail.dat) or an
// Outlook message (.msg), whatever it is called or labelled.
func isMailContainer(data []byte) bool {
	return bytes.HasPrefix(data, tnefSignature) ||
		bytes.HasPrefix(data, cfbSignature) && bytes.Contains(data, msgStreamName)
}
