package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/servicedesk/servicedesk/ticket"
)

// FuzzParse feeds arbitrary bytes through Parse, Classify and the threading
// helpers. Nothing may panic, and what Parse returns must be storable.
func FuzzParse(f *testing.F) {
	for _, file := range corpus(f) {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatalf("read seed %s: %v", file, err)
		}
		f.Add(raw)
	}
	f.Add([]byte("Subject: =?utf-8?Q?=E2=82?=\nReferences: <a@b>,<c@d><e@f>\n\n"))
	f.Add([]byte("From: \"=?iso-8859-1?Q?a=2C_b?=\" <x@y>, =?utf-8?B?w7w=?= <z@y>\n\n"))

	router := NewRouter("incoming@intake.test", []Project{{ID: 1, Key: "acme", Address: "support@acme.test", Aliases: []string{"help@acme.test"}}})
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			if m != nil {
				t.Fatalf("Parse returned a Mail with error %v", err)
			}
			return
		}
		for _, s := range append([]string{m.Subject, m.From, m.FromName, m.Text, m.HTML, m.MessageID},
			append(m.References, append(m.To, m.Cc...)...)...) {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("Parse gave a string that PostgreSQL cannot store: %q", s)
			}
		}
		for _, a := range m.Attachments {
			sum := sha256.Sum256(a.Data)
			if a.SHA256 != hex.EncodeToString(sum[:]) || a.Size != int64(len(a.Data)) {
				t.Fatalf("attachment %q: SHA256/Size do not match its Data", a.Filename)
			}
		}
		Classify(m, []string{"support@acme.test"})
		BounceOriginal(m)
		if _, _, err := router.Route(context.Background(), m, nil); err != nil {
			t.Fatalf("Route without a key owner: %v", err)
		}
		m.Carried(20)
		if k := DedupKey(m, raw); k == "" {
			t.Fatalf("DedupKey is empty")
		}
		NoReply(m.From)
		for _, id := range append(m.InReplyTo, m.References...) {
			if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, ">") {
				t.Fatalf("message id %q is not bracketed", id)
			}
			ticket.FindReplyKeys(id)
		}
		for _, a := range append(m.To, m.Forwarded...) {
			MatchesAddress(a, "support@acme.test")
			ticket.FindReplyKeys(a)
		}
	})
}
