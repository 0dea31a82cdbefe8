package notify

import (
	"cmp"
	"fmt"
	"html"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/servicedesk/servicedesk/ticket"
)

// Template is the body of one kind of notification, in GitLab Service
// Desk's style: plain text with placeholders %{NAME} (spaces inside the
// braces are allowed, %{ TICKET_REF }):
//
//	TICKET_REF          acme#12
//	TICKET_ID           12 (the ticket's number within the project)
//	TICKET_URL          the recipient's signed link to the ticket's page
//	                    (Project.Links), "" without a public URL
//	TICKET_DESCRIPTION  the text of the customer's first message
//	NOTE_TEXT           the text of the note being mailed ("" for other kinds)
//	PROJECT_NAME        the project's name
//	UNSUBSCRIBE_URL     the recipient's one-click unsubscribe link (RFC 8058),
//	                    "" without a public URL
//
// GitLab Service Desk's names work too, so the templates of a GitLab
// project's .gitlab/service_desk_templates can be used unchanged (their
// Markdown is sent as the text it is):
//
//	ISSUE_ID            #12 (GitLab writes the IID with its #)
//	ISSUE_PATH          acme#12, as TICKET_REF
//	ISSUE_URL           as TICKET_URL
//	ISSUE_DESCRIPTION   as TICKET_DESCRIPTION
//	SYSTEM_HEADER       mail.system_header of the configuration ("" unset)
//	SYSTEM_FOOTER       mail.system_footer ("" unset)
//	ADDITIONAL_TEXT     the project's additional_text ("" unset)
//
// A line whose placeholders all render empty is dropped, so
// "Follow it at %{TICKET_URL}" disappears when there is no public URL;
// SYSTEM_HEADER, SYSTEM_FOOTER and ADDITIONAL_TEXT only drop a line they
// are alone on.
// An unknown placeholder is an error.
type Template struct {
	// Text is the text/plain part.
	Text string
	// HTML is the text/html part; values are HTML-escaped into it. When
	// empty, the HTML part is derived from Text (escaped, paragraphs, the
	// ticket URL as a link).
	HTML string
}

// Validate reports unknown placeholders, so configuration can be checked at
// load time rather than at the first send.
func (t Template) Validate() error {
	for _, s := range []string{t.Text, t.HTML} {
		for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
			if !slices.Contains(placeholders, m[1]) {
				return fmt.Errorf("unknown placeholder %q", m[0])
			}
		}
	}
	return nil
}

var placeholders = []string{
	"TICKET_REF", "TICKET_ID", "TICKET_URL", "TICKET_DESCRIPTION",
	"NOTE_TEXT", "PROJECT_NAME", "UNSUBSCRIBE_URL",
	"ISSUE_ID", "ISSUE_PATH", "ISSUE_URL", "ISSUE_DESCRIPTION",
	"SYSTEM_HEADER", "SYSTEM_FOOTER", "ADDITIONAL_TEXT",
}

var placeholderRE = regexp.MustCompile(`%\{\s*([A-Za-z0-9_]+)\s*\}`)

// kindSpec is how one kind of notification is sent.
type kindSpec struct {
	// autoSubmitted is the RFC 3834 Auto-Submitted value.
	autoSubmitted string
	// bulk adds "Precedence: bulk": only for status notices, never for
	// mail addressed to one person about their request (thank-you, note).
	bulk bool
	// needsMessage says the notification's MessageID must name a message
	// on the ticket (the customer's mail, the note).
	needsMessage bool
	// private says the mail goes to someone who did not write to the desk
	// (an address a customer put in Cc): it carries none of the ticket's
	// text, not even its subject, so a Cc list cannot turn the desk into
	// a relay for whatever a stranger writes.
	private bool
	tmpl    Template
}

