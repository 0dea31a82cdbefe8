package e2e

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// obDesk is a running desk for the outbound tests: project acme on the
// stack's plain SMTP port and, with branded, project brand (its own From
// and SMTP AUTH credentials on the submission listener) and project broken
// (the same listener, a wrong password).
type obDesk struct {
	*deskEnv
	stack *mailstack.Stack
	st    *store.Store
	proc  *proc
	addr  string // acme's desk address
	tag   string // makes addresses unique per backend
	// dkimPub verifies the brand desk's DKIM signatures, published at
	// desk2026._domainkey.example.test.
	dkimPub *rsa.PublicKey
}

const (
	brandDesk  = "brand@example.test"
	brokenDesk = "broken@example.test"
)

func startOutboundDesk(t *testing.T, stack *mailstack.Stack, b backend, branded bool) *obDesk {
	t.Helper()
	d := &obDesk{stack: stack, addr: "desk-out-" + b.name + "@example.test", tag: b.name}
	stack.AddUser(t, d.addr, deskPass)
	var extra string
	if branded {
		stack.AddUser(t, brandDesk, deskPass)
		stack.AddUser(t, brokenDesk, deskPass)
		imapHost, imapPort, _ := strings.Cut(stack.IMAPAddr, ":")
		authHost, authPort, _ := strings.Cut(stack.SMTPAuthAddr, ":")
		project := func(key, name, addr, password string) string {
			return fmt.Sprintf(`  - key: %s
    name: %s
    address: %s
    imap: {host: %s, port: %s, security: none, username: %s, password: %s, poll_interval: 1s}
    smtp: {host: %s, port: %s, security: starttls, insecure_skip_verify: true, username: %q, password: %q}
`, key, name, addr, imapHost, imapPort, addr, deskPass, authHost, authPort, mailstack.SMTPUser, password)
		}
		// The brand desk signs with DKIM: its mail is verified as it
		// arrives, after OpenSMTPD and Dovecot added their headers.
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(t.TempDir(), "dkim.pem")
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		d.dkimPub = &key.PublicKey
		extra = project("brand", "Brand Care", brandDesk, mailstack.SMTPPassword) +
			"    dkim: {domain: example.test, selector: desk2026, private_key_file: " + keyFile + "}\n" +
			project("broken", "Broken Desk", brokenDesk, "not-the-password")
	}
	d.deskEnv = newDesk(t, stack, b, envOptions{desk: d.addr, extra: extra})
	// Sends retry every second, long enough to outlast an SMTP restart.
	cfg, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	patched := strings.Replace(string(cfg), "worker: {shutdown_timeout: 10s}",
		"worker: {shutdown_timeout: 10s, notify_backoff: [1s], notify_retries: 60}", 1)
	if patched == string(cfg) {
		t.Fatal("outbound desk: the harness's worker line changed; cannot set notify_backoff")
	}
	if err := os.WriteFile(d.config, []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
	d.proc = d.serve()
	d.st = d.openStore()
	return d
}

// customer makes a mailbox user unique to this desk's backend.
func (d *obDesk) customer(t *testing.T, name string) string {
	t.Helper()
	addr := name + "-" + d.tag + "@customer.test"
	d.stack.AddUser(t, addr, "pw")
	return addr
}

// openTicket delivers a first mail from requester (Cc cc, if any) to desk
// and waits for its ticket and the thank-you in the requester's mailbox.
func (d *obDesk) openTicket(t *testing.T, desk, requester, cc, subject string) (ticket.Ticket, *enmime.Envelope) {
	t.Helper()
	first := custMail{from: requester, to: desk, cc: cc, subject: subject, body: "Please help.",
		messageID: "<first-" + randomHex(6) + "@customer.test>"}
	d.stack.Deliver(t, desk, first.raw())
	tk := d.waitTicket(t, requester, 1)[0]
	thanks := d.mails(t, requester, 1)[0]
	return tk, thanks
}

// waitTicket waits until requester has n tickets and returns them, oldest
// first.
func (d *obDesk) waitTicket(t *testing.T, requester string, n int) []ticket.Ticket {
	t.Helper()
	var mine []ticket.Ticket
	eventually(t, 60*time.Second, fmt.Sprintf("%d ticket(s) of %s", n, requester), func() (bool, string) {
		mine = mine[:0]
		for _, tk := range tickets(t, d.st) {
			if strings.EqualFold(tk.Requester, requester) {
				mine = append(mine, tk)
			}
		}
		slices.SortFunc(mine, func(a, b ticket.Ticket) int { return cmp.Compare(a.Number, b.Number) })
		return len(mine) >= n, fmt.Sprintf("%d tickets", len(mine))
	})
	return mine
}

// ticketByID loads a ticket with its messages.
func (d *obDesk) ticketByID(t *testing.T, id int64) ticket.Ticket {
	t.Helper()
	tk, err := d.st.TicketByID(t.Context(), id)
	if err != nil {
		t.Fatalf("load ticket %d: %v", id, err)
	}
	return tk
}

// mails waits for at least n messages in user's INBOX and parses them all.
func (d *obDesk) mails(t *testing.T, user string, n int) []*enmime.Envelope {
	t.Helper()
	raws := d.stack.WaitForMail(t, user, "pw", n, 90*time.Second)
	out := make([]*enmime.Envelope, 0, len(raws))
	for i, raw := range raws {
		env, err := enmime.ReadEnvelope(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("mail %d of %s does not parse: %v", i, user, err)
		}
		out = append(out, env)
	}
	return out
}

// quietCount waits for settle, then returns how many mails user has.
func (d *obDesk) quietCount(t *testing.T, user string, settle time.Duration) int {
	t.Helper()
	time.Sleep(settle)
	return len(d.stack.WaitForMail(t, user, "pw", 0, 10*time.Second))
}

// deadLetterFor waits for an open outbound dead letter for address.
func (d *obDesk) deadLetterFor(t *testing.T, address string) ticket.DeadLetter {
	t.Helper()
	var found ticket.DeadLetter
	eventually(t, 60*time.Second, "an outbound dead letter for "+address, func() (bool, string) {
		var dls struct {
			Deadletters []ticket.DeadLetter `json:"deadletters"`
		}
		if err := d.api("/api/v1/deadletters", &dls); err != nil {
			return false, err.Error()
		}
		for _, dl := range dls.Deadletters {
			if dl.Kind == ticket.DeadOutbound && strings.EqualFold(dl.Address, address) {
				found = dl
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", dls.Deadletters)
	})
	return found
}

// withSubject returns the mails whose Subject contains s.
func withSubject(envs []*enmime.Envelope, s string) []*enmime.Envelope {
	var out []*enmime.Envelope
	for _, e := range envs {
		if strings.Contains(e.GetHeader("Subject"), s) {
			out = append(out, e)
		}
	}
	return out
}

// randomFile writes size random bytes to a file named name and returns its
// path and sha256.
func randomFile(t *testing.T, name string, size int) (string, string) {
	t.Helper()
	data := make([]byte, size)
	if _, err := io.ReadFull(rand.Reader, data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, sha256Hex(data)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

var linkPattern = regexp.MustCompile(`https?://[^\s<>"]+/attachments/[0-9]+(\?[^\s<>"]*)?`)

// download GETs url with the admin token and returns the body's sha256.
func download(t *testing.T, url string) (string, int) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %.200s", url, resp.Status, body)
	}
	return sha256Hex(body), len(body)
}
