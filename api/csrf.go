package api

import (
	"net/http"
	"net/url"
)

// errCrossOrigin answers an unsafe request a browser sent from another
// site.
var errCrossOrigin = &apiError{http.StatusForbidden, "csrf",
	"cross-origin request refused: a browser may only send this from the desk's own origin " +
		"(scripts: send no Origin or Sec-Fetch-Site header, with Authorization: Bearer TOKEN)"}

// crossOrigin refuses, with 403 csrf, unsafe requests (any method but GET,
// HEAD and OPTIONS) that a browser sent from another origin: basic
// authentication is sent by the browser on its own, so without this check
// any site could make a logged-in agent's browser post a note, close a
// ticket or pause a queue in the monitor. It is the standard library's
// http.CrossOriginProtection: Sec-Fetch-Site same-origin or none passes,
// any other value (same-site, cross-site) is refused unless Origin is one
// of the trusted origins; without Sec-Fetch-Site, an Origin whose host is
// the request's Host or a trusted origin passes; a request with neither
// header (curl, the CLI, scripts) passes.
func (s *server) crossOrigin(next http.Handler) http.Handler {
	p := http.NewCrossOriginProtection()
	for _, o := range s.opts.TrustedOrigins {
		origin, err := originOf(o)
		if err == nil {
			err = p.AddTrustedOrigin(origin)
		}
		if err != nil {
			s.log.Error("ignoring trusted origin", "origin", o, "err", err)
		}
	}
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.WarnContext(r.Context(), "cross-origin request refused", "request_id", infoFrom(r.Context()).id,
			"method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"),
			"sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		s.writeError(w, r, errCrossOrigin)
	}))
	return p.Handler(next)
}

// originOf cuts a URL (https://desk.example.com/desk/) to its origin
// (https://desk.example.com).
func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Host == "" {
		return raw, nil // AddTrustedOrigin says what is wrong with it
	}
	return u.Scheme + "://" + u.Host, nil
}
