package notify

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

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

// dkimSignedHeaders are the headers a signature covers: the identity,
// threading and MIME headers. The list must stay short: go-mail v0.8.1
// folds a DKIM-Signature tag longer than a line inside its value, which
// puts a space into h= that relaxed canonicalization keeps, so the
// signature would not verify. "h=" + this + "; " fits the 75 columns of a
// folded line (TestDKIMSignedHeadersFitOneLine).
var dkimSignedHeaders = []string{
	"From", "Reply-To", "To", "Subject", "Date", "Message-ID", "References", "Content-Type",
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

// dkimSigner returns a fresh signer for one message (go-mail's signer is
// not safe for concurrent use), or nil when the project does not sign.
// A configuration that does not work is a permanent error.
func (d *Deliverer) dkimSigner(p Project) (*mail.DKIMSigner, error) {
	if p.DKIM == nil {
		return nil, nil
	}
	d.mu.Lock()
	k, ok := d.dkimKeys[p.ID]
	d.mu.Unlock()
	if !ok {
		var err error
		if k, err = p.DKIM.key(); err != nil {
			return nil, &Error{Step: "dkim", Permanent: true, Err: err}
		}
		d.mu.Lock()
		d.dkimKeys[p.ID] = k
		d.mu.Unlock()
	}
	s := mail.NewDKIMSigner(strings.TrimSpace(p.DKIM.Domain), strings.TrimSpace(p.DKIM.Selector), k)
	s.SignHeaders(dkimSignedHeaders...)
	s.NowFunc = d.now
	return s, nil
}
