package notify

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/servicedesk/servicedesk/ticket"
)

// withGitLabNames adds GitLab Service Desk's placeholders to v, as aliases
// of ours and from the project's configured texts.
func withGitLabNames(v values, p Project) values {
	v["ISSUE_ID"] = "#" + v["TICKET_ID"]
	v["ISSUE_PATH"] = v["TICKET_REF"]
	v["ISSUE_URL"] = v["TICKET_URL"]
	v["ISSUE_DESCRIPTION"] = v["TICKET_DESCRIPTION"]
	v["SYSTEM_HEADER"] = p.SystemHeader
	v["SYSTEM_FOOTER"] = p.SystemFooter
	v["ADDITIONAL_TEXT"] = p.AdditionalText
	return v
}

// isLink says which placeholders a derived HTML part makes a link of.
func isLink(name string) bool {
	switch name {
	case "TICKET_URL", "ISSUE_URL", "UNSUBSCRIBE_URL":
		return true
	}
	return false
}

// setLinks fills the recipient's signed links into v. A private kind
// (new_participant) gets no link to the ticket's page: it carries none of
// the ticket's text, and the page is all of it.
func setLinks(v values, p Project, t ticket.Ticket, recipient string, private bool) {
	if p.Links == nil {
		return
	}
	if !private {
		v["TICKET_URL"] = p.Links.TicketURL(p.Key, t.Number, recipient)
		v["ISSUE_URL"] = v["TICKET_URL"]
	}
	v["UNSUBSCRIBE_URL"] = p.Links.UnsubscribeURL(p.Key, t.Number, recipient)
}

// listUnsubscribe gives the List-Unsubscribe headers of a mail to
// recipient about t: the mailto address that the ingest path recognises
// and, with a public URL, the https one-click link (RFC 2369, RFC 8058).
// None without Project.Links.
func listUnsubscribe(p Project, t ticket.Ticket, recipient string) [][2]string {
	if p.Links == nil {
		return nil
	}
	mailto := "<mailto:" + p.Links.UnsubscribeAddress(p.Address, p.Key, t.ID, recipient) +
		"?subject=unsubscribe%20" + strconv.FormatInt(t.Number, 10) + ">"
	link := p.Links.UnsubscribeURL(p.Key, t.Number, recipient)
	if link == "" {
		return [][2]string{{"List-Unsubscribe", mailto}}
	}
	return [][2]string{
		{"List-Unsubscribe", "<" + link + ">, " + mailto},
		{"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"},
	}
}

// decoration says which placeholders are the configured texts around a
// mail (GitLab's system header and footer, additional text): unset, they
// leave the text of their line alone.
func decoration(name string) bool {
	switch name {
	case "SYSTEM_HEADER", "SYSTEM_FOOTER", "ADDITIONAL_TEXT":
		return true
	}
	return false
}

// CauseUnsubscribed: the recipient unsubscribed from the ticket.
const CauseUnsubscribed Cause = "unsubscribed"

// unsubscribed suppresses mail to a recipient who unsubscribed from the
// ticket. The store suppresses such mail as it is queued; this catches
// what was on its way when the recipient unsubscribed.
func unsubscribed(t ticket.Ticket, n ticket.Notification) verdict {
	to, ok := bareAddress(n.To)
	if ok && slices.Contains(t.Unsubscribed, to) {
		return verdict{CauseUnsubscribed, fmt.Sprintf("unsubscribed: %s asked for no more mail on this ticket", to)}
	}
	return verdict{}
}