// ValidateFor checks t as the template of kind: its placeholders are
// known, and a private kind (new_participant) uses none that carry the
// ticket's text (TICKET_DESCRIPTION, NOTE_TEXT).
func (t Template) ValidateFor(kind ticket.NotificationKind) error {
	if err := t.Validate(); err != nil {
		return err
	}
	spec, ok := kindSpecFor(kind)
	if !ok {
		return fmt.Errorf("unknown notification kind %q", kind)
	}
	if !spec.private {
		return nil
	}
	for _, s := range []string{t.Text, t.HTML} {
		for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
			if m[1] == "TICKET_DESCRIPTION" || m[1] == "ISSUE_DESCRIPTION" || m[1] == "NOTE_TEXT" {
				return fmt.Errorf("placeholder %q is not allowed in %s: it goes to an address a customer put in Cc, "+
					"so it carries none of the ticket's text", m[0], kind)
			}
		}
	}
	return nil
}

// kindSpecFor is the kind -> template table. Adding a kind is adding a case.
func kindSpecFor(k ticket.NotificationKind) (kindSpec, bool) {
	switch k {
	case ticket.NotifyThankYou:
		return kindSpec{autoSubmitted: "auto-replied", needsMessage: true, tmpl: Template{Text: thankYouText}}, true
	case ticket.NotifyNote:
		return kindSpec{autoSubmitted: "auto-generated", needsMessage: true, tmpl: Template{Text: noteText}}, true
	case ticket.NotifyNewParticipant:
		return kindSpec{autoSubmitted: "auto-generated", bulk: true, private: true, tmpl: Template{Text: newParticipantText}}, true
	case ticket.NotifyClosed:
		return kindSpec{autoSubmitted: "auto-generated", bulk: true, tmpl: Template{Text: closedText}}, true
	case ticket.NotifyReopened:
		return kindSpec{autoSubmitted: "auto-generated", bulk: true, tmpl: Template{Text: reopenedText}}, true
	case ticket.NotifyRelay:
		return kindSpec{autoSubmitted: "auto-generated", needsMessage: true, tmpl: Template{Text: relayText}}, true
	case ticket.NotifyAgent:
		return kindSpec{autoSubmitted: "auto-generated", needsMessage: true, tmpl: Template{Text: agentText}}, true
	}
	return kindSpec{}, false
}

const thankYouText = `Hello,

thank you for contacting %{PROJECT_NAME}. We have received your request and opened ticket %{TICKET_REF} for it. We will get back to you as soon as we can.

If you want to add anything, simply reply to this email.

You can follow your request at %{TICKET_URL}

Your request:

%{TICKET_DESCRIPTION}

-- 
%{PROJECT_NAME}
`

const noteText = `%{NOTE_TEXT}

-- 
%{PROJECT_NAME} · %{TICKET_REF}
To answer, simply reply to this email.
%{TICKET_URL}
`

const newParticipantText = `Hello,

you were copied on a message to %{PROJECT_NAME} about request %{TICKET_REF}, and have been added to it. You will receive the replies on it; to add anything, simply reply to this email.

If you do not know what this is about, you can ignore this email.

-- 
%{PROJECT_NAME}
`

const closedText = `Hello,

your request %{TICKET_REF} has been closed. If you still need help with it, simply reply to this email and it will be reopened.

-- 
%{PROJECT_NAME}
`

const reopenedText = `Hello,

your request %{TICKET_REF} has been reopened. We will get back to you as soon as we can.

-- 
%{PROJECT_NAME}
`

// relayText passes a customer's reply on to the other participants; its
// NOTE_TEXT is the reply, after a line naming its sender (relayNote).
const relayText = `%{NOTE_TEXT}

-- 
%{PROJECT_NAME} · %{TICKET_REF}
To answer, simply reply to this email.
%{TICKET_URL}
`

// agentText tells an agent of a new ticket or a customer's reply; its
// NOTE_TEXT says which, from whom, the text and the ticket's API address
// (agentNote).
const agentText = `%{NOTE_TEXT}

-- 
%{PROJECT_NAME} · %{TICKET_REF}
`

// maxDescription caps TICKET_DESCRIPTION, in bytes.
const maxDescription = 8000

// cutDescription cuts s to maxDescription bytes, at the start of a
// character, and says so.
func cutDescription(s string) string {
	if len(s) <= maxDescription {
		return s
	}
	cut := maxDescription
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "\n[…]"
}

// values are the placeholder values of one notification.
type values map[string]string

