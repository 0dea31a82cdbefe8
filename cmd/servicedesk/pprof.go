package main

import (
	"net/http"
	_ "net/http/pprof" // only served when SERVICEDESK_PPROF names an address
	"runtime"
)

// startPprof serves Go's profiler on addr (SERVICEDESK_PPROF, e.g.
// 127.0.0.1:6060) for performance work; it is off unless asked for, and
// should only ever listen on loopback. SERVICEDESK_PPROF_BLOCK=1 also
// records every blocking event and every contended mutex, for the block
// and mutex profiles (where a process waits rather than works); it costs
// some speed, so it is off by default.
func (c *cli) startPprof() {
	addr := envValue(c.env, "SERVICEDESK_PPROF")
	if addr == "" {
		return
	}
	if envValue(c.env, "SERVICEDESK_PPROF_BLOCK") == "1" {
		runtime.SetBlockProfileRate(1)
		runtime.SetMutexProfileFraction(1)
	}
	go func() {
		if err := http.ListenAndServe(addr, http.DefaultServeMux); err != nil {
			c.log.Warn("pprof listener", "addr", addr, "err", err)
		}
	}()
}
