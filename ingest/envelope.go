package ingest

import (
	"regexp"
	"strings"
)

// bounceSubject matches the subjects of delivery-status reports.
var bounceSubject = regexp.MustCompile(`(?i)^\s*(undeliver|undelivered mail|delivery status notification|` +
	`mail delivery (failed|failure|subsystem)|returned mail|failure notice|delivery failure|non[- ]?delivery|` +
	`unzustellbar|nicht zustellbar|non remis|no se puede entregar)`)

// EnvelopeAutomatic says why mail known only by its envelope (the IMAP
// ENVELOPE of a message never downloaded, too large to read) must not be
// answered, or "" when it may be. The classifier cannot run on a body
// that was never read; From and Subject are what is left: no sender, a
// no-reply or system sender (NoReply), an auto-reply's subject or a
// delivery-status report's.
func EnvelopeAutomatic(from, subject string) string {
	from = strings.ToLower(strings.TrimSpace(from))
	switch {
	case from == "":
		return "no sender"
	case NoReply(from):
		return "sender " + from + " is a no-reply or system address"
	case autoSubject.MatchString(subject):
		return "subject of an automatic reply"
	case bounceSubject.MatchString(subject):
		return "subject of a delivery-status report"
	}
	return ""
}
