package ws

import (
	"context"
	"net/http"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/transport"
)

// benchServe serves out over the WebSocket that r asks for; ready is called once out is the stream's.
func benchServe(hub *Hub, w http.ResponseWriter, r *http.Request, out *output.Output, opt transport.Options, ready func()) {
	conn, err := hub.Upgrade(w, r)
	if err != nil {
		return
	}
	ready()
	_ = conn.Serve(context.Background(), &transport.Session{Out: out, Options: opt})
}
