package jobs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/notify"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// Verification outcomes, in GitLab's terms.
const (
	VerifyOK                  = "ok"
	VerifyIncorrectToken      = "incorrect_token"
	VerifyIncorrectFrom       = "incorrect_from"
	VerifyNotReceived         = "mail_not_received_within_timeframe"
	VerifyInvalidCredentials  = "invalid_credentials"
	VerifySMTPHostIssue       = "smtp_host_issue"
	VerifyReadTimeout         = "read_timeout"
	VerifyIncorrectForwarding = "incorrect_forwarding_target"
)

// VerifyHeader carries the token of a verification mail.
const VerifyHeader = ingest.VerificationHeader

const verifySubject = "servicedesk address verification "

// VerifyStore is what a verification needs of the store.
type VerifyStore interface {
	StartVerification(ctx context.Context, v store.Verification) error
	FinishVerification(ctx context.Context, projectID int64, status, detail string, at time.Time) error
	ListInbound(ctx context.Context, f store.InboundFilter, p store.Page) ([]ticket.Inbound, bool, error)
	Blob(ctx context.Context, sha256hex string) ([]byte, error)
}

// Verifier proves that a project's branded address works both ways: a mail
// with a fresh token goes out through the project's own SMTP server to the
// project's own address, and must come back through the project's mailbox,
// fetched by the running workers, unaltered: same token, same From, still
// addressed to the desk.
//
// With an intake mailbox (Intake set), the mail may come back through the
// intake instead: it must be routed to the desk. One that reaches the
// intake naming no desk is GitLab's incorrect_forwarding_target.
type Verifier struct {
	store VerifyStore
	now   func() time.Time
	poll  time.Duration
	// Intake is the address of the intake mailbox; "" when there is none.
	Intake string
}

// NewVerifier wires a verifier.
func NewVerifier(st VerifyStore) *Verifier {
	return &Verifier{store: st, now: time.Now, poll: time.Second}
}

