// Package webhook is the sink of type webhook: each batch of events POSTed to a URL as JSON,
// signed per the Standard Webhooks specification (webhook-id, webhook-timestamp,
// webhook-signature: HMAC-SHA256 with the sink's secret).
//
// A 2xx answer acknowledges the batch. 429 and 5xx, a timeout or a connection that failed are
// tried again (after Retry-After when the answer gives one); any other answer, a redirect
// included (redirects are not followed), fails the sink. Unless the operator allows it
// (limits.webhook_allow_private), a webhook connects only to public addresses, checked on the
// address resolved at connect time, so that neither a URL nor a name that resolves to a private
// address (DNS rebinding) reaches the server's own network.
//
// Concurrency: a Webhook belongs to its sink's runner goroutine; Deliver is not called twice at
// once.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/stream"
)

// Config is a webhook sink's own fields.
type Config struct {
	// URL is where to POST: http or https.
	URL string `yaml:"url" json:"url"`
	// Secret signs every request (Standard Webhooks): "whsec_" and a base64 key, as the
	// specification's libraries take it, or any other text, whose bytes are the key. Without
	// it requests are not signed.
	Secret string `yaml:"secret" json:"secret,omitempty"`
	// Timeout bounds one request, from connecting to the end of the answer's head. Defaults
	// to 10s.
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// Headers are added to every request.
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
}

// DefaultTimeout is Config.Timeout when none is given.
const DefaultTimeout = 10 * time.Second

// Validate returns every problem with c.
func (c *Config) Validate() []error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("url is required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("url: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("url: want http:// or https://, got %q", c.URL))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("url %q has no host", c.URL))
	}
	if c.Secret != "" {
		if _, err := ParseSecret(c.Secret); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	for name := range c.Headers {
		if strings.HasPrefix(strings.ToLower(name), "webhook-") || strings.EqualFold(name, "content-type") {
			errs = append(errs, fmt.Errorf("headers: %q is set by the sink", name))
		}
	}
	return errs
}

// Options are what a webhook takes from the server rather than its sink's configuration.
type Options struct {
	// AllowPrivate lets it connect to loopback, private and link-local addresses
	// (limits.webhook_allow_private).
	AllowPrivate bool
	// Batch says that every request carries a JSON array of events, even of one; without it,
	// each request is one event's JSON object.
	Batch bool
	// Now is the clock of webhook-timestamp; defaults to time.Now.
	Now func() time.Time
}

// Webhook POSTs batches of events to one URL. Create it with New.
type Webhook struct {
	cfg    Config
	opt    Options
	key    []byte // nil: unsigned
	client *http.Client
}

func init() {
	sink.Register("webhook", func(c Config, env sink.Env) (*Webhook, error) {
		return New(c, Options{AllowPrivate: env.AllowPrivate, Batch: env.Batch})
	})
}

// New returns a webhook for c, which must be valid.
func New(c Config, opt Options) (*Webhook, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("webhook: %w", errors.Join(errs...))
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	w := &Webhook{cfg: c, opt: opt}
	if c.Secret != "" {
		w.key, _ = ParseSecret(c.Secret) // valid: checked above
	}
	w.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would connect where the check cannot see
			DialContext:           dialer(c.Timeout, opt.AllowPrivate),
			TLSHandshakeTimeout:   c.Timeout,
			ResponseHeaderTimeout: c.Timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return w, nil
}

// Body is the request body for evs: one event's JSON, or with Options.Batch a JSON array.
func (w *Webhook) Body(evs []*stream.Event) []byte {
	if !w.opt.Batch && len(evs) == 1 {
		return evs[0].JSON()
	}
	n := 2
	for _, ev := range evs {
		n += len(ev.JSON()) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, ev := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ev.JSON()...)
	}
	return append(b, ']')
}

// MessageID is a batch's webhook-id: the first event's id, and the last's after ".." when
// there are several. A retry of the same batch has the same id, so that a receiver can tell it.
func MessageID(evs []*stream.Event) string {
	id := eventID(evs[0])
	if len(evs) > 1 {
		id += ".." + eventID(evs[len(evs)-1])
	}
	return id
}

func eventID(ev *stream.Event) string {
	if ev.Msg != nil {
		return ev.Msg.ID()
	}
	return ev.Source + ":gap"
}

// Deliver POSTs evs and returns nil once the receiver answered 2xx.
func (w *Webhook) Deliver(ctx context.Context, evs []*stream.Event) error {
	if len(evs) == 0 {
		return nil
	}
	body := w.Body(evs)
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return sink.Permanent(fmt.Errorf("webhook: %w", err))
	}
	id, ts := MessageID(evs), w.opt.Now().Unix()
	for k, v := range w.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "streamux-webhook")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	if w.key != nil {
		req.Header.Set("webhook-signature", Sign(w.key, id, ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrPrivate) {
			return sink.Permanent(fmt.Errorf("webhook: %w", err))
		}
		return sink.Retry(fmt.Errorf("webhook: %w", err), 0)
	}
	defer resp.Body.Close()
	// What the receiver says, for the sink's last error: a line of it at most.
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is kept
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests || code >= 500:
		return sink.Retry(fmt.Errorf("webhook: %s answered %s%s", w.cfg.URL, resp.Status, said(text)), retryAfter(resp.Header.Get("Retry-After"), w.opt.Now()))
	case code >= 300 && code < 400:
		return sink.Permanent(fmt.Errorf("webhook: %s answered %s (to %q): redirects are not followed; give the final URL", w.cfg.URL, resp.Status, resp.Header.Get("Location")))
	default:
		return sink.Permanent(fmt.Errorf("webhook: %s answered %s%s", w.cfg.URL, resp.Status, said(text)))
	}
}

// said is the start of an answer's body, for an error.
func said(text []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(text), "?"))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return ""
	}
	return ": " + s
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date; 0 for none or nonsense,
// and at most an hour.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// Close releases the idle connections.
func (w *Webhook) Close() error {
	w.client.CloseIdleConnections()
	return nil
}
