package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.Write([]byte(`{"status":"ok"}`))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("{\"redis\":\"down\x1b[2J\"}"))
	}))
	defer srv.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens there any more

	for _, tc := range []struct {
		args       []string
		code       int
		out, error string
	}{
		{[]string{"healthcheck", srv.URL + "/readyz"}, 0, "ok: " + srv.URL + "/readyz 200 OK", ""},
		// No config is read: a missing file must not fail the probe.
		{[]string{"--config", "/nonexistent.yaml", "healthcheck", srv.URL + "/readyz", "--timeout", "2s"}, 0, "ok:", ""},
		{[]string{"healthcheck", srv.URL + "/unready"}, 1, "", "503 Service Unavailable: {\"redis\":\"down\uFFFD[2J\"}"},
		{[]string{"healthcheck", down.URL + "/readyz"}, 1, "", "connection refused"},
		{[]string{"healthcheck", "127.0.0.1:8080"}, 2, "", "want an http:// or https:// URL"},
		{[]string{"healthcheck", "a", "b"}, 2, "", "at most one URL"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), tc.args, nil, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.error) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, %q, %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.out, tc.error)
		}
		if tc.code != 0 && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("%q: stderr is not one line: %q", tc.args, stderr.String())
		}
	}
}
