package api

import (
	"regexp"
	"strings"
)

// addrPattern matches an address-shaped substring of encoded JSON: an
// RFC 5322 dot-atom local part (UTF-8 allowed, RFC 6531), "@", and a domain
// of one or more labels. Group 1 takes the JSON escapes (\n, \", \u00e9, ...)
// right before the local part, so that an escape is kept whole and never
// read as the start of an address; "*" is allowed in the domain so that
// redacting twice gives the same bytes.
var addrPattern = regexp.MustCompile(
	`((?:\\(?:u[0-9A-Fa-f]{4}|[^u]))*)` +
		"([A-Za-z0-9!#$%&'*+/=?^_\x60{|}~.\\-\\x{80}-\\x{10FFFF}]+)" +
		`@([A-Za-z0-9*\-\x{80}-\x{10FFFF}]+(?:\.[A-Za-z0-9*\-\x{80}-\x{10FFFF}]+)*)`)

// Obfuscate hides an address the way a guest sees it: the first two
// characters of the local part, "***", "@", the first two characters of the
// first domain label, "***" and the top-level domain:
// alice@customer.test -> al***@cu***.test.
func Obfuscate(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return prefix(addr) + "***"
	}
	local, domain := addr[:at], addr[at+1:]
	labels := strings.Split(domain, ".")
	out := prefix(local) + "***@" + prefix(labels[0]) + "***"
	if len(labels) > 1 {
		out += "." + labels[len(labels)-1]
	}
	return out
}

// prefix returns the first two characters (runes) of s, leaving out the
// stars of an earlier obfuscation.
func prefix(s string) string {
	s = strings.TrimRight(s, "*")
	n := 0
	for i := range s {
		if n == 2 {
			return s[:i]
		}
		n++
	}
	return s
}

// Redact obfuscates every address-shaped substring of b, which must be
// encoded JSON (or plain text), and returns the result; b is not changed.
// JSON escapes are respected, so valid JSON stays valid JSON. It is the one
// place where guests' answers lose their addresses, so that a new field
// cannot forget it.
func Redact(b []byte) []byte {
	return addrPattern.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := addrPattern.FindSubmatch(m)
		out := make([]byte, 0, len(m))
		out = append(out, sub[1]...)
		return append(out, Obfuscate(string(sub[2])+"@"+string(sub[3]))...)
	})
}
