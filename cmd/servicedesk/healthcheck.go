package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// defaultHealthURL is /readyz of the container image's listener
// (SERVICEDESK_HTTP_LISTEN=0.0.0.0:8080).
const defaultHealthURL = "http://127.0.0.1:8080/readyz"

// healthcheck GETs one URL (default /readyz on port 8080) and succeeds on a
// 2xx answer: a probe for container health checks, where the image has no
// shell or curl. It reads no config, so a check never depends on secrets.
// On failure it says why on one line, with the start of the answer
// (/readyz names the dependency that failed).
func (c *cli) healthcheck(ctx context.Context, args []string) error {
	fs := newFlags("healthcheck")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	target := defaultHealthURL
	switch fs.NArg() {
	case 0:
	case 1:
		target = fs.Arg(0)
	default:
		return usageError{errors.New("want at most one URL")}
	}
	if !strings.HasPrefix(target, "http://") && !strings.HasPrefix(target, "https://") {
		return usageError{fmt.Errorf("%q: want an http:// or https:// URL", target)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return usageError{err}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s: %s", target, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(c.stdout, "ok: %s %s\n", target, resp.Status)
	return nil
}