func ticketValues(p Project, t ticket.Ticket, ref, noteText, description string) values {
	description = cutDescription(description)
	v := values{
		"TICKET_REF":         ref,
		"TICKET_ID":          strconv.FormatInt(t.Number, 10),
		"TICKET_URL":         "",
		"TICKET_DESCRIPTION": strings.TrimSpace(description),
		"NOTE_TEXT":          strings.TrimSpace(noteText),
		"PROJECT_NAME":       p.Name,
		"UNSUBSCRIBE_URL":    "",
	}
	return withGitLabNames(v, p)
}

// expandMode says how literal template text and values are written.
type expandMode int

const (
	modeText        expandMode = iota // as is
	modeHTML                          // literal is HTML, values escaped
	modeDerivedHTML                   // literal and values escaped, TICKET_URL linked
)

// expand renders tmpl with v line by line, dropping lines whose
// placeholders all render empty and collapsing the blank lines that leaves.
func expand(tmpl string, v values, mode expandMode) (string, error) {
	var out []string
	for line := range strings.SplitSeq(strings.ReplaceAll(tmpl, "\r\n", "\n"), "\n") {
		matches := placeholderRE.FindAllStringSubmatchIndex(line, -1)
		if len(matches) == 0 {
			out = append(out, literal(line, mode))
			continue
		}
		var b strings.Builder
		empty, last, regular := true, 0, false
		for _, m := range matches {
			name := line[m[2]:m[3]]
			val, ok := v[name]
			if !ok {
				return "", fmt.Errorf("unknown placeholder %q", line[m[0]:m[1]])
			}
			if val != "" {
				empty = false
			}
			regular = regular || !decoration(name)
			b.WriteString(literal(line[last:m[0]], mode))
			b.WriteString(value(name, val, mode))
			last = m[1]
		}
		// Only the configured decorations (header, footer, additional
		// text) on a line of text: the text stays when they are unset.
		if empty && (regular || strings.TrimSpace(placeholderRE.ReplaceAllString(line, "")) == "") {
			continue
		}
		b.WriteString(literal(line[last:], mode))
		out = append(out, b.String())
	}
	// Collapse runs of blank lines and trim them at both ends.
	var res []string
	for _, l := range out {
		if strings.TrimSpace(l) == "" && (len(res) == 0 || strings.TrimSpace(res[len(res)-1]) == "") {
			continue
		}
		res = append(res, l)
	}
	for len(res) > 0 && strings.TrimSpace(res[len(res)-1]) == "" {
		res = res[:len(res)-1]
	}
	return strings.Join(res, "\n") + "\n", nil
}

func literal(s string, mode expandMode) string {
	if mode == modeDerivedHTML {
		return html.EscapeString(s)
	}
	return s
}

func value(name, val string, mode expandMode) string {
	switch {
	case mode == modeText:
		return val
	case mode == modeDerivedHTML && isLink(name) && val != "":
		e := html.EscapeString(val)
		return `<a href="` + e + `">` + e + `</a>`
	}
	return html.EscapeString(val)
}

// derivedHTML turns escaped text into paragraphs.
func derivedHTML(escaped string) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n")
	for para := range strings.SplitSeq(strings.TrimSpace(escaped), "\n\n") {
		para = strings.Trim(para, "\n")
		if para == "" {
			continue
		}
		b.WriteString("<p>")
		b.WriteString(strings.ReplaceAll(para, "\n", "<br>\n"))
		b.WriteString("</p>\n")
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// renderBody gives the text and HTML parts of tmpl.
func renderBody(tmpl Template, v values) (text, htmlPart string, err error) {
	text, err = expand(tmpl.Text, v, modeText)
	if err != nil {
		return "", "", fmt.Errorf("text template: %w", err)
	}
	if tmpl.HTML != "" {
		htmlPart, err = expand(tmpl.HTML, v, modeHTML)
		if err != nil {
			return "", "", fmt.Errorf("html template: %w", err)
		}
		return text, htmlPart, nil
	}
	escaped, err := expand(tmpl.Text, v, modeDerivedHTML)
	if err != nil {
		return "", "", fmt.Errorf("text template: %w", err)
	}
	return text, derivedHTML(escaped), nil
}

// replyPrefixRE matches one reply or forward prefix, in the languages mail
// clients commonly use: Re, Fwd, Fw, AW, WG, SV, VS, Antw, TR, with an
// optional counter (Re[2]:, Re(2):).
var replyPrefixRE = regexp.MustCompile(`(?i)^\s*(re|fwd?|aw|wg|sv|vs|antw|tr)\s*(\[\d+\]|\(\d+\))?\s*:\s*`)

// Subject gives the subject of a notification: the ticket reference in
// brackets, then the original subject without its reply prefixes and
// without any copy of the tag: "[acme#12] Printer on fire".
func Subject(ref, original string) string {
	tag := regexp.MustCompile(`(?i)\[\s*` + regexp.QuoteMeta(ref) + `\s*\]`)
	s := original
	for {
		before := s
		s = replyPrefixRE.ReplaceAllString(s, "")
		s = tag.ReplaceAllString(s, " ")
		s = strings.TrimSpace(s)
		if s == before {
			break
		}
	}
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		s = "(no subject)"
	}
	return "[" + ref + "] " + s
}