// Verify runs one verification and records its outcome; the returned
// status is one of the Verify* codes, detail says what was seen.
func (v *Verifier) Verify(ctx context.Context, d Desk, smtp notify.SMTPConfig, timeout time.Duration) (status, detail string, err error) {
	token := strings.ToLower(rand.Text()[:12])
	_, domain, _ := strings.Cut(d.Config.Address, "@")
	start := v.now()
	rec := store.Verification{ProjectID: d.ID, Token: token, MailID: "<verify." + token + "@" + domain + ">", StartedAt: start}
	if err := v.store.StartVerification(ctx, rec); err != nil {
		return "", "", err
	}
	finish := func(status, detail string) (string, string, error) {
		return status, detail, v.store.FinishVerification(context.WithoutCancel(ctx), d.ID, status, detail, v.now())
	}
	err = notify.SendPlain(ctx, smtp, notify.Plain{From: d.Config.Address, To: d.Config.Address,
		Subject: verifySubject + token, MessageID: rec.MailID, Headers: [][2]string{{VerifyHeader, token}, {"Auto-Submitted", "no"}},
		Text: "This mail verifies that " + d.Config.Address + " sends and receives for servicedesk. It can be deleted.\n"})
	if err != nil {
		switch {
		case errors.Is(err, notify.ErrAuth):
			return finish(VerifyInvalidCredentials, err.Error())
		case isTimeout(err):
			return finish(VerifyReadTimeout, err.Error())
		default:
			return finish(VerifySMTPHostIssue, err.Error())
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(v.poll)
	defer tick.Stop()
	for {
		in, found, err := v.find(ctx, d, start)
		if err == nil && !found && v.Intake != "" {
			if in, found, err = v.findAtIntake(ctx, token); found {
				return finish(VerifyIncorrectForwarding, v.unrouted(in))
			}
		}
		if err != nil {
			return "", "", err
		}
		if found {
			status, detail, err := v.judge(ctx, d, token, in)
			if err != nil {
				return "", "", err
			}
			return finish(status, detail)
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-deadline.C:
			return finish(VerifyNotReceived, fmt.Sprintf("no verification mail in %s's mailbox within %s: is a worker running, and does the address forward to the mailbox?", d.Config.Key, timeout))
		case <-tick.C:
		}
	}
}

// find looks for a processed verification mail fetched since start.
func (v *Verifier) find(ctx context.Context, d Desk, start time.Time) (ticket.Inbound, bool, error) {
	rows, _, err := v.store.ListInbound(ctx, store.InboundFilter{Project: d.Config.Key}, store.Page{Page: 1, PerPage: 200})
	if err != nil {
		return ticket.Inbound{}, false, fmt.Errorf("read the ledger: %w", err)
	}
	for _, r := range rows {
		if r.Outcome != ticket.OutcomeNone && !r.ReceivedAt.Before(start.Add(-time.Second)) &&
			strings.HasPrefix(r.Subject, verifySubject) && r.RawSHA256 != "" {
			return r, true, nil
		}
	}
	return ticket.Inbound{}, false, nil
}

// findAtIntake looks in the intake's ledger for the verification mail
// with token, processed but routed to no desk.
func (v *Verifier) findAtIntake(ctx context.Context, token string) (ticket.Inbound, bool, error) {
	rows, _, err := v.store.ListInbound(ctx, store.InboundFilter{Project: ticket.IntakeKey, Outcome: ticket.OutcomeUnroutable},
		store.Page{Page: 1, PerPage: 200})
	if err != nil {
		return ticket.Inbound{}, false, fmt.Errorf("read the intake's ledger: %w", err)
	}
	for _, r := range rows {
		if strings.EqualFold(r.Subject, verifySubject+token) {
			return r, true, nil
		}
	}
	return ticket.Inbound{}, false, nil
}

// unrouted is the detail of a verification mail that reached the intake
// mailbox without naming the desk.
func (v *Verifier) unrouted(in ticket.Inbound) string {
	carried := in.Reason
	if _, after, ok := strings.Cut(in.Reason, "it carried: "); ok {
		carried = after
	}
	return fmt.Sprintf("the verification mail reached the intake mailbox %s without naming the desk (it carried: %s): "+
		"forward the desk's address to %s keeping its address in To, or in X-Forwarded-To, X-Original-To, Delivered-To "+
		"or a Received for clause, or to %s with the desk key as +sub-address", v.Intake, carried, v.Intake, v.Intake)
}

// judge compares what came back with what was sent.
func (v *Verifier) judge(ctx context.Context, d Desk, token string, in ticket.Inbound) (string, string, error) {
	raw, err := v.store.Blob(ctx, in.RawSHA256)
	if err != nil {
		return "", "", fmt.Errorf("load verification mail: %w", err)
	}
	m, err := ingest.Parse(raw)
	if err != nil {
		return VerifyIncorrectToken, "the verification mail could not be read: " + err.Error(), nil
	}
	got := strings.TrimSpace(m.Header.Get(VerifyHeader))
	if got == "" {
		got = strings.TrimSpace(strings.TrimPrefix(m.Subject, verifySubject))
	}
	if !strings.EqualFold(got, token) {
		return VerifyIncorrectToken, fmt.Sprintf("token %q came back, %q was sent (an older verification mail?)", got, token), nil
	}
	if !strings.EqualFold(m.From, d.Config.Address) {
		return VerifyIncorrectFrom, fmt.Sprintf("From came back as %q, not %s: the SMTP server rewrites the sender", m.From, d.Config.Address), nil
	}
	via := "fetched from the mailbox"
	if in.ProjectID != d.ID {
		via = "fetched from the intake mailbox and routed to the desk"
	}
	for _, a := range addressesOf(m) {
		for _, own := range append([]string{d.Config.Address}, d.Config.Aliases...) {
			if ingest.MatchesAddress(a, own) {
				return VerifyOK, "sent through " + d.Config.SMTP.Host + " and " + via, nil
			}
		}
	}
	return VerifyIncorrectForwarding, fmt.Sprintf("the mail reached the mailbox addressed to %v, not %s", m.To, d.Config.Address), nil
}

// addressesOf is every recipient address m names, in any header routing
// reads.
func addressesOf(m *ingest.Mail) []string {
	out := append(append(append([]string{}, m.To...), m.Cc...), m.Forwarded...)
	for _, r := range m.Recipients {
		out = append(out, r.Address)
	}
	return out
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
