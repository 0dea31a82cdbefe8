package ticket

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// CustomerLinks signs and checks the links a customer gets by mail, which
// need no API token: the read-only page of a ticket (and the download of
// its public attachments) and the unsubscribe link and address. Each is
// signed for one recipient of one ticket with HMAC-SHA256 under a secret
// of its own:
//
//   - a view link carries the project, the ticket number, the recipient
//     and an expiry, all under the MAC ("v1" label); it opens the page and
//     the attachments until it expires;
//   - an unsubscribe link carries the project, the ticket number and the
//     recipient ("u1" label), the mailto token the project, the ticket's
//     ID and the recipient ("m1"); neither expires: a stale unsubscribe
//     only stops mail.
//
// The paths are CustomerTicketPath and its /attachments/{id} and
// /unsubscribe children, under the public URL; the query is r (the
// recipient, base64url), e (expiry, Unix seconds) and s (the MAC,
// base64url, 128 bits).
type CustomerLinks struct {
	secret    []byte
	publicURL string
	ttl       time.Duration
	now       func() time.Time
}

// Errors of VerifyView and VerifyUnsubscribe. The page a customer gets
// says which one, nothing more.
var (
	ErrLinkForged  = errors.New("link signature not valid")
	ErrLinkExpired = errors.New("link expired")
)

// DefaultLinkTTL is how long a view link stays valid: 30 days.
const DefaultLinkTTL = 30 * 24 * time.Hour

