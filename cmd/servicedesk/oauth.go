package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/notify"
	"github.com/servicedesk/servicedesk/oauth"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// mailTokens is the process's OAuth2 token sources for the mailboxes with
// auth: xoauth2 or oauthbearer, with rotated refresh tokens in the store
// and failures counted per project.
type mailTokens struct {
	tokens  *oauth.Tokens
	metrics *jobs.Metrics // nil: not counted (check)
}

// startMailTokens sets up c.tokens; st nil (a check without a database)
// keeps rotated refresh tokens in memory. Every mailbox that uses OAuth2
// then gets its token from c.tokens (imapOf, smtpOf).
func (c *cli) startMailTokens(st *store.Store, m *jobs.Metrics) error {
	opts := &oauth.Options{Key: c.cfg.Mail.TokenKey, Logger: c.log}
	if st != nil && c.cfg.Mail.TokenKey != "" {
		opts.Store = st
	}
	t, err := oauth.New(opts)
	if err != nil {
		return err
	}
	c.tokens = &mailTokens{tokens: t, metrics: m}
	return nil
}

// source returns the counted token source of one mailbox of project, nil
// for a password mailbox (or before startMailTokens).
func (c *cli) source(project, user, auth string, o config.OAuth2) *countedSource {
	if c.tokens == nil || !config.UsesOAuth2(auth) {
		return nil
	}
	src := c.tokens.tokens.Source(oauth.Config{TokenURL: o.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
		Scopes: o.Scopes, RefreshToken: o.RefreshToken, User: user})
	return &countedSource{src: src, project: project, metrics: c.tokens.metrics}
}

// mechanism is the SASL mechanism auth asks for.
func mechanism(auth string) string {
	if auth == config.AuthOAuthBearer {
		return mailbox.MechOAuthBearer
	}
	return mailbox.MechXOAUTH2
}

// imapOf is imapConfig with the project's token source, if it uses one.
func (c *cli) imapOf(p config.Project) mailbox.Config {
	return c.withIMAPTokens(imapConfig(p), p.Key, p.IMAP)
}

// withIMAPTokens gives cfg the token source of the mailbox m when it uses
// OAuth2; label is the metric's project label (a project key, or
// "intake" for a shared intake mailbox).
func (c *cli) withIMAPTokens(cfg mailbox.Config, label string, m config.IMAP) mailbox.Config {
	if src := c.source(label, m.Username, m.Auth, m.OAuth2); src != nil {
		cfg.Tokens, cfg.Mechanism = src, mechanism(m.Auth)
	}
	return cfg
}

// smtpOf is smtpConfig with the project's token source, if it uses one.
func (c *cli) smtpOf(p config.Project) notify.SMTPConfig {
	cfg := smtpConfig(p)
	if src := c.source(p.Key, p.SMTP.Username, p.SMTP.Auth, p.SMTP.OAuth2); src != nil {
		cfg.Tokens, cfg.Mechanism = src, mechanism(p.SMTP.Auth)
	}
	return cfg
}

// withSMTPTokens gives the notify projects their token sources.
func (c *cli) withSMTPTokens(nps []notify.Project) []notify.Project {
	for i := range nps {
		if p, ok := c.cfg.Project(nps[i].Key); ok {
			nps[i].SMTP = c.smtpOf(p)
		}
	}
	return nps
}

// countedSource counts a source's failures in
// servicedesk_oauth2_token_errors_total by project and step: the token
// endpoint, the grant, and every access token a server refused at login
// (also one that a refresh then cured: a count that grows says tokens die
// before their expiry).
type countedSource struct {
	src     *oauth.Source
	project string
	metrics *jobs.Metrics
}

var (
	_ mailbox.TokenSource = (*countedSource)(nil)
	_ notify.TokenSource  = (*countedSource)(nil)
)

func (s *countedSource) Token(ctx context.Context) (string, error) {
	tok, err := s.src.Token(ctx)
	if step, ok := oauth.StepOf(err); ok && !errors.Is(err, context.Canceled) {
		s.metrics.OAuth2TokenError(s.project, string(step))
	}
	return tok, err
}

func (s *countedSource) Refused(token string) {
	s.metrics.OAuth2TokenError(s.project, string(oauth.StepLogin))
	s.src.Refused(token)
}

// checkTokens prints the token lines of `check` for the project's OAuth2
// mailboxes: the token endpoint, then the grant (the login is the
// mailbox's own line). A failed endpoint leaves the grant unknown.
func (c *cli) checkTokens(ctx context.Context, p config.Project, line func(string, error)) {
	for _, mb := range []struct {
		kind, user, auth string
		o                config.OAuth2
	}{
		{"imap", p.IMAP.Username, p.IMAP.Auth, p.IMAP.OAuth2},
		{"smtp", p.SMTP.Username, p.SMTP.Auth, p.SMTP.OAuth2},
	} {
		src := c.source(p.Key, mb.user, mb.auth, mb.o)
		if src == nil {
			continue
		}
		grant := "client_credentials"
		if mb.o.RefreshToken != "" {
			grant = "refresh_token"
		}
		name := fmt.Sprintf("project %s %s oauth2", p.Key, mb.kind)
		if p.Key == ticket.IntakeKey {
			name = fmt.Sprintf("intake %s %s oauth2", p.Address, mb.kind)
		}
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := src.src.Token(tctx)
		cancel()
		step, _ := oauth.StepOf(err)
		switch {
		case err == nil:
			line(name+" token endpoint "+tokenHost(mb.o.TokenURL), nil)
			line(name+" grant "+grant, nil)
		case step == oauth.StepGrant:
			line(name+" token endpoint "+tokenHost(mb.o.TokenURL), nil)
			line(name+" grant "+grant, err)
		case step == oauth.StepStore:
			line(name+" token store", err)
		default:
			line(name+" token endpoint "+tokenHost(mb.o.TokenURL), err)
			line(name+" grant "+grant, errors.New("not checked: the token endpoint did not answer"))
		}
	}
}

// tokenHost names the token endpoint by its host only.
func tokenHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(token_url)"
	}
	return u.Host
}
