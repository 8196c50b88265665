package httpapi

import (
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Route is one endpoint of the API: a pattern of net/http's ServeMux and the methods it serves.
// A GET serves HEAD too, and every endpoint of /v1 answers OPTIONS (a CORS preflight); neither
// is listed.
type Route struct {
	Pattern string
	Methods []string
}

// route is a Route and what serves it.
type route struct {
	Route
	h http.Handler
}

// routes are the server's endpoints, as New registers them: the one list of them, which
// Routes shows and the OpenAPI document (openapi.json) must describe.
func (s *Server) routes() []route {
	one := func(pattern, m string, h http.HandlerFunc) route {
		return route{Route{pattern, []string{m}}, s.only(m, h)}
	}
	two := func(pattern, ma string, a http.HandlerFunc, mb string, b http.HandlerFunc) route {
		return route{Route{pattern, []string{ma, mb}}, s.either(ma, a, mb, b)}
	}
	rs := []route{
		one("/v1/stream", "GET", s.stream),
		one("/v1/check", "POST", s.check),
		one("/v1/sources", "GET", s.sources),
		// The ingest handler answers other methods itself: an unknown source is a 404
		// whatever the method.
		{Route{"/v1/sources/{name}/messages", []string{"POST"}}, http.HandlerFunc(s.ingest)},
		two("/v1/sinks", "GET", s.sinks, "POST", s.createSink),
		two("/v1/sinks/{name}", "GET", s.sink, "DELETE", s.deleteSink),
		one("/v1/subscriptions", "GET", s.subscriptions),
		one("/v1/subscriptions/{id}", "DELETE", s.kick),
		one("/v1/reload", "POST", s.reloadConfig),
		one("/v1/openapi.json", "GET", s.openAPI),
		one("/healthz", "GET", s.healthz),
		one("/readyz", "GET", s.readyz),
		{Route{"/metrics", []string{"GET"}}, promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})},
	}
	if s.opt.Web != nil {
		rs = append(rs, route{Route{"/", []string{"GET"}}, s.opt.Web})
	}
	return rs
}

// Routes lists the endpoints s serves, in the order they were registered: what
// GET /v1/openapi.json describes. (What no route of /v1 serves is answered 404, as JSON.)
func (s *Server) Routes() []Route {
	rs := s.routes()
	out := make([]Route, len(rs))
	for i, rt := range rs {
		out[i] = Route{rt.Pattern, slices.Clone(rt.Methods)}
	}
	return out
}
