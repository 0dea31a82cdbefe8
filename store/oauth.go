package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// migrateOAuthTokens adds oauth_tokens: per OAuth2 token source (id, a
// hash of token URL, client and user), the refresh token the provider
// rotated to, sealed by package oauth (AES-256-GCM; never in clear), and
// the seed naming the configured refresh token it descends from. Times
// are Unix milliseconds, as in bounces.
func migrateOAuthTokens(tx *gorm.DB) error {
	return tx.Exec(`CREATE TABLE IF NOT EXISTS oauth_tokens (
		id TEXT PRIMARY KEY,
		sealed TEXT NOT NULL,
		seed TEXT NOT NULL,
		updated_ms BIGINT NOT NULL
	)`).Error
}

// LoadOAuthToken returns the sealed refresh token stored for the token
// source id, or "" when there is none.
func (s *Store) LoadOAuthToken(ctx context.Context, id string) (sealed, seed string, err error) {
	var row struct{ Sealed, Seed string }
	res := s.db.WithContext(ctx).Raw(`SELECT sealed, seed FROM oauth_tokens WHERE id = ?`, id).Scan(&row)
	if res.Error != nil {
		return "", "", fmt.Errorf("load oauth token: %w", res.Error)
	}
	return row.Sealed, row.Seed, nil
}

// SaveOAuthToken stores (or replaces) the sealed refresh token of the
// token source id.
func (s *Store) SaveOAuthToken(ctx context.Context, id, sealed, seed string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		err := tx.Exec(`INSERT INTO oauth_tokens (id, sealed, seed, updated_ms) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed, seed = excluded.seed, updated_ms = excluded.updated_ms`,
			id, sealed, seed, s.now().UnixMilli()).Error
		if err != nil {
			return fmt.Errorf("save oauth token: %w", err)
		}
		return nil
	})
}
