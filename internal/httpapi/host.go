package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// Two checks come before any route, against the two ways a web page can use a streamux that
// it should not:
//
//   - DNS rebinding. A page of attacker.example whose name the attacker then points at
//     127.0.0.1 is, to the browser, same-origin with whatever listens there: it can read the
//     answers, and CORS does not apply. Only the Host header tells: it still says
//     attacker.example. Without authentication (the only credential such a page needs is the
//     visitor's network position) streamux answers only the names that can be its own:
//     loopback names, IP addresses, and allowed_hosts. With authentication a page would also
//     need a credential, which is not sent by itself (it is a bearer token, not a cookie), so
//     the Host is checked only when allowed_hosts is set, and a server behind a reverse proxy
//     keeps working under the proxy's name.
//
//   - Cross-site writes. A page of any site can send a POST with a "simple" content type
//     (text/plain, a form) without a preflight; the browser hides the answer, but the request
//     has done its work. A request that changes something (every method but GET, HEAD and
//     OPTIONS: ingest, DELETE /v1/subscriptions/{id}, and /v1/check, which changes nothing
//     but costs a history scan that no foreign page should be able to start) is refused when
//     a browser says it comes from another origin: net/http's CrossOriginProtection, which
//     reads Sec-Fetch-Site (every browser since 2023) and else compares Origin with Host,
//     trusting the origins of allowed_origins. Clients that are no browser send neither
//     header and are not concerned.

// admit refuses, with 403, a request whose Host is not allowed, or a cross-origin request
// that would change something. It reports whether the request may go on.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	if !s.hostAllowed(r.Host) {
		s.refuse(w, forbidden(fmt.Sprintf("Host %q is not one of this server's names: without auth, streamux answers only "+
			"loopback names (localhost), IP addresses and the names in allowed_hosts (DNS rebinding)", r.Host)))
		return false
	}
	if s.csrf != nil {
		if err := s.csrf.Check(r); err != nil {
			origin := r.Header.Get("Origin")
			if origin == "" {
				origin = "Sec-Fetch-Site: " + r.Header.Get("Sec-Fetch-Site")
			}
			s.refuse(w, forbidden(fmt.Sprintf("a %s from a page of another origin (%s) is refused: list that origin in allowed_origins",
				r.Method, origin)))
			return false
		}
	}
	return true
}

// refuse answers e and counts it.
func (s *Server) refuse(w http.ResponseWriter, e *apiError) {
	s.metrics.rejected.WithLabelValues(e.Code).Inc()
	writeError(w, e)
}

// newCrossOrigin is the cross-origin check for origins, the allowed_origins; nil when they
// allow any ("*").
func newCrossOrigin(origins []string) (*http.CrossOriginProtection, []error) {
	if slices.Contains(origins, "*") {
		return nil, nil
	}
	c := http.NewCrossOriginProtection()
	var errs []error
	for _, o := range origins {
		if err := c.AddTrustedOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("allowed_origins: %w", err))
		}
	}
	// Its default answer is text; ours is JSON, written by admit.
	c.SetDenyHandler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	return c, errs
}

// hostAllowed reports whether host, a request's Host header, names this server.
func (s *Server) hostAllowed(host string) bool {
	if s.opt.Auth != nil && len(s.opt.AllowedHosts) == 0 {
		return true
	}
	name := hostName(host)
	switch {
	case name == "":
		return true // HTTP/1.0 without a Host: no browser
	case name == "localhost" || strings.HasSuffix(name, ".localhost"):
		// RFC 6761: browsers resolve these to loopback themselves, never through DNS.
		return true
	}
	if _, err := netip.ParseAddr(name); err == nil {
		// A page is served from an address only by whoever listens on it: this server.
		return true
	}
	for _, h := range s.opt.AllowedHosts {
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		switch {
		case h == "*" || h == name:
			return true
		case strings.HasPrefix(h, ".") && (name == h[1:] || strings.HasSuffix(name, h)):
			return true
		}
	}
	return false
}

// hostName is the name in a Host header, without its port or an IPv6 address's brackets,
// lowercased and without a trailing dot.
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
