package notify

import (
	"context"
	"strings"
	"time"

	"github.com/wneessen/go-mail"
)

// Plain is a one-off mail sent outside the outbox: the project address
// verification. Errors are classified like Deliver's.
type Plain struct {
	From, To, Subject, Text string
	MessageID               string // "<id@domain>"
	Headers                 [][2]string
}

// SendPlain dials cfg, authenticates and sends one mail.
func SendPlain(ctx context.Context, cfg SMTPConfig, p Plain) error {
	s, err := dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.quit()
	_ = s.raw.SetDeadline(time.Now().Add(cfg.withDefaults().Timeout))
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := m.From(p.From); err != nil {
		return permanentf("render", "from %q: %v", p.From, err)
	}
	if err := m.To(p.To); err != nil {
		return permanentf("render", "recipient %q: %v", p.To, err)
	}
	m.Subject(p.Subject)
	m.SetMessageIDWithValue(strings.TrimSuffix(strings.TrimPrefix(p.MessageID, "<"), ">"))
	m.SetDate()
	for _, h := range p.Headers {
		m.SetGenHeader(mail.Header(h[0]), h[1])
	}
	m.SetBodyString(mail.TypeTextPlain, p.Text)
	if err := s.send(ctx, m); err != nil {
		return sendError(err)
	}
	return nil
}
