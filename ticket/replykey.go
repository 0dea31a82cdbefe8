package ticket

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// ReplyKeys signs and verifies reply keys: the token in a Reply-To
// sub-address (support+r1-2s-ab12...@example.test) and in a References
// entry (<r1-2s-ab12...@example.test>) that leads a customer's reply back to
// its ticket. A key is versioned ("r1"), names the ticket in base 36 and
// carries a truncated HMAC-SHA256 over the version, project and ticket, so
// it can be neither guessed nor forged onto someone else's ticket.
type ReplyKeys struct {
	secret []byte
}

// ErrBadReplyKey is returned for a key that is malformed or not signed by us.
var ErrBadReplyKey = errors.New("reply key not valid")

// NewReplyKeys returns a signer for the given secret (at least 16 bytes).
func NewReplyKeys(secret []byte) (*ReplyKeys, error) {
	if len(secret) < 16 {
		return nil, errors.New("reply key secret must be at least 16 bytes")
	}
	return &ReplyKeys{secret: append([]byte(nil), secret...)}, nil
}

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const macChars = 20 // 100 bits

func (k *ReplyKeys) mac(version, project string, ticketID int64) string {
	h := hmac.New(sha256.New, k.secret)
	h.Write([]byte(version + ":" + strings.ToLower(project) + ":" + strconv.FormatInt(ticketID, 10)))
	return keyEncoding.EncodeToString(h.Sum(nil))[:macChars]
}

// Sign gives the reply key for a ticket of a project.
func (k *ReplyKeys) Sign(project string, ticketID int64) string {
	return "r1-" + strconv.FormatInt(ticketID, 36) + "-" + k.mac("r1", project, ticketID)
}

// Verify returns the ticket ID a key was signed for within project.
func (k *ReplyKeys) Verify(project, key string) (int64, error) {
	id, ok := ReplyKeyTicket(key)
	if !ok {
		return 0, ErrBadReplyKey
	}
	_, mac, _ := strings.Cut(strings.TrimPrefix(strings.ToLower(key), "r1-"), "-")
	if !hmac.Equal([]byte(mac), []byte(k.mac("r1", project, id))) {
		return 0, ErrBadReplyKey
	}
	return id, nil
}

// ReplyKeyTicket reads the ticket ID a reply key names, without verifying
// it: a key is only proven by Verify with the project of that ticket.
// Routing uses it to find which desk to verify a key for.
func ReplyKeyTicket(key string) (int64, bool) {
	parts := strings.Split(strings.ToLower(key), "-")
	if len(parts) != 3 || parts[0] != "r1" {
		return 0, false
	}
	id, err := strconv.ParseInt(parts[1], 36, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	return id, true
}

var keyPattern = regexp.MustCompile(`(?i)\br1-[0-9a-z]{1,13}-[a-z2-7]{20}\b`)

// Find returns the candidate reply keys in s (an address, a header value),
// unverified, in order of appearance.
func FindReplyKeys(s string) []string {
	return keyPattern.FindAllString(s, -1)
}

// ReplyAddress puts key into the sub-address of the desk address:
// support@example.test -> support+r1-...@example.test.
func ReplyAddress(deskAddress, key string) string {
	local, domain, ok := strings.Cut(deskAddress, "@")
	if !ok {
		return deskAddress
	}
	if base, _, tagged := strings.Cut(local, "+"); tagged {
		local = base
	}
	return local + "+" + key + "@" + domain
}

// ReplyReference is the References entry that carries the key, for clients
// that drop the Reply-To sub-address: "<r1-...@example.test>".
func ReplyReference(deskAddress, key string) string {
	_, domain, _ := strings.Cut(deskAddress, "@")
	return "<" + key + "@" + domain + ">"
}
