package ingest

import (
	"regexp"
	"strings"
)

// Class is what kind of mail a message is, for deciding whether a human
// wrote it and whether it may be answered.
type Class string

const (
	ClassNormal    Class = "normal"     // a person wrote it: open or reply to a ticket
	ClassAutoReply Class = "auto_reply" // out-of-office, vacation, read receipt, loop: record, never answer
	ClassBulk      Class = "bulk"       // list or bulk mail: record, never answer
	ClassBounce    Class = "bounce"     // delivery status notification: record, never answer
	ClassOwn       Class = "own"        // our own mail coming back: record, never answer
)

// VerificationHeader marks the mail `servicedesk projects verify` sends to
// a desk's own address.
const VerificationHeader = "X-Servicedesk-Verification"

// Classify says what kind of mail m is and why (the header or rule that
// decided, e.g. "Auto-Submitted: auto-replied"). own lists every desk
// address of every project; mail from one of them is our own mail coming
// back.
//
// The rules, first match wins:
//   - From is a desk address: own.
//   - multipart/report with report-type=delivery-status, a
//     message/delivery-status part, or From mailer-daemon@ / postmaster@:
//     bounce. A multipart/report of another type (a read receipt) is an
//     auto-reply.
//   - Auto-Submitted other than "no" (RFC 3834); X-Autoreply, X-Autorespond,
//     X-Autoresponse, X-Auto-Reply-From; Precedence auto_reply; X-Loop "yes"
//     or naming a desk address; X-MS-Exchange-Inbox-Rules-Loop naming a desk
//     address: auto-reply.
//   - Precedence bulk, list or junk; List-Id or List-Unsubscribe: bulk
//     (not our own List-Unsubscribe, one whose mailto is a desk address,
//     that an auto-responder or a client copied from our mail).
//   - A subject that starts like an out-of-office notice ("Out of Office",
//     "Auto-Reply:", "Automatic reply:", "AUTORESPONSE", "Abwesenheitsnotiz",
//     ...): auto-reply.
//   - Return-Path <> (null sender, RFC 5321 4.5.5) with nothing else: bounce.
//
// Deliberately not rules: X-Auto-Response-Suppress says the sender wants
// no automatic answer; Exchange sets it on its own notices but also on
// ordinary mail from many applications, so it alone does not make a
// message automatic (Process honours it by sending no thank-you). X-Loop
// and X-MS-Exchange-Inbox-Rules-Loop with another value are what a
// customer's forwarding rule adds to ordinary mail.
func Classify(m *Mail, own []string) (Class, string) {
	return classify(m, own, own)
}

// classify is Classify with loops, the addresses that make X-Loop and
// X-MS-Exchange-Inbox-Rules-Loop mark a loop, apart from own.
func classify(m *Mail, own, loops []string) (Class, string) {
	if m == nil {
		return ClassNormal, ""
	}
	for _, desk := range own {
		if m.From != "" && MatchesAddress(m.From, desk) {
			return ClassOwn, "From is our own address " + m.From
		}
	}
	h := func(name string) string { return strings.TrimSpace(m.Header.Get(name)) }
	lower := func(name string) string { return strings.ToLower(h(name)) }
	if h(VerificationHeader) != "" {
		// Our own address verification coming back, whatever a relay did
		// to its From: never a ticket, never answered.
		return ClassOwn, VerificationHeader + " present (address verification)"
	}

	ct := lower("Content-Type")
	if m.dsn.reportType == "delivery-status" || (strings.HasPrefix(ct, "multipart/report") && strings.Contains(ct, "delivery-status")) {
		return ClassBounce, "Content-Type: multipart/report; report-type=delivery-status"
	}
	if m.dsn.deliveryStatus {
		return ClassBounce, "message/delivery-status part"
	}
	if local, _, _ := strings.Cut(m.From, "@"); local == "mailer-daemon" || local == "postmaster" {
		return ClassBounce, "From " + local + "@"
	}
	if m.dsn.reportType != "" || strings.HasPrefix(ct, "multipart/report") {
		rt := m.dsn.reportType
		if rt == "" {
			rt = "unknown"
		}
		return ClassAutoReply, "Content-Type: multipart/report; report-type=" + rt
	}

	if v := lower("Auto-Submitted"); v != "" && v != "no" && !strings.HasPrefix(v, "no;") && !strings.HasPrefix(v, "no ") {
		return ClassAutoReply, "Auto-Submitted: " + v
	}
	if v := lower("X-Autoreply"); v != "" && v != "no" && v != "false" {
		return ClassAutoReply, "X-Autoreply: " + v
	}
	for _, name := range []string{"X-Autorespond", "X-Autoresponse", "X-Auto-Reply-From"} {
		if _, ok := m.Header[name]; ok {
			return ClassAutoReply, name + " present"
		}
	}
	prec := lower("Precedence")
	if prec == "auto_reply" {
		return ClassAutoReply, "Precedence: auto_reply"
	}
	for _, name := range []string{"X-Loop", "X-Ms-Exchange-Inbox-Rules-Loop"} {
		for _, v := range m.Header.Values(name) {
			v = strings.ToLower(strings.TrimSpace(v))
			if v == "yes" || v == "true" || v == "1" || namesDesk(v, loops) {
				return ClassAutoReply, textprotoName(name) + ": " + v
			}
		}
	}

	switch prec {
	case "bulk", "list", "junk":
		return ClassBulk, "Precedence: " + prec
	}
	if h("List-Id") != "" {
		return ClassBulk, "List-Id present"
	}
	if v := h("List-Unsubscribe"); v != "" && !ourListUnsubscribe(v, own) {
		return ClassBulk, "List-Unsubscribe present"
	}

	if autoSubject.MatchString(m.Subject) {
		return ClassAutoReply, "Subject: " + truncate(m.Subject, 60)
	}
	if rp := h("Return-Path"); rp != "" && strings.Trim(rp, "<> \t") == "" {
		return ClassBounce, "Return-Path: <> (null sender)"
	}
	return ClassNormal, ""
}

