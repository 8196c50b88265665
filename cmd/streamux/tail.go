package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// tail is the seed's console sink: it prints the events that match a predicate, and reconnects
// after a drop with the last id of each source, so that it misses nothing the history still holds.
func tail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("streamux tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "the streamux server")
	var sources, from stringList
	fs.Var(&sources, "source", "a source to read (repeatable); default: all")
	fs.Var(&from, "from", "resume after this event id (repeatable, one per source)")
	raw := fs.Bool("json", false, "print each event as the JSON the server sent")
	policy := fs.String("policy", "", "slow-consumer policy: disconnect (default) or drop")
	token := fs.String("token", "", "an API key or token, sent as Authorization: Bearer")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: streamux tail [flags] 'PREDICATE'\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "streamux tail: give the predicate as one argument (quote it)")
		return errUsage
	}
	where := fs.Arg(0)
	last := map[string]string{} // source → last event id
	for _, id := range from {
		if i := strings.LastIndexByte(id, ':'); i > 0 {
			last[id[:i]] = id
		}
	}
	backoff := 100 * time.Millisecond
	for {
		q := url.Values{}
		if where != "" {
			q.Set("where", where)
		}
		for _, s := range sources {
			q.Add("source", s)
		}
		if *policy != "" {
			q.Set("policy", *policy)
		}
		ids := make([]string, 0, len(last))
		for _, id := range last {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			q.Add("from", id)
		}
		got, err := tailOnce(ctx, strings.TrimRight(*base, "/")+"/v1/stream?"+q.Encode(), *token, where, *raw, last, stdout)
		if ctx.Err() != nil {
			return nil
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return err
		}
		if got {
			backoff = 100 * time.Millisecond
		}
		fmt.Fprintf(stderr, "streamux tail: %v; reconnecting in %v\n", err, backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// fatalError is an answer that retrying will not change (a bad predicate, an unknown source).
type fatalError struct{ msg string }

func (e *fatalError) Error() string { return e.msg }

// tailOnce reads one NDJSON stream; it reports whether any event came.
func tailOnce(ctx context.Context, u, token, where string, raw bool, last map[string]string, stdout io.Writer) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, &fatalError{err.Error()}
	}
	req.Header.Set("Accept", "application/x-ndjson")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, apiFailure(resp, where)
	}
	got := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	w := bufio.NewWriter(stdout)
	for sc.Scan() {
		line := sc.Bytes()
		var ev struct {
			Type    string            `json:"type"`
			ID      string            `json:"id"`
			Source  string            `json:"source"`
			Key     string            `json:"key"`
			Time    string            `json:"time"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
			Missed  uint64            `json:"missed"`
			Reason  string            `json:"reason"`
			State   string            `json:"state"`
			Error   string            `json:"error"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return got, fmt.Errorf("bad event from server: %v", err)
		}
		got = true
		switch {
		case raw:
			w.Write(line)
			w.WriteByte('\n')
		case ev.Type == "message":
			fmt.Fprintf(w, "%s %s %s %s\n", ev.Time, ev.ID, quoteKey(ev.Key), ev.Body)
		case ev.Type == "gap" && ev.Reason == "unknown_id":
			fmt.Fprintf(w, "-- gap: %s does not know the resume id (a server without a data directory restarted?); what it sent after it is lost, and %d more messages are no longer held\n", ev.Source, ev.Missed)
		case ev.Type == "gap" && ev.Reason == "restart":
			fmt.Fprintf(w, "-- gap: %s restarted; at most %d messages after the resume id are lost with its history\n", ev.Source, ev.Missed)
		case ev.Type == "gap":
			fmt.Fprintf(w, "-- gap: %d matching messages of %s were not delivered (%s)\n", ev.Missed, ev.Source, ev.Reason)
		case ev.Type == "status":
			fmt.Fprintf(w, "-- %s is %s %s\n", ev.Source, ev.State, ev.Error)
		}
		if ev.Type == "message" {
			last[ev.Source] = ev.ID
		}
		// Flush when nothing more is waiting, so a burst is written at once and a trickle
		// is seen at once.
		if err := w.Flush(); err != nil {
			return got, err
		}
	}
	if err := sc.Err(); err != nil {
		return got, err
	}
	return got, errors.New("stream ended")
}

func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	return k
}

// apiFailure reads an error body and, for a predicate, points at the position.
func apiFailure(resp *http.Response, where string) error {
	var body struct {
		Error struct {
			Code     string `json:"code"`
			Message  string `json:"message"`
			Position *int   `json:"position"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &body) != nil || body.Error.Message == "" {
		err := fmt.Errorf("server answered %s", resp.Status)
		if resp.StatusCode >= 500 {
			return err
		}
		return &fatalError{err.Error()}
	}
	msg := fmt.Sprintf("%s (%s): %s", resp.Status, body.Error.Code, body.Error.Message)
	if p := body.Error.Position; p != nil && *p >= 0 && *p <= len([]rune(where)) && !strings.Contains(where, "\n") {
		msg += "\n  " + where + "\n  " + strings.Repeat(" ", *p) + "^"
	}
	if resp.StatusCode >= 500 {
		return errors.New(msg)
	}
	return &fatalError{msg}
}