// LinkOptions tunes CustomerLinks; zero fields take defaults.
type LinkOptions struct {
	// TTL is how long a view link is valid. Defaults to DefaultLinkTTL.
	TTL time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// NewCustomerLinks returns a signer for links under publicURL (e.g.
// https://desk.example.com; empty: links are "" but tokens still sign and
// verify). secret must have at least 16 bytes.
func NewCustomerLinks(secret []byte, publicURL string, opts LinkOptions) (*CustomerLinks, error) {
	if len(secret) < 16 {
		return nil, errors.New("customer link secret must be at least 16 bytes")
	}
	l := &CustomerLinks{secret: append([]byte(nil), secret...), publicURL: strings.TrimRight(publicURL, "/"),
		ttl: opts.TTL, now: opts.Now}
	if l.ttl <= 0 {
		l.ttl = DefaultLinkTTL
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// DeriveLinkSecret derives the customer link secret from the reply key
// secret, under a label of its own, for a configuration that sets none:
// a link's MAC can never be taken for a reply key's or the other way.
func DeriveLinkSecret(replyKeySecret []byte) []byte {
	h := hmac.New(sha256.New, replyKeySecret)
	h.Write([]byte("servicedesk customer links v1"))
	return h.Sum(nil)
}

// TTL is how long a view link is valid.
func (l *CustomerLinks) TTL() time.Duration { return l.ttl }

func (l *CustomerLinks) mac(label, project string, number int64, recipient string, expires int64) []byte {
	h := hmac.New(sha256.New, l.secret)
	for _, part := range []string{label, strings.ToLower(project), strconv.FormatInt(number, 10),
		normalRecipient(recipient), strconv.FormatInt(expires, 10)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return h.Sum(nil)[:16]
}

func normalRecipient(r string) string { return strings.ToLower(strings.TrimSpace(r)) }

var b64 = base64.RawURLEncoding

// CustomerTicketPath is the path of a ticket's customer page:
// /tickets/{project}/{number}.
func CustomerTicketPath(project string, number int64) string {
	return "/tickets/" + url.PathEscape(project) + "/" + strconv.FormatInt(number, 10)
}

// ViewQuery gives the signed query of a view link for recipient, valid
// for the TTL from now.
func (l *CustomerLinks) ViewQuery(project string, number int64, recipient string) url.Values {
	exp := l.now().Add(l.ttl).Unix()
	return url.Values{
		"r": {b64.EncodeToString([]byte(normalRecipient(recipient)))},
		"e": {strconv.FormatInt(exp, 10)},
		"s": {b64.EncodeToString(l.mac("v1", project, number, recipient, exp))},
	}
}

// TicketURL is the link to the ticket's page for recipient; "" without a
// public URL.
func (l *CustomerLinks) TicketURL(project string, number int64, recipient string) string {
	if l == nil || l.publicURL == "" {
		return ""
	}
	return l.publicURL + CustomerTicketPath(project, number) + "?" + l.ViewQuery(project, number, recipient).Encode()
}

// AttachmentURL is the link to download attachment id of the ticket for
// recipient; "" without a public URL.
func (l *CustomerLinks) AttachmentURL(project string, number, id int64, recipient string) string {
	if l == nil || l.publicURL == "" {
		return ""
	}
	return l.publicURL + CustomerTicketPath(project, number) + "/attachments/" + strconv.FormatInt(id, 10) +
		"?" + l.ViewQuery(project, number, recipient).Encode()
}

// UnsubscribeURL is the one-click unsubscribe link (RFC 8058) of
// recipient from the ticket; "" without a public URL.
func (l *CustomerLinks) UnsubscribeURL(project string, number int64, recipient string) string {
	if l == nil || l.publicURL == "" {
		return ""
	}
	q := url.Values{
		"r": {b64.EncodeToString([]byte(normalRecipient(recipient)))},
		"s": {b64.EncodeToString(l.mac("u1", project, number, recipient, 0))},
	}
	return l.publicURL + CustomerTicketPath(project, number) + "/unsubscribe?" + q.Encode()
}

// recipientOf decodes the r parameter.
func recipientOf(q url.Values) (string, bool) {
	raw, err := b64.DecodeString(q.Get("r"))
	if err != nil || len(raw) == 0 || len(raw) > 320 {
		return "", false
	}
	return string(raw), true
}

// VerifyView checks the query of a view (or attachment) link for the
// ticket and returns the recipient it was signed for: ErrLinkForged when
// anything is missing or does not match, ErrLinkExpired when it matches
// but its time has passed.
func (l *CustomerLinks) VerifyView(project string, number int64, q url.Values) (string, error) {
	rcpt, ok := recipientOf(q)
	exp, err := strconv.ParseInt(q.Get("e"), 10, 64)
	sig, serr := b64.DecodeString(q.Get("s"))
	if !ok || err != nil || serr != nil {
		return "", ErrLinkForged
	}
	if !hmac.Equal(sig, l.mac("v1", project, number, rcpt, exp)) {
		return "", ErrLinkForged
	}
	if !l.now().Before(time.Unix(exp, 0)) {
		return "", ErrLinkExpired
	}
	return rcpt, nil
}

// VerifyUnsubscribe checks the query of an unsubscribe link for the
// ticket and returns the recipient to unsubscribe, or ErrLinkForged.
func (l *CustomerLinks) VerifyUnsubscribe(project string, number int64, q url.Values) (string, error) {
	rcpt, ok := recipientOf(q)
	sig, err := b64.DecodeString(q.Get("s"))
	if !ok || err != nil || !hmac.Equal(sig, l.mac("u1", project, number, rcpt, 0)) {
		return "", ErrLinkForged
	}
	return rcpt, nil
}

// unsubscribeMACChars is the length of the MAC in a mailto token: 20
// base32 characters, 100 bits, lower case so that a mail server that folds
// the local part's case keeps it valid.
const unsubscribeMACChars = 20

func (l *CustomerLinks) tokenMAC(project string, ticketID int64, recipient string) string {
	return keyEncoding.EncodeToString(l.mac("m1", project, ticketID, recipient, 0))[:unsubscribeMACChars]
}

// UnsubscribeToken is the token of the mailto unsubscribe address:
// "unsubscribe-{ticket ID base 36}-{MAC}", named by the ticket's ID as
// reply keys are, so that the ingest path finds the ticket. The address
// has no room for the recipient (a local part is at most 64 characters),
// so the MAC is over the recipient and VerifyUnsubscribeToken checks it
// against the sender.
func (l *CustomerLinks) UnsubscribeToken(project string, ticketID int64, recipient string) string {
	return "unsubscribe-" + strconv.FormatInt(ticketID, 36) + "-" + l.tokenMAC(project, ticketID, recipient)
}

// UnsubscribeAddress is the mailto unsubscribe address of recipient for
// the ticket: support+unsubscribe-7-abcd...@example.test.
func (l *CustomerLinks) UnsubscribeAddress(deskAddress, project string, ticketID int64, recipient string) string {
	return ReplyAddress(deskAddress, l.UnsubscribeToken(project, ticketID, recipient))
}

var unsubscribePattern = regexp.MustCompile(`(?i)\+unsubscribe-([0-9a-z]{1,13})-([a-z2-7]{20})@`)

// FindUnsubscribeToken returns the ticket ID and MAC of an unsubscribe
// address (desk+unsubscribe-...@domain), unverified; ok is false when addr
// is not one.
func FindUnsubscribeToken(addr string) (ticketID int64, mac string, ok bool) {
	m := unsubscribePattern.FindStringSubmatch(addr)
	if m == nil {
		return 0, "", false
	}
	n, err := strconv.ParseInt(strings.ToLower(m[1]), 36, 64)
	if err != nil || n <= 0 {
		return 0, "", false
	}
	return n, strings.ToLower(m[2]), true
}

// VerifyUnsubscribeToken reports whether mac (from FindUnsubscribeToken)
// was signed for sender on the ticket.
func (l *CustomerLinks) VerifyUnsubscribeToken(project string, ticketID int64, mac, sender string) bool {
	return hmac.Equal([]byte(strings.ToLower(mac)), []byte(l.tokenMAC(project, ticketID, sender)))
}
