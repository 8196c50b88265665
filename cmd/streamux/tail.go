package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/streamux/streamux/client"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// tail is the seed's console sink: it prints the events that match a predicate, and reconnects
// after a drop with the last id of each source, so that it misses nothing the history still holds
// (the client package does the reconnecting and resuming).
func tail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("streamux tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "the streamux server")
	var sources, from stringList
	fs.Var(&sources, "source", "a source to read (repeatable); default: all")
	fs.Var(&from, "from", "resume after this event id (repeatable, one per source)")
	raw := fs.Bool("json", false, "print each event as the JSON the server sent")
	policy := fs.String("policy", "", "slow-consumer policy: disconnect (default) or drop")
	transport := fs.String("transport", "sse", "how events come: sse or websocket")
	token := fs.String("token", "", "an API key or token, sent as Authorization: Bearer (better: $STREAMUX_TOKEN or -token-file, which other users cannot see in the process list)")
	tokenFile := fs.String("token-file", "", "read the API key or token from this file")
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
	opts := client.Subscribe{Where: where, Sources: sources, From: from, Policy: *policy,
		OnReconnect: func(err error, wait time.Duration) {
			fmt.Fprintf(stderr, "streamux tail: %v; reconnecting in %v\n", err, wait.Round(time.Millisecond))
		}}
	switch *transport {
	case "sse":
		opts.Transport = client.SSE
	case "websocket", "ws":
		opts.Transport = client.WebSocket
	default:
		fmt.Fprintf(stderr, "streamux tail: -transport %q: want sse or websocket\n", *transport)
		return errUsage
	}
	tok, err := tailToken(*token, *tokenFile)
	if err != nil {
		return err
	}
	c, err := client.New(*base, client.WithToken(tok))
	if err != nil {
		return err
	}
	sub, err := c.Subscribe(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return tailFailure(err, where)
	}
	defer sub.Close()
	w := bufio.NewWriter(stdout)
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return tailFailure(err, where)
		}
		printEvent(w, &ev, *raw)
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

// tailToken is the credential: -token, else -token-file, else $STREAMUX_TOKEN.
func tailToken(flagToken, file string) (string, error) {
	switch {
	case flagToken != "":
		return flagToken, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("streamux tail: -token-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv("STREAMUX_TOKEN"), nil
}

// printEvent prints one event: a message as TIME ID KEY BODY, a gap or a status as a line
// that begins with "--", or the JSON as the server sent it.
func printEvent(w *bufio.Writer, ev *client.Event, raw bool) {
	switch {
	case raw:
		w.Write(ev.Raw)
		w.WriteByte('\n')
	case ev.Type == client.TypeMessage:
		fmt.Fprintf(w, "%s %s %s %s\n", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), ev.ID, quoteKey(ev.Key), ev.Body)
	case ev.Type == client.TypeGap && ev.Reason == "unknown_id":
		fmt.Fprintf(w, "-- gap: %s does not know the resume id (a server without a data directory restarted?); what it sent after it is lost, and %d more messages are no longer held\n", ev.Source, ev.Missed)
	case ev.Type == client.TypeGap && ev.Reason == "restart":
		fmt.Fprintf(w, "-- gap: %s restarted; at most %d messages after the resume id are lost with its history\n", ev.Source, ev.Missed)
	case ev.Type == client.TypeGap:
		fmt.Fprintf(w, "-- gap: %d matching messages of %s were not delivered (%s)\n", ev.Missed, ev.Source, ev.Reason)
	case ev.Type == client.TypeStatus:
		fmt.Fprintf(w, "-- %s is %s %s\n", ev.Source, ev.State, ev.Error)
	}
}

func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	return k
}

// tailFailure is why tail stops: the server's refusal, with a caret under a predicate's
// position.
func tailFailure(err error, where string) error {
	var api *client.APIError
	if !errors.As(err, &api) {
		return err
	}
	msg := fmt.Sprintf("%d %s (%s): %s", api.Status, http.StatusText(api.Status), api.Code, api.Message)
	if p := api.Position; p >= 0 && p <= len([]rune(where)) && !strings.Contains(where, "\n") {
		msg += "\n  " + where + "\n  " + strings.Repeat(" ", p) + "^"
	}
	return errors.New(msg)
}
