package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/gorilla/websocket"
)

// wsConn is a subscription's WebSocket.
type wsConn struct{ c *websocket.Conn }

// openWebSocket opens the stream u over WebSocket.
func (c *Client) openWebSocket(ctx context.Context, u *url.URL) (conn, error) {
	w := *u
	w.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	ws, resp, err := c.ws.DialContext(ctx, w.String(), h)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, readAPIError(resp)
		}
		return nil, fmt.Errorf("client: WebSocket %s: %w", u.Redacted(), err)
	}
	return &wsConn{ws}, nil
}

func (w *wsConn) next() ([]byte, error) {
	for {
		kind, data, err := w.c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && (ce.Code == websocket.ClosePolicyViolation || ce.Code == 4009) {
				return nil, &ClosedError{Code: ce.Code, Reason: ce.Text}
			}
			return nil, fmt.Errorf("client: WebSocket: %w", err)
		}
		if kind == websocket.TextMessage {
			return data, nil
		}
	}
}

func (w *wsConn) close() { _ = w.c.Close() }

// sseConn is a subscription's Server-Sent Events response.
type sseConn struct {
	body io.ReadCloser
	sc   *bufio.Scanner
	data []byte
}

// maxLine bounds one line of an SSE stream: an event's JSON, which holds a message as large as
// the server takes (limits.max_body_bytes, 8 MiB by default), escaped.
const maxLine = 64 << 20

// openSSE opens the stream u as Server-Sent Events.
func (c *Client) openSSE(ctx context.Context, u *url.URL) (conn, error) {
	req, err := c.request(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: SSE %s: %w", u.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readAPIError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return &sseConn{body: resp.Body, sc: sc}, nil
}

// next reads the lines of one event: its data lines, joined; comments (heartbeats), ids and
// event names are skipped, as the JSON says it all.
func (s *sseConn) next() ([]byte, error) {
	s.data = s.data[:0]
	for s.sc.Scan() {
		line := s.sc.Bytes()
		if len(line) == 0 {
			if len(s.data) > 0 {
				return s.data, nil
			}
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" {
			continue
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		if len(s.data) > 0 {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, value...)
	}
	if err := s.sc.Err(); err != nil {
		return nil, fmt.Errorf("client: SSE: %w", err)
	}
	return nil, errors.New("client: SSE: the server ended the stream")
}

func (s *sseConn) close() { _ = s.body.Close() }
