package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"
)

func TestLifecycle(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("parts stop newest first, once", func(t *testing.T) {
		lc := newLifecycle(quiet)
		var order []string
		for _, name := range []string{"client", "worker", "http"} {
			lc.started(name, func(context.Context) { order = append(order, name) })
		}
		lc.stop(t.Context())
		lc.stop(t.Context())
		if want := []string{"http", "worker", "client"}; !slices.Equal(order, want) {
			t.Fatalf("stopped %v, want %v", order, want)
		}
	})

	t.Run("a part failing to start leaves none of the earlier ones running", func(t *testing.T) {
		lc := newLifecycle(quiet)
		running := 0
		start := func(name string, fail bool) error {
			if fail {
				return errors.New(name + ": address already in use")
			}
			running++
			lc.started(name, func(context.Context) { running-- })
			return nil
		}
		serve := func() error {
			defer lc.stop(context.Background())
			if err := start("worker", false); err != nil {
				return err
			}
			if err := start("scheduler", false); err != nil {
				return err
			}
			return start("http", true)
		}
		if err := serve(); err == nil || running != 0 {
			t.Fatalf("serve = %v with %d parts running, want the listen error and none running", err, running)
		}
	})

	t.Run("a background part's failure is reported and the others are stopped", func(t *testing.T) {
		lc := newLifecycle(quiet)
		quit := make(chan struct{})
		lc.run("scheduler", func() error { <-quit; return nil }, func(context.Context) { close(quit) })
		lc.run("http", func() error { return errors.New("http: accept failed") }, func(context.Context) {})
		select {
		case err := <-lc.failed():
			if err == nil || err.Error() != "http: accept failed" {
				t.Fatalf("failed() = %v, want the http error", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no failure reported within 5s")
		}
		lc.stop(t.Context()) // returns only once the scheduler has returned
		select {
		case <-quit:
		default:
			t.Fatal("the scheduler was not asked to stop")
		}
	})
}
