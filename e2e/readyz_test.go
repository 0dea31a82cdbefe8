package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReadyzFollowsRedis stops the desk's Redis (a private redis-server,
// never the shared one) under a running web server: /readyz answers 503
// within two seconds, each answer within about one, and 200 again once
// Redis is back on the same port.
func TestReadyzFollowsRedis(t *testing.T) {
	t.Parallel()
	rds := startPrivateRedis(t)
	httpAddr := freeAddr(t)
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "desk.db")
	// The web role never dials the mailboxes: they may point nowhere.
	cfg := fmt.Sprintf(`
redis: {url: %q}
database: {url: %q}
http: {listen: %s, public_url: http://%s}
mail: {reply_key_secret: %s}
log: {level: info, format: json}
projects:
  - key: acme
    name: Acme Support
    address: support@example.test
    imap: {host: 127.0.0.1, port: 1, security: none, password: x}
    smtp: {host: 127.0.0.1, port: 1, security: none}
`, rds.url(0), dbURL, httpAddr, httpAddr, replySecret)
	config := filepath.Join(t.TempDir(), "servicedesk.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := &deskEnv{t: t, dbURL: dbURL, config: config, httpAddr: httpAddr}
	env.serve("--roles", "web")

	// readyz asks once, bounded by 3s on the client side so that a hang is
	// seen as such rather than as a test timeout.
	hc := &http.Client{Timeout: 3 * time.Second}
	readyz := func() (int, map[string]any, time.Duration, error) {
		start := time.Now()
		resp, err := hc.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return 0, nil, time.Since(start), err
		}
		defer resp.Body.Close()
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body, time.Since(start), err
	}
	// waitFor polls until /readyz answers want, failing after within.
	waitFor := func(want int, within time.Duration) map[string]any {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			status, body, took, err := readyz()
			// Its checks time out after 1 s; 3 s leaves room for a
			// loaded machine and still catches a probe that hangs.
			if err == nil && took > 3*time.Second {
				t.Errorf("/readyz took %s to answer %d; want about 1s at most (its checks time out after 1s)", took, status)
			}
			if err == nil && status == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz did not answer %d within %s; last: %d %v (%v)", want, within, status, body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("200 while Redis and the database answer", func(t *testing.T) {
		body := waitFor(http.StatusOK, 15*time.Second)
		checks, _ := body["checks"].(map[string]any)
		if checks["redis"] != "ok" || checks["database"] != "ok" {
			t.Errorf("checks = %v; want redis and database ok", body["checks"])
		}
	})
	t.Run("503 within 2s of Redis going away", func(t *testing.T) {
		rds.stop()
		body := waitFor(http.StatusServiceUnavailable, 2*time.Second)
		checks, _ := body["checks"].(map[string]any)
		if checks["redis"] == "ok" || checks["database"] != "ok" {
			t.Errorf("checks = %v; want redis failing and database ok", body["checks"])
		}
	})
	t.Run("200 again when Redis is back on the same port", func(t *testing.T) {
		rds.start()
		waitFor(http.StatusOK, 10*time.Second)
	})
}
