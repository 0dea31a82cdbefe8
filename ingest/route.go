package ingest

import (
	"context"
	"fmt"
	"strings"

	"github.com/servicedesk/servicedesk/ticket"
)

// Routing is the desk a mail of the intake mailbox belongs to and the rule
// that found it, for the ledger.
type Routing struct {
	Project Project
	// Rule is "reply key", "sub-address incoming+acme@intake.test" or the
	// header and address that named the desk, e.g. "X-Forwarded-To:
	// support@acme.test".
	Rule string
}

// KeyOwner returns the desk whose ticket a reply key names, ok false for
// a key that is not valid (forged, signed for another desk, or naming a
// ticket that does not exist). An error is a failure to look, temporary.
type KeyOwner func(ctx context.Context, key string) (p Project, ok bool, err error)

// maxRouteKeys bounds the distinct reply-key candidates routing checks;
// each costs a ticket lookup. A real reply carries one key, in a few
// places.
const maxRouteKeys = 10

// Router routes the mail of one intake mailbox (GitLab's incoming
// address) to the desks it serves.
type Router struct {
	local, domain string             // of the intake address
	byKey         map[string]Project // desk key -> desk
	byAddr        map[string]Project // desk address or alias, without +tag -> desk
}

// NewRouter returns the router of the intake address for desks (their
// addresses and aliases). An address named by two desks routes to the
// first (config validation refuses that).
func NewRouter(intake string, desks []Project) *Router {
	r := &Router{byKey: map[string]Project{}, byAddr: map[string]Project{}}
	r.local, r.domain, _ = strings.Cut(strings.ToLower(strings.TrimSpace(intake)), "@")
	for _, d := range desks {
		if _, dup := r.byKey[strings.ToLower(d.Key)]; !dup {
			r.byKey[strings.ToLower(d.Key)] = d
		}
		for _, a := range append([]string{d.Address}, d.Aliases...) {
			// A desk whose address is incoming+<key>@ is found by its
			// sub-address: its base address is the intake's, every desk's.
			if a = baseAddress(a); a != "" && a != r.local+"@"+r.domain {
				if _, dup := r.byAddr[a]; !dup {
					r.byAddr[a] = d
				}
			}
		}
	}
	return r
}

// baseAddress is addr lower-cased, without angle brackets and without a
// +tag sub-address; "" when it is no address.
func baseAddress(addr string) string {
	addr = strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" {
		return ""
	}
	if base, _, tagged := strings.Cut(local, "+"); tagged {
		local = base
	}
	return local + "@" + domain
}

// Route finds the desk a mail fetched from the intake mailbox belongs to,
// first match wins:
//  1. a valid reply key (in a recipient address, In-Reply-To or
//     References): the desk of its ticket, as owner says;
//  2. the intake address with a desk key as sub-address
//     (incoming+acme@...) in any header of RecipientHeaders;
//  3. a desk's address or alias (or a +tag sub-address of one) in the
//     headers of RecipientHeaders, in their order: To, Delivered-To,
//     X-Delivered-To, Envelope-To, X-Envelope-To, Received "for",
//     X-Original-To, X-Forwarded-To, X-Forwarded-For,
//     X-MS-Exchange-ForwardingLoop, X-MS-Exchange-Inbox-Rules-Loop, Cc.
//
// ok is false when nothing names a desk: the mail is unroutable. The
// work is bounded by the parse's limits (Mail.Recipients) and
// maxRouteKeys lookups.
func (r *Router) Route(ctx context.Context, m *Mail, owner KeyOwner) (Routing, bool, error) {
	if m == nil {
		return Routing{}, false, nil
	}
	if owner != nil {
		if p, ok, err := r.byReplyKey(ctx, m, owner); ok || err != nil {
			return Routing{Project: p, Rule: "reply key"}, ok, err
		}
	}
	for _, rc := range m.Recipients {
		local, domain, _ := strings.Cut(rc.Address, "@")
		base, tag, tagged := strings.Cut(local, "+")
		if !tagged || base != r.local || domain != r.domain || r.local == "" {
			continue
		}
		if p, ok := r.byKey[tag]; ok {
			return Routing{Project: p, Rule: fmt.Sprintf("sub-address %s: %s", rc.Header, rc.Address)}, true, nil
		}
	}
	for _, rc := range m.Recipients {
		if p, ok := r.byAddr[baseAddress(rc.Address)]; ok {
			return Routing{Project: p, Rule: rc.Header + ": " + rc.Address}, true, nil
		}
	}
	return Routing{}, false, nil
}

// byReplyKey checks the reply-key candidates of m, the places thread
// reads them from, in its order.
func (r *Router) byReplyKey(ctx context.Context, m *Mail, owner KeyOwner) (Project, bool, error) {
	for _, key := range replyKeys(replyKeySources(m), maxRouteKeys) {
		p, ok, err := owner(ctx, key)
		if err != nil {
			return Project{}, false, fmt.Errorf("route by reply key: %w", err)
		}
		if ok {
			return p, true, nil
		}
	}
	return Project{}, false, nil
}

// replyKeySources are the values of m a reply key is looked for in: the
// recipient addresses, then the first In-Reply-To and References entries.
func replyKeySources(m *Mail) []string {
	var sources []string
	sources = append(sources, m.To...)
	sources = append(sources, m.Cc...)
	sources = append(sources, m.Forwarded...)
	for _, rc := range m.Recipients {
		sources = append(sources, rc.Address)
	}
	sources = append(sources, m.InReplyTo[:min(len(m.InReplyTo), maxInReplyTo)]...)
	return append(sources, m.References[:min(len(m.References), MaxThreadReferences)]...)
}

// replyKeys gives the distinct candidate keys of sources, lower-cased, in
// order, at most limit of them (0: all).
func replyKeys(sources []string, limit int) []string {
	var keys []string
	seen := map[string]bool{}
	for _, s := range sources {
		for _, key := range ticket.FindReplyKeys(s) {
			key = strings.ToLower(key)
			if seen[key] {
				continue
			}
			if len(keys) == limit && limit > 0 {
				return keys
			}
			seen[key] = true
			keys = append(keys, key)
		}
	}
	return keys
}
