package notify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

func pemKey(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestDeliverDKIM(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     []byte
		pub     crypto.PublicKey
		wantAlg string
	}{
		{"RSA PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), rsaKey.Public(), "rsa-sha256"},
		{"RSA PKCS#8", pemKey(t, rsaKey), rsaKey.Public(), "rsa-sha256"},
		{"Ed25519", pemKey(t, edKey), edKey.Public(), "ed25519-sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(p *Project, _ *Options) {
				p.DKIM = &DKIMConfig{Domain: "example.test", Selector: "desk2026", PrivateKeyPEM: tc.key}
			})
			addNote(b, b.store.putBlob(31, "a.bin", "application/octet-stream", randomBytes(3000, 3)))
			if err := b.d.Deliver(context.Background(), 2); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			data := onlyAccepted(t, b.sink, 1)[0].Data
			if !bytes.Contains(data, []byte("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")) {
				t.Fatalf("the mail has no one-click List-Unsubscribe-Post:\n%s", data)
			}
			tags := verifyDKIM(t, data, tc.pub)
			if err := verifyDKIMIndependently(t, data, tc.pub); err != nil {
				t.Fatalf("go-msgauth does not verify the mail: %v", err)
			}
			tampered := bytes.Replace(data, []byte(" <https://desk.example.com/tickets/acme/12/unsubscribe?"), []byte(" <https://evil.example.com/tickets/acme/12/unsubscribe?"), 1)
			if bytes.Equal(tampered, data) {
				t.Fatalf("the mail has no List-Unsubscribe link to tamper with:\n%s", data[:bytes.Index(data, []byte("\r\n\r\n"))])
			}
			if err := verifyDKIMIndependently(t, tampered, tc.pub); err == nil {
				t.Fatal("go-msgauth verifies a mail whose List-Unsubscribe was changed after signing; want it refused")
			}
			for k, want := range map[string]string{"d": "example.test", "s": "desk2026", "a": tc.wantAlg, "c": "relaxed/relaxed"} {
				if tags[k] != want {
					t.Errorf("DKIM-Signature %s= %q, want %q", k, tags[k], want)
				}
			}
			h := strings.ToLower(tags["h"])
			// RFC 8058 section 4: one-click unsubscribe needs both
			// List-Unsubscribe headers signed.
			for _, want := range []string{"from", "reply-to", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references",
				"content-type", "list-unsubscribe", "list-unsubscribe-post"} {
				if !strings.Contains(":"+h+":", ":"+want+":") {
					t.Errorf("DKIM-Signature h=%q does not sign %s", tags["h"], want)
				}
			}
		})
	}
	t.Run("no DKIM config, no signature", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if err := b.d.Deliver(context.Background(), 1); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		if v := parse(t, onlyAccepted(t, b.sink, 1)[0].Data).header("DKIM-Signature"); v != "" {
			t.Errorf("DKIM-Signature = %q, want none", v)
		}
	})
	t.Run("a key that does not parse is a permanent error", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(p *Project, _ *Options) {
			p.DKIM = &DKIMConfig{Domain: "example.test", Selector: "s", PrivateKeyPEM: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")}
		})
		err := b.d.Deliver(context.Background(), 1)
		if err == nil || !Permanent(err) || stepOf(err) != "dkim" {
			t.Fatalf("Deliver = %v (step %q), want a permanent error at step dkim", err, stepOf(err))
		}
		if all := b.sink.all(); len(all) != 0 {
			t.Errorf("SMTP server got %d messages, want none", len(all))
		}
	})
}

