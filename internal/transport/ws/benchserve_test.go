package ws

import (
	"net/http"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/transport"
)

// benchServe serves out over the WebSocket that r asks for; ready is called once out is the stream's.
func benchServe(hub *Hub, w http.ResponseWriter, r *http.Request, out *output.Output, opt transport.Options, ready func()) {
	conn, br, err := Upgrade(w, r, opt)
	if err != nil {
		return
	}
	ready()
	_ = hub.Serve(conn, br, out, nil, opt)
}
