package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"unicode/utf8"
)

// Message is a message to publish into an http source.
type Message struct {
	// ID names the message for de-duplication in a cluster (an envelope's "id"); optional.
	ID string
	// Key and Headers are the message's; Headers keep their case.
	Key     string
	Headers map[string]string
	// Body is the payload: sent as JSON when it is valid JSON, else as text when it is valid
	// UTF-8, else as base64 — the server keeps it byte for byte (a JSON body as the same JSON
	// value, compacted).
	Body []byte
}

// envelope is a message as one line of ?envelope=true.
type envelope struct {
	ID           string            `json:"id,omitempty"`
	Key          string            `json:"key,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	Body         json.RawMessage   `json:"body"`
	BodyEncoding string            `json:"body_encoding,omitempty"`
}

// appendEnvelope appends m as one envelope line.
func appendEnvelope(b []byte, m Message) ([]byte, error) {
	e := envelope{ID: m.ID, Key: m.Key, Headers: m.Headers}
	switch {
	case json.Valid(m.Body):
		e.Body = m.Body
	case utf8.Valid(m.Body):
		s, _ := json.Marshal(string(m.Body))
		e.Body = s
	default:
		s, _ := json.Marshal(base64.StdEncoding.EncodeToString(m.Body))
		e.Body, e.BodyEncoding = s, "base64"
	}
	line, err := json.Marshal(e)
	if err != nil {
		return b, fmt.Errorf("client: message %q: %w", m.Key, err)
	}
	return append(append(b, line...), '\n'), nil
}

// Published is the server's answer to an ingest request.
type Published struct {
	// Accepted is how many messages the source took.
	Accepted int `json:"accepted"`
	// IDs are, in a cluster, the id the log gave each message, in order.
	IDs []string `json:"ids,omitempty"`
}

// Publish publishes msgs into the http source, in order, in one request: all of them or, on
// an error, none (an *APIError; see its Accepted for a source that stopped in the middle).
func (c *Client) Publish(ctx context.Context, source string, msgs ...Message) (Published, error) {
	var body []byte
	for _, m := range msgs {
		var err error
		if body, err = appendEnvelope(body, m); err != nil {
			return Published{}, err
		}
	}
	req, err := c.request(ctx, http.MethodPost, c.ingestURL(source, false), bytes.NewReader(body))
	if err != nil {
		return Published{}, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	return c.doPublish(req)
}

func (c *Client) ingestURL(source string, stream bool) *url.URL {
	q := url.Values{"envelope": {"true"}}
	if stream {
		q.Set("stream", "true")
	}
	return c.endpoint("/v1/sources/"+url.PathEscape(source)+"/messages", q)
}

func (c *Client) doPublish(req *http.Request) (Published, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return Published{}, fmt.Errorf("client: publish to %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := readAPIError(resp)
		return Published{Accepted: e.Accepted}, e
	}
	var p Published
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return Published{}, fmt.Errorf("client: publish to %s: the answer: %w", req.URL.Path, err)
	}
	return p, nil
}

// PublishStream is one open ingest request (?stream=true): each message sent is published as
// soon as the server has read it, for as long as the stream lasts. Make it with OpenPublish;
// Send from one goroutine at a time; end it with Close, which returns the server's answer.
type PublishStream struct {
	pw   *io.PipeWriter
	w    *bufio.Writer
	line []byte
	done chan struct{} // closed when the request has its answer
	res  Published
	err  error
	once sync.Once
}

// OpenPublish opens a streaming ingest request into the http source. The request runs until
// Close (or ctx ends); its one goroutine is the HTTP request's, which Close waits for.
func (c *Client) OpenPublish(ctx context.Context, source string) (*PublishStream, error) {
	pr, pw := io.Pipe()
	req, err := c.request(ctx, http.MethodPost, c.ingestURL(source, true), pr)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	p := &PublishStream{pw: pw, w: bufio.NewWriterSize(pw, 64<<10), done: make(chan struct{})}
	go func() { // owned by p: Close waits for it
		defer close(p.done)
		p.res, p.err = c.doPublish(req)
		// The server answered (an error, or the end): a Send still writing must not block.
		pr.CloseWithError(errAnswered)
	}()
	return p, nil
}

var errAnswered = errors.New("client: the server has answered the publish stream")

// Send publishes m. It returns an error once the server has ended the stream (Close returns
// its answer); messages are written as they come, and Flush pushes what is buffered.
func (p *PublishStream) Send(m Message) error {
	var err error
	if p.line, err = appendEnvelope(p.line[:0], m); err != nil {
		return err
	}
	if _, err := p.w.Write(p.line); err != nil {
		return fmt.Errorf("client: publish stream: %w", err)
	}
	return nil
}

// Flush sends what Send buffered, so that the server publishes it now.
func (p *PublishStream) Flush() error {
	if err := p.w.Flush(); err != nil {
		return fmt.Errorf("client: publish stream: %w", err)
	}
	return nil
}

// Close ends the request and returns the server's answer: how many messages it published, or
// its error (an *APIError with Accepted).
func (p *PublishStream) Close() (Published, error) {
	p.once.Do(func() {
		ferr := p.w.Flush()
		p.pw.CloseWithError(ferr)
	})
	<-p.done
	return p.res, p.err
}
