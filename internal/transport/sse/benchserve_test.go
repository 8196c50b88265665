package sse

import (
	"net/http"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/transport"
)

func benchServe(w http.ResponseWriter, r *http.Request, out *output.Output, positions map[string]uint64, opt transport.Options) error {
	return New(w).Serve(r.Context(), &transport.Session{Out: out, Positions: positions, Options: opt})
}
