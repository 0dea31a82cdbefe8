// Package tcpproxy is a TCP proxy for tests that can stand for a broken
// network: Freeze stops forwarding on the connections open at that moment
// while keeping them open (a half-open TCP connection, a server gone
// without a word), Cut closes them (a server that hangs up). Connections
// made later work normally.
package tcpproxy

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// Proxy forwards every connection to its listener to a target address.
type Proxy struct {
	// Addr is the proxy's host:port on 127.0.0.1.
	Addr string

	mu    sync.Mutex
	links []*link
}

type link struct {
	in, out net.Conn
	mu      sync.Mutex
	frozen  bool
}

// Start listens on a free loopback port and forwards to target until the
// test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcpproxy: listen: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close(); p.Cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			l := &link{in: in, out: out}
			p.mu.Lock()
			p.links = append(p.links, l)
			p.mu.Unlock()
			go l.pipe(out, in)
			go l.pipe(in, out)
		}
	}()
	return p
}

// Port is the proxy's port.
func (p *Proxy) Port() int {
	_, port, _ := net.SplitHostPort(p.Addr)
	n, _ := strconv.Atoi(port)
	return n
}

func (l *link) isFrozen() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.frozen
}

func (l *link) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		frozen := l.isFrozen()
		if n > 0 && !frozen {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !frozen {
				dst.Close()
			}
			return
		}
	}
}

// Freeze stops forwarding on the open connections, both ways, and keeps
// them open.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		l.mu.Lock()
		l.frozen = true
		l.mu.Unlock()
	}
}

// Cut closes the open connections, both sides.
func (p *Proxy) Cut() {
	p.mu.Lock()
	links := p.links
	p.links = nil
	p.mu.Unlock()
	for _, l := range links {
		l.in.Close()
		l.out.Close()
	}
}
