package oauth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// sealPrefix versions the sealed format: "v1:" base64(nonce || AES-256-GCM
// ciphertext and tag), the Source's id as additional data (a row copied
// to another source does not open).
const sealPrefix = "v1:"

// sealer seals refresh tokens with a key derived from mail.token_key.
type sealer struct {
	aead cipher.AEAD
	mac  []byte // keys the seed: HMAC of the configured refresh token
}

func newSealer(key string) *sealer {
	enc := sha256.Sum256([]byte("servicedesk oauth token encryption\x00" + key))
	mac := sha256.Sum256([]byte("servicedesk oauth token seed\x00" + key))
	block, err := aes.NewCipher(enc[:])
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &sealer{aead: aead, mac: mac[:]}
}

func (s *sealer) seal(plain, id string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(plain), []byte(id))
	return sealPrefix + base64.StdEncoding.EncodeToString(out), nil
}

func (s *sealer) open(sealed, id string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return "", errors.New("open sealed token: unknown format")
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("open sealed token: not base64 of a nonce and ciphertext")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(id))
	if err != nil {
		return "", errors.New("open sealed token: authentication failed (another key?)")
	}
	return string(plain), nil
}

// seed identifies the configured refresh token a stored one descends
// from, without storing it: when the configuration gets a new one (a new
// consent), the stored token no longer applies.
func (s *sealer) seed(configured string) string {
	m := hmac.New(sha256.New, s.mac)
	m.Write([]byte(configured))
	return hex.EncodeToString(m.Sum(nil))
}

// sourceID names a Source in the store: a hash, so that the database does
// not list who logs in where.
func sourceID(cfg Config) string {
	h := sha256.Sum256([]byte(cfg.TokenURL + "\x00" + cfg.ClientID + "\x00" + strings.ToLower(cfg.User)))
	return hex.EncodeToString(h[:])
}
