package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/fakegraph"
)

// A Microsoft 365 desk configured as the README says (graph: instead of
// imap:, the secret in a file) works through the binary: check passes its
// token and mailbox lines, serve turns every message in the Graph mailbox
// into one ticket and one thank-you mail, moves each to the processed
// folder after its outcome is committed, waits out throttling, and a
// restarted serve ingests nothing twice.
func TestGraphDeskThroughServe(t *testing.T) {
	t.Parallel()
	const n = 12
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			fake := fakegraph.New(t)
			sink := startSMTPSink(t, fake.User, "smtp-pw")
			smtpHost, smtpPort := splitHostPort(t, sink.addr)
			dir := t.TempDir()
			secretFile := filepath.Join(dir, "graph-secret")
			if err := os.WriteFile(secretFile, []byte(fake.Secret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			e := &deskEnv{t: t, dbURL: b.url(t), httpAddr: freeAddr(t), config: filepath.Join(dir, "servicedesk.yaml")}
			cfg := configHead(t, e) + fmt.Sprintf(`projects:
  - key: acme
    address: %s
    graph:
      tenant_id: %s
      client_id: %s
      client_secret_file: %s
      folder: Inbox
      poll_interval: 1s
      after_processing: move
      processed_folder: Done
      batch_size: 5
      authority_url: %s
      api_url: %s/v1.0
    smtp: {host: %s, port: %d, security: none, username: %s, password: smtp-pw}
`, fake.User, fake.Tenant, fake.ClientID, secretFile,
				fake.URL, fake.URL, smtpHost, smtpPort, fake.User)
			if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}

			out, err := e.run("check")
			if err != nil || !strings.Contains(out, "ok    project acme graph token") || !strings.Contains(out, "ok    project acme graph mailbox") {
				t.Fatalf("check = %v:\n%s\nwant the token and mailbox lines ok", err, out)
			}

			var ids []string
			for i := 1; i <= n; i++ {
				ids = append(ids, fake.Deliver("Inbox", string(custMail{from: fmt.Sprintf("alice%d@customer.test", i), to: fake.User,
					subject: fmt.Sprintf("printer %d is on fire", i), body: "help", messageID: fmt.Sprintf("<graph-%d@customer.test>", i)}.raw())))
			}
			fake.FailNext("GET", ids[2]+"/$value", 1, http.StatusTooManyRequests, "1", "TooManyRequests")

			p := e.serve()
			st := e.openStore()
			eventually(t, 90*time.Second, "a ticket per message", func() (bool, string) {
				ts := tickets(t, st)
				return len(ts) == n, fmt.Sprintf("%d tickets", len(ts))
			})
			// The move follows the commit, in the next fetch: the folder is
			// created then.
			eventually(t, 60*time.Second, "every message moved to Done", func() (bool, string) {
				done, ok := fake.LookupFolder("Done")
				if !ok {
					return false, "no folder Done yet"
				}
				moved := 0
				for _, id := range ids {
					if fake.Message(id).Folder == done {
						moved++
					}
				}
				return moved == n, fmt.Sprintf("%d of %d moved", moved, n)
			})
			eventually(t, 60*time.Second, "a thank-you mail per requester", func() (bool, string) {
				got := 0
				for i := 1; i <= n; i++ {
					got += min(len(sink.to(fmt.Sprintf("alice%d@customer.test", i))), 1)
				}
				return got == n, fmt.Sprintf("%d of %d requesters answered", got, n)
			})
			if err := p.stop(t); err != nil {
				t.Fatalf("serve did not stop cleanly: %v", err)
			}

			// Again: nothing is fetched or ingested twice.
			e.serve()
			time.Sleep(3 * time.Second) // a few polls
			if rows := ledger(t, st); len(rows) != n {
				t.Fatalf("%d ledger rows after a restart; want %d", len(rows), n)
			}
			if ts := tickets(t, st); len(ts) != n {
				t.Fatalf("%d tickets after a restart; want %d", len(ts), n)
			}
			for _, id := range ids {
				if d := fake.Downloads(id); d != 1 {
					t.Fatalf("message %s downloaded %d times; want once", id, d)
				}
			}
			if got := len(sink.messages()); got != n {
				t.Fatalf("%d mails sent; want %d thank-you mails", got, n)
			}
		})
	}
}