// outgoing is a rendered notification, ready to become a go-mail Msg.
type outgoing struct {
	FromName, From string
	To             string
	ReplyTo        string
	Subject        string
	MessageID      string // with angle brackets
	InReplyTo      string // with angle brackets, or ""
	References     []string
	Headers        [][2]string // extra headers, in order
	Text, HTML     string
}

// maxReferences bounds the References header (RFC 5322 3.6.4 allows
// trimming; the first and the last entries matter most).
const maxReferences = 20

// render builds the mail for notification n of ticket t. Every error is a
// rendering problem no retry can fix.
func render(p Project, keys *ticket.ReplyKeys, tmpls map[ticket.NotificationKind]Template, n ticket.Notification, t ticket.Ticket) (*outgoing, error) {
	spec, ok := kindSpecFor(n.Kind)
	if !ok {
		return nil, fmt.Errorf("unknown notification kind %q", n.Kind)
	}
	if o, ok := tmpls[n.Kind]; ok {
		if o.Text != "" {
			spec.tmpl.Text = o.Text
		}
		spec.tmpl.HTML = o.HTML
	}
	to, err := mail.ParseAddress(n.To)
	if err != nil {
		return nil, fmt.Errorf("recipient %q: %w", n.To, err)
	}
	from, err := mail.ParseAddress(p.Address)
	if err != nil {
		return nil, fmt.Errorf("project address %q: %w", p.Address, err)
	}
	mid := n.MailID
	if !validMsgID(mid) {
		return nil, fmt.Errorf("notification Message-ID %q is not <local@domain>", mid)
	}

	var about *ticket.Message
	if n.MessageID != 0 {
		i := slices.IndexFunc(t.Messages, func(m ticket.Message) bool { return m.ID == n.MessageID })
		if i >= 0 {
			about = &t.Messages[i]
		}
	}
	if spec.needsMessage && about == nil {
		return nil, fmt.Errorf("message %d of %s notification is not on ticket %d", n.MessageID, n.Kind, t.ID)
	}

	ref := cmp.Or(t.Ref, ticket.FormatRef(p.Key, t.Number))
	description := ""
	if first := firstCustomerMessage(t); first != nil && !spec.private {
		description = first.Text
	}
	note := ""
	switch n.Kind {
	case ticket.NotifyNote:
		note = about.Text
	case ticket.NotifyRelay:
		note = relayNote(about)
	case ticket.NotifyAgent:
		note = agentNote(p, t, ref, about)
	}
	v := ticketValues(p, t, ref, note, description)
	setLinks(v, p, t, to.Address, spec.private)
	text, htmlPart, err := renderBody(spec.tmpl, v)
	if err != nil {
		return nil, err
	}

	key := keys.Sign(p.Key, t.ID)
	out := &outgoing{
		FromName:  p.Name,
		From:      from.Address,
		To:        to.Address,
		ReplyTo:   ticket.ReplyAddress(from.Address, key),
		Subject:   Subject(ref, t.Subject),
		MessageID: mid,
		Text:      text,
		HTML:      htmlPart,
	}
	if spec.private {
		out.Subject = fmt.Sprintf("[%s] You were added to a request to %s", ref, cmp.Or(p.Name, p.Address))
	}
	if n.Kind == ticket.NotifyAgent {
		out.Subject = agentSubject(ref, t, about)
	}
	refs := []string{ticket.ReplyReference(from.Address, key)}
	if parent := parentMessage(t, about); parent != nil {
		out.InReplyTo = parent.MessageID
		for _, r := range append(slices.Clone(parent.References), parent.MessageID) {
			if validMsgID(r) && !slices.Contains(refs, r) && r != mid {
				refs = append(refs, r)
			}
		}
	}
	if len(refs) > maxReferences {
		// keep the reply reference and the root, then the most recent
		refs = append(refs[:2:2], refs[len(refs)-(maxReferences-2):]...)
	}
	out.References = refs
	out.Headers = append(out.Headers,
		[2]string{"Auto-Submitted", spec.autoSubmitted},
		[2]string{"X-Auto-Response-Suppress", "All"},
		[2]string{"X-Loop", from.Address},
	)
	if spec.bulk {
		out.Headers = append(out.Headers, [2]string{"Precedence", "bulk"})
	}
	out.Headers = append(out.Headers, listUnsubscribe(p, t, to.Address)...)
	return out, nil
}

