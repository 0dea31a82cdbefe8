package ingest

import (
	"fmt"
	"net/textproto"
	"regexp"
	"strings"
)

// Recipient is an address a header of a message names as a recipient.
type Recipient struct {
	// Header is the field's name as mail spells it ("To",
	// "X-Forwarded-To", "Received" for a Received field's "for" clause).
	Header  string
	Address string // bare, lower-cased
}

// RecipientHeaders are the fields Mail.Recipients reads, in its order:
// GitLab's order for finding a project (To, then the headers a delivery
// or a forward adds, Cc last), with the forwarding headers of Gmail
// (X-Forwarded-For) and Exchange / Microsoft 365 (X-MS-Exchange-
// ForwardingLoop names the mailbox whose forwarding sent the copy,
// X-MS-Exchange-Inbox-Rules-Loop the mailbox whose inbox rule did; both
// survive the hop between organisations) added.
var RecipientHeaders = []string{
	"To", "Delivered-To", "X-Delivered-To", "Envelope-To", "X-Envelope-To", "Received",
	"X-Original-To", "X-Forwarded-To", "X-Forwarded-For",
	"X-MS-Exchange-ForwardingLoop", "X-MS-Exchange-Inbox-Rules-Loop", "Cc",
}

// receivedScanBytes is how much of one Received field is searched for
// its "for" clause, which comes before the date: real fields are a few
// hundred bytes.
const receivedScanBytes = 2 << 10

// receivedFor is the "for" clause of a Received field (RFC 5321 4.4):
// "for <addr>" or, from some servers, "for addr".
var receivedFor = regexp.MustCompile(`(?i)\bfor\s+<?\s*([^\s<>;,"()]+@[^\s<>;,"()]+?)\s*>?(?:[\s;]|$)`)

// fillRecipients fills m.Recipients. all gives a field's raw values, addrs
// the bare addresses of fields.
func (m *Mail) fillRecipients(all func(string) [][]byte, addrs func(...string) []string, lim Limits) {
	m.Recipients = nil
	add := func(header string, list []string) {
		for _, a := range capList(list, lim.Addresses) {
			m.Recipients = append(m.Recipients, Recipient{Header: header, Address: a})
		}
	}
	for _, h := range RecipientHeaders {
		key := textproto.CanonicalMIMEHeaderKey(h)
		switch h {
		case "To":
			add(h, m.To)
		case "Cc":
			add(h, m.Cc)
		case "Received":
			add(h, receivedAddrs(all(key), lim))
		default:
			add(h, addrs(key))
		}
	}
}

// receivedAddrs reads the "for" clauses of the first lim.Received
// Received fields (the newest hops: each server puts its own on top);
// older hops are not read.
func receivedAddrs(fields [][]byte, lim Limits) []string {
	var u uniq
	for i, v := range fields {
		if i == lim.Received {
			break
		}
		v = v[:min(len(v), receivedScanBytes)]
		for _, sm := range receivedFor.FindAllSubmatch(v, 4) {
			u.add(strings.ToLower(strings.TrimRight(string(sm[1]), ".")))
		}
	}
	return u.list
}

// Carried is the distinct addresses m names as recipients, at most n,
// each with the headers that name it, e.g. "help@x.test (To,
// Delivered-To)"; more says how many more there are. It is what an
// unroutable mail's dead letter shows.
func (m *Mail) Carried(n int) (list []string, more int) {
	type seen struct {
		addr    string
		headers []string
	}
	var order []*seen
	by := map[string]*seen{}
	for _, r := range m.Recipients {
		s := by[r.Address]
		if s == nil {
			s = &seen{addr: r.Address}
			by[r.Address] = s
			order = append(order, s)
		}
		if len(s.headers) == 0 || s.headers[len(s.headers)-1] != r.Header {
			s.headers = append(s.headers, r.Header)
		}
	}
	for i, s := range order {
		if i == n {
			return list, len(order) - n
		}
		list = append(list, fmt.Sprintf("%s (%s)", s.addr, strings.Join(s.headers, ", ")))
	}
	return list, 0
}
