package store

import "testing"

func TestOAuthTokens(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		t.Run("a source with nothing stored loads empty, without an error", func(t *testing.T) {
			sealed, seed, err := e.s.LoadOAuthToken(ctx, "src-none")
			if err != nil || sealed != "" || seed != "" {
				t.Fatalf("LoadOAuthToken = %q, %q, %v; want empty, nil", sealed, seed, err)
			}
		})
		t.Run("a saved token loads back and a second save replaces it", func(t *testing.T) {
			for _, v := range []string{"v1:first", "v1:second"} {
				if err := e.s.SaveOAuthToken(ctx, "src-a", v, "seed-"+v); err != nil {
					t.Fatalf("SaveOAuthToken(%s): %v", v, err)
				}
			}
			sealed, seed, err := e.s.LoadOAuthToken(ctx, "src-a")
			if err != nil || sealed != "v1:second" || seed != "seed-v1:second" {
				t.Fatalf("LoadOAuthToken = %q, %q, %v; want the second save", sealed, seed, err)
			}
		})
	})
}