func validMsgID(id string) bool {
	return len(id) > 4 && id[0] == '<' && id[len(id)-1] == '>' &&
		strings.Contains(id, "@") && !strings.ContainsAny(id[1:len(id)-1], " \t\r\n<>")
}

// firstCustomerMessage is the ticket's first inbound email: the request.
func firstCustomerMessage(t ticket.Ticket) *ticket.Message {
	var first *ticket.Message
	for i := range t.Messages {
		m := &t.Messages[i]
		if m.Direction != ticket.DirectionInbound || m.Kind != ticket.KindEmail {
			continue
		}
		if first == nil || m.CreatedAt.Before(first.CreatedAt) {
			first = m
		}
	}
	return first
}

// parentMessage is the message our mail answers: the message it is about
// when that is a customer's mail, else the latest customer mail.
func parentMessage(t ticket.Ticket, about *ticket.Message) *ticket.Message {
	if about != nil && about.Direction == ticket.DirectionInbound && validMsgID(about.MessageID) {
		return about
	}
	var latest *ticket.Message
	for i := range t.Messages {
		m := &t.Messages[i]
		if m.Direction != ticket.DirectionInbound || !validMsgID(m.MessageID) {
			continue
		}
		if latest == nil || !m.CreatedAt.Before(latest.CreatedAt) {
			latest = m
		}
	}
	return latest
}

// relayNote is the NOTE_TEXT of a relayed reply: who wrote it, then what.
func relayNote(reply *ticket.Message) string {
	return cmp.Or(reply.From, "A participant") + " wrote:\n\n" + strings.TrimSpace(reply.Text)
}

// isFirstMessage reports whether m is the message that opened t.
func isFirstMessage(t ticket.Ticket, m *ticket.Message) bool {
	first := firstCustomerMessage(t)
	return first != nil && first.ID == m.ID
}

// agentSubject is the subject of an agent's notice: what happened, then
// the ticket's.
func agentSubject(ref string, t ticket.Ticket, about *ticket.Message) string {
	what := "Reply from " + cmp.Or(about.From, "a customer")
	if isFirstMessage(t, about) {
		what = "New ticket from " + cmp.Or(about.From, "a customer")
	}
	tag := "[" + ref + "] "
	return tag + what + ": " + strings.TrimPrefix(Subject(ref, t.Subject), tag)
}

// agentNote is the NOTE_TEXT of an agent's notice of message about on
// ticket t: what happened and from whom, the text (cut like a
// description), and where the ticket is in the API.
func agentNote(p Project, t ticket.Ticket, ref string, about *ticket.Message) string {
	what := "New ticket " + ref
	if !isFirstMessage(t, about) {
		what = "Reply on " + ref
	}
	text := cutDescription(strings.TrimSpace(about.Text))
	path := "/api/v1/projects/" + p.Key + "/tickets/" + strconv.FormatInt(t.Number, 10)
	return fmt.Sprintf("%s from %s\nSubject: %s\n\n%s\n\nTicket: %s%s",
		what, cmp.Or(about.From, "(unknown sender)"), t.Subject, text, strings.TrimRight(p.PublicURL, "/"), path)
}
