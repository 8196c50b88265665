// Package client is a Go client of a streamux server: it subscribes to the messages that satisfy
// a predicate, over WebSocket or Server-Sent Events, and keeps the subscription going across
// disconnects — reconnecting with backoff and jitter and resuming after the last message of each
// source, so that nothing the server's history still holds is missed or repeated, and what it no
// longer holds is told by a gap event. It also publishes into a server's http sources (ingest),
// one request at a time or as one open stream.
//
// A Client is safe for concurrent use. A Subscription is read by one goroutine at a time; it
// starts no goroutine of its own, so a subscription that is closed, or whose context ends,
// leaves nothing running.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Client talks to one streamux server. Make it with New.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	ws    *websocket.Dialer
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends token (an API key or a JWT) as "Authorization: Bearer" on every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient makes requests (SSE, NDJSON, ingest, the other endpoints) with h instead of a
// client of the package's own. A subscription's requests must not time out as a whole: leave
// h.Timeout zero.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithDialer opens WebSocket connections with d instead of websocket.DefaultDialer.
func WithDialer(d *websocket.Dialer) Option { return func(c *Client) { c.ws = d } }

// New returns a client of the server at baseURL (http://127.0.0.1:8080, or https://…; a path
// is kept as the prefix of every endpoint, for a server behind a proxy).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: the server's URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: the server's URL %q: want http://host[:port] or https://host[:port]", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, http: &http.Client{}, ws: websocket.DefaultDialer}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// APIError is an error answer of the server: {"error":{"code","message","position"}} with its
// HTTP status.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the server's error code: invalid_predicate, unknown_source, limit_exceeded…
	Code string
	// Message says what is wrong.
	Message string
	// Position is, for a predicate, the 0-based character where the problem is; -1 otherwise.
	Position int
	// Accepted is, for an ingest request that reached its source, how many of its messages
	// were published before the error.
	Accepted int
	// RetryAfter is what the server asked to wait before trying again (429, 503), or zero.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("streamux: %d %s: %s", e.Status, e.Code, e.Message)
	if e.Position >= 0 {
		msg += fmt.Sprintf(" (at character %d)", e.Position)
	}
	return msg
}

// Temporary reports whether trying again later may succeed: a limit (429), a server that shuts
// down or is not ready (503), another server error (5xx).
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// readAPIError reads an error answer; an answer that is not the server's JSON is told by its
// status.
func readAPIError(resp *http.Response) *APIError {
	e := &APIError{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode), Message: resp.Status, Position: -1}
	if s := resp.Header.Get("Retry-After"); s != "" {
		var secs int
		if _, err := fmt.Sscan(s, &secs); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	var body struct {
		Error struct {
			Code     string `json:"code"`
			Message  string `json:"message"`
			Position *int   `json:"position"`
			Accepted int    `json:"accepted"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message, e.Accepted = body.Error.Code, body.Error.Message, body.Error.Accepted
		if body.Error.Position != nil {
			e.Position = *body.Error.Position
		}
	}
	return e
}

// endpoint is the URL of path on the server, with q.
func (c *Client) endpoint(path string, q url.Values) *url.URL {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return &u
}

// request makes a request to the server with the client's credential.
func (c *Client) request(ctx context.Context, method string, u *url.URL, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, u.Path, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// getJSON gets path and decodes its JSON answer into v.
func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	req, err := c.request(ctx, http.MethodGet, c.endpoint(path, nil), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("client: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readAPIError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("client: GET %s: the answer: %w", path, err)
	}
	return nil
}

// Source is one source as GET /v1/sources shows it.
type Source struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
	// Counters are the source's counters (received, queued, last_seq…), as the server names
	// them.
	Counters map[string]any `json:"counters"`
}

// Sources lists the server's sources that the credential may read.
func (c *Client) Sources(ctx context.Context) ([]Source, error) {
	var out []Source
	return out, c.getJSON(ctx, "/v1/sources", &out)
}

// errClosed is what a closed subscription returns.
var errClosed = errors.New("client: the subscription is closed")