// textprotoName spells the Exchange header as Exchange does.
func textprotoName(name string) string {
	if name == "X-Ms-Exchange-Inbox-Rules-Loop" {
		return "X-MS-Exchange-Inbox-Rules-Loop"
	}
	return name
}

func namesDesk(v string, own []string) bool {
	for _, a := range bareAddr.FindAllString(v, -1) {
		for _, desk := range own {
			if MatchesAddress(a, desk) {
				return true
			}
		}
	}
	return false
}

var autoSubject = regexp.MustCompile(`(?i)^\s*(` +
	`out of (the )?office|auto[- ]?reply|automatic reply|auto[- ]?response|autoresponse|auto[- ]?respond|` +
	`abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique|absence du bureau|` +
	`respuesta autom[áa]tica|risposta automatica|automatisch antwoord|resposta autom[áa]tica|` +
	`autosvar|automaattinen vastaus|vacation( reply)?:|on vacation)\b`)

var noReplyLocal = regexp.MustCompile(`^(mailer-daemon|postmaster|abuse|root|nobody|daemon|listserv|majordomo|` +
	`(no|do[-_.]?not|dont)[-_.]?reply.*|.*[-_.]no[-_.]?reply|bounces?([-_.].*)?|notifications?[-_.]no[-_.]?reply.*)$`)

// NoReply reports whether addr must never be mailed: system and role
// accounts (mailer-daemon, postmaster, abuse, root), no-reply and
// do-not-reply addresses, bounce handlers, and anything that is not an
// address at all.
func NoReply(addr string) bool {
	addr = strings.ToLower(strings.TrimSpace(addr))
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(addr, " <>\"") {
		return true
	}
	if base, _, tagged := strings.Cut(local, "+"); tagged {
		local = base
	}
	return noReplyLocal.MatchString(local)
}

// MatchesAddress reports whether addr is the desk address or one of its
// sub-addresses, ignoring case: desk "support@x" matches "support@x" and
// "support+anything@x".
func MatchesAddress(addr, desk string) bool {
	addr = strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
	desk = strings.ToLower(strings.Trim(strings.TrimSpace(desk), "<>"))
	al, ad, ok1 := strings.Cut(addr, "@")
	dl, dd, ok2 := strings.Cut(desk, "@")
	if !ok1 || !ok2 || ad != dd || al == "" || dl == "" {
		return false
	}
	return al == dl || strings.HasPrefix(al, dl+"+")
}

// BounceOriginal gives the Message-ID and the failed recipients of the
// message a bounce is about, read from the embedded message/rfc822 or
// text/rfc822-headers part and the delivery-status fields; an NDR without
// them is searched for a quoted "Message-ID:" line and X-Failed-Recipients.
// messageID is "" when unknown.
func BounceOriginal(m *Mail) (messageID string, recipients []string) {
	if m == nil {
		return "", nil
	}
	if m.dsn.original != nil {
		if ids := messageIDs([]byte(m.dsn.original.Get("Message-Id"))); len(ids) > 0 {
			messageID = ids[0]
		}
	}
	if messageID == "" {
		if sm := quotedMessageID.FindStringSubmatch(m.Text); sm != nil {
			messageID = sm[1]
		}
	}
	recipients = append(recipients, m.dsn.recipients...)
	for _, v := range m.Header.Values("X-Failed-Recipients") {
		for _, a := range bareAddr.FindAllString(v, -1) {
			recipients = appendUnique(recipients, strings.ToLower(a))
		}
	}
	return messageID, recipients
}

var quotedMessageID = regexp.MustCompile(`(?im)^\s*message-id:\s*(<[^<>\s]+>)`)

// ourListUnsubscribe reports whether a List-Unsubscribe value is one of
// ours: its mailto addresses, at least one, are all desk addresses.
func ourListUnsubscribe(v string, own []string) bool {
	addrs := bareAddr.FindAllString(v, -1)
	for _, a := range addrs {
		a, _, _ = strings.Cut(a, "?")
		if !namesDesk(a, own) {
			return false
		}
	}
	return len(addrs) > 0
}
