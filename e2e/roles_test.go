package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/ticket"
)

// TestSplitRoles runs ingestion and outbound mail in separate processes
// (serve --roles scheduler,ingest and --roles notify), as an operator does
// to scale them apart: a mail becomes a ticket in the first, its thank-you
// leaves from the second, and with only the first running nothing is sent.
func TestSplitRoles(t *testing.T) {
	t.Parallel()
	stack := mailstack.Start(t)
	deskAddr := "roles-desk@example.test"
	customer := "roles-customer@customer.test"
	stack.AddUser(t, deskAddr, deskPass)
	stack.AddUser(t, customer, "pw")
	env := newDesk(t, stack, backends[0], envOptions{desk: deskAddr})
	st := env.openStore()
	probes := freeAddr(t)
	env.serve("--roles", "scheduler,ingest", "--metrics-listen", probes)

	m := custMail{from: customer, to: deskAddr, subject: "Split roles", body: "hello", messageID: "<roles-1@customer.test>"}
	stack.Deliver(t, deskAddr, m.raw())
	eventually(t, 60*time.Second, "a ticket from the ingest-only process", func() (bool, string) {
		n := len(tickets(t, st))
		return n == 1, fmt.Sprintf("%d tickets", n)
	})
	time.Sleep(2 * time.Second)
	if got := stack.WaitForMail(t, customer, "pw", 0, 15*time.Second); len(got) != 0 {
		t.Fatalf("%d mails sent with no notify process running; want none", len(got))
	}
	// Without the web role, the process still answers probes and serves
	// its own counters for scraping.
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ok",
		"/metrics": `servicedesk_inbound_messages_total{outcome="ticket_created",project="acme"} 1`} {
		eventually(t, 10*time.Second, "GET "+path+" of the ingest process", func() (bool, string) {
			resp, err := http.Get("http://" + probes + path)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == http.StatusOK && strings.Contains(string(body), want),
				fmt.Sprintf("%d: %.200s", resp.StatusCode, body)
		})
	}
	env.serve("--roles", "notify")
	got := stack.WaitForMail(t, customer, "pw", 1, 60*time.Second)
	if len(got) != 1 {
		t.Fatalf("customer got %d mails; want exactly the thank-you", len(got))
	}
	rows := ledger(t, st)
	if len(rows) != 1 || rows[0].Outcome != ticket.OutcomeTicketCreated {
		t.Fatalf("ledger = %+v; want one ticket_created row", rows)
	}
}