func TestDKIMConfigValidate(t *testing.T) {
	t.Parallel()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := pemKey(t, ed)
	tests := []struct {
		name    string
		cfg     DKIMConfig
		wantErr string
	}{
		{"valid", DKIMConfig{Domain: "example.test", Selector: "s1", PrivateKeyPEM: good}, ""},
		{"no domain", DKIMConfig{Selector: "s1", PrivateKeyPEM: good}, "domain is empty"},
		{"no selector", DKIMConfig{Domain: "example.test", PrivateKeyPEM: good}, "selector is empty"},
		{"no key", DKIMConfig{Domain: "example.test", Selector: "s1"}, "private key is empty"},
		{"not PEM", DKIMConfig{Domain: "example.test", Selector: "s1", PrivateKeyPEM: []byte("secret")}, "no valid PEM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// verifyDKIM checks the mail's DKIM-Signature (relaxed/relaxed, SHA-256,
// RFC 6376 3.4.2, 3.4.4, 3.7) against pub and returns its tags.
func verifyDKIM(t *testing.T, data []byte, pub crypto.PublicKey) map[string]string {
	t.Helper()
	i := bytes.Index(data, []byte("\r\n\r\n"))
	if i < 0 {
		t.Fatal("mail has no header/body separator")
	}
	head, body := string(data[:i+2]), data[i+4:]
	// Split into header fields, keeping folded lines together.
	var fields []string
	for line := range strings.SplitSeq(strings.TrimSuffix(head, "\r\n"), "\r\n") {
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(fields) > 0 {
			fields[len(fields)-1] += "\r\n" + line
			continue
		}
		fields = append(fields, line)
	}
	name := func(f string) string { n, _, _ := strings.Cut(f, ":"); return strings.ToLower(strings.TrimSpace(n)) }
	ws := regexp.MustCompile(`[ \t]+`)
	relaxed := func(f string) string {
		n, v, _ := strings.Cut(f, ":")
		v = strings.ReplaceAll(v, "\r\n", "")
		v = strings.TrimSpace(ws.ReplaceAllString(v, " "))
		return strings.ToLower(strings.TrimSpace(n)) + ":" + v
	}
	var sig string
	for _, f := range fields {
		if name(f) == "dkim-signature" {
			if sig != "" {
				t.Fatal("mail has two DKIM-Signature headers")
			}
			sig = f
		}
	}
	if sig == "" {
		t.Fatalf("mail has no DKIM-Signature header:\n%s", head)
	}
	tags := map[string]string{}
	_, sv, _ := strings.Cut(sig, ":")
	for tag := range strings.SplitSeq(sv, ";") {
		k, v, ok := strings.Cut(tag, "=")
		if !ok {
			continue
		}
		tags[strings.TrimSpace(k)] = regexp.MustCompile(`\s+`).ReplaceAllString(v, "")
	}

	// Body hash, relaxed.
	lines := strings.Split(string(body), "\r\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(ws.ReplaceAllString(l, " "), " ")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	canonBody := ""
	if len(lines) > 0 {
		canonBody = strings.Join(lines, "\r\n") + "\r\n"
	}
	bh := sha256.Sum256([]byte(canonBody))
	if got := base64.StdEncoding.EncodeToString(bh[:]); got != tags["bh"] {
		t.Fatalf("DKIM body hash bh=%s, but the received body hashes to %s: the body changed after signing", tags["bh"], got)
	}

	// Header hash: the signed fields, bottom-up per name, then the signature with b= empty.
	var in strings.Builder
	used := map[int]bool{}
	for h := range strings.SplitSeq(tags["h"], ":") {
		h = strings.ToLower(strings.TrimSpace(h))
		for j := len(fields) - 1; j >= 0; j-- {
			if !used[j] && name(fields[j]) == h {
				used[j] = true
				in.WriteString(relaxed(fields[j]) + "\r\n")
				break
			}
		}
	}
	emptied := regexp.MustCompile(`(;\s*b\s*=)[^;]*$`).ReplaceAllString(sig, "$1")
	if emptied == sig {
		t.Fatalf("could not empty b= in %q", sig)
	}
	in.WriteString(relaxed(emptied))
	hash := sha256.Sum256([]byte(in.String()))
	signature, err := base64.StdEncoding.DecodeString(tags["b"])
	if err != nil {
		t.Fatalf("DKIM b= is not base64: %v", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, hash[:], signature); err != nil {
			t.Fatalf("DKIM RSA signature does not verify: %v", err)
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(k, hash[:], signature) {
			t.Fatal("DKIM Ed25519 signature does not verify")
		}
	default:
		t.Fatalf("unsupported key %T", pub)
	}
	return tags
}

// verifyDKIMIndependently verifies the mail with go-msgauth's verifier
// (the key published as a TXT record would be): another reading of RFC
// 6376 than verifyDKIM's. It returns why the signature does not verify.
func verifyDKIMIndependently(t *testing.T, data []byte, pub crypto.PublicKey) error {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	kind := "rsa"
	if k, ok := pub.(ed25519.PublicKey); ok {
		kind, der = "ed25519", k // RFC 8463: the raw 32-byte key
	}
	record := "v=DKIM1; k=" + kind + "; p=" + base64.StdEncoding.EncodeToString(der)
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != "desk2026._domainkey.example.test" {
				return nil, fmt.Errorf("no TXT record at %s", domain)
			}
			return []string{record}, nil
		},
	})
	if err != nil {
		t.Fatalf("go-msgauth could not read the mail: %v", err)
	}
	if len(vs) != 1 || vs[0].Domain != "example.test" {
		t.Fatalf("go-msgauth verifications %+v; want one, for example.test", vs)
	}
	return vs[0].Err
}
