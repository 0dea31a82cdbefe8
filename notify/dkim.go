package notify

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	mail "github.com/wneessen/go-mail"
)

// DKIMConfig signs a project's outbound mail with DKIM (RFC 6376; RSA-SHA256,
// or Ed25519-SHA256 per RFC 8463), relaxed/relaxed canonicalization. The
// public key must be published at Selector._domainkey.Domain, and Domain
// should be the domain of the project address (or its parent) for DMARC
// alignment.
type DKIMConfig struct {
	// Domain is the signing domain, the d= tag, e.g. example.test.
	Domain string
	// Selector is the s= tag, e.g. "desk2026".
	Selector string
	// PrivateKeyPEM is an RSA key (PKCS#1 "RSA PRIVATE KEY" or PKCS#8
	// "PRIVATE KEY", 1024 bits at least, 2048 advised) or an Ed25519 key
	// (PKCS#8).
	PrivateKeyPEM []byte
}

// dkimSignedHeaders are the headers a signature covers: identity,
// threading, MIME and, as RFC 8058 section 4 requires for one-click
// unsubscribe, List-Unsubscribe and List-Unsubscribe-Post. A name the mail
// lacks is signed as absent (RFC 6376 section 5.4), so it cannot be added
// on the way either.
var dkimSignedHeaders = []string{
	"From", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "List-Unsubscribe", "List-Unsubscribe-Post",
}

// Validate checks the configuration and parses the key, so that a bad one
// is found at load time rather than at the first send.
func (c *DKIMConfig) Validate() error {
	_, err := c.key()
	return err
}

func (c *DKIMConfig) key() (crypto.Signer, error) {
	switch {
	case strings.TrimSpace(c.Domain) == "":
		return nil, errors.New("dkim: domain is empty")
	case strings.TrimSpace(c.Selector) == "":
		return nil, errors.New("dkim: selector is empty")
	case len(c.PrivateKeyPEM) == 0:
		return nil, errors.New("dkim: private key is empty")
	}
	k, err := mail.PrivKeyFromPEM(c.PrivateKeyPEM)
	if err != nil {
		// The parser's message names no key material.
		return nil, fmt.Errorf("dkim: private key for %s._domainkey.%s: %w", c.Selector, c.Domain, err)
	}
	if rk, ok := k.(*rsa.PrivateKey); ok && rk.N.BitLen() < 1024 {
		return nil, fmt.Errorf("dkim: RSA key for %s._domainkey.%s has %d bits, want at least 1024", c.Selector, c.Domain, rk.N.BitLen())
	}
	return k, nil
}

// dkimKey returns the project's parsed signing key (parsed once), or nil
// when the project does not sign. A configuration that does not work is a
// permanent error.
func (d *Deliverer) dkimKey(p Project) (crypto.Signer, error) {
	if p.DKIM == nil {
		return nil, nil
	}
	d.mu.Lock()
	k, ok := d.dkimKeys[p.ID]
	d.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := p.DKIM.key()
	if err != nil {
		return nil, &Error{Step: "dkim", Permanent: true, Err: err}
	}
	d.mu.Lock()
	d.dkimKeys[p.ID] = k
	d.mu.Unlock()
	return k, nil
}

// sign adds a DKIM-Signature to m when the project signs (relaxed/relaxed,
// SHA-256). m is rendered once into the signer and once more when sent;
// go-mail renders a Msg the same each time (boundaries, Date and
// Message-ID are fixed at the first render, attachments are read from
// the start). go-msgauth signs instead of go-mail's own signer, which
// breaks its h= tag across lines once it is longer than one: relaxed
// canonicalization then keeps a space inside a header name, and the
// signature no longer verifies with List-Unsubscribe among the names.
func (d *Deliverer) sign(p Project, m *mail.Msg) error {
	k, err := d.dkimKey(p)
	if err != nil || k == nil {
		return err
	}
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain: strings.TrimSpace(p.DKIM.Domain), Selector: strings.TrimSpace(p.DKIM.Selector), Signer: k,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: dkimSignedHeaders,
	})
	if err != nil {
		return &Error{Step: "dkim", Permanent: true, Err: fmt.Errorf("dkim: %s._domainkey.%s: %w", p.DKIM.Selector, p.DKIM.Domain, err)}
	}
	if _, err := m.WriteTo(s); err != nil {
		_ = s.Close()
		return &Error{Step: "dkim", Permanent: true, Err: fmt.Errorf("dkim: render the mail to sign it: %w", err)}
	}
	if err := s.Close(); err != nil {
		return &Error{Step: "dkim", Permanent: true, Err: fmt.Errorf("dkim: sign: %w", err)}
	}
	// Signature is the whole field, folded, with its CRLF; go-mail writes
	// the name, ": ", the value and a CRLF.
	name, value, _ := strings.Cut(strings.TrimSuffix(s.Signature(), "\r\n"), ":")
	m.SetGenHeaderPreformatted(mail.Header(name), strings.TrimLeft(value, " "))
	return nil
}
