package main

import (
	"net/http"
	_ "net/http/pprof" // only served when SERVICEDESK_PPROF names an address
)

// startPprof serves Go's profiler on addr (SERVICEDESK_PPROF, e.g.
// 127.0.0.1:6060) for performance work; it is off unless asked for, and
// should only ever listen on loopback.
func (c *cli) startPprof() {
	addr := envValue(c.env, "SERVICEDESK_PPROF")
	if addr == "" {
		return
	}
	go func() {
		if err := http.ListenAndServe(addr, http.DefaultServeMux); err != nil {
			c.log.Warn("pprof listener", "addr", addr, "err", err)
		}
	}()
}
