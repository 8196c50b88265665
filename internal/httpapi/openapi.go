package httpapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openAPIDocument is the API as an OpenAPI 3.1 document: every route of routes.go, its
// parameters, bodies, answers and errors, and the JSON Schemas of the events a stream carries.
// openapi_test.go keeps it true: it loads and validates it, compares its paths with Routes, and
// checks real answers of a running server and real events against it.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 document that GET /v1/openapi.json serves.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

// openAPI serves GET /v1/openapi.json. It needs no credential, as /healthz and /metrics do
// not: the document says what the server can do, not what anyone may read through it.
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(openAPIDocument)
	}
}
