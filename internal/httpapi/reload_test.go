package httpapi_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/httpapi"
)

// A reload's settings: the stream of a removed key ends with 1008 "credential revoked" and the
// key is refused from then on, the stream of a key kept goes on, a new key is accepted, and a
// new limit applies to the next stream.
func TestApplySettings(t *testing.T) {
	keep := auth.APIKey{Name: "keep", SHA256: auth.HashKey("keep-key"), Sources: []string{"in"}}
	drop := auth.APIKey{Name: "drop", SHA256: auth.HashKey("drop-key"), Sources: []string{"in"}}
	e := newEnv(t, envOptions{auth: auth.Config{APIKeys: []auth.APIKey{keep, drop}}})
	kept := e.ws(url.Values{"token": {"keep-key"}, "source": {"in"}})
	defer kept.close()
	dropped := e.ws(url.Values{"token": {"drop-key"}, "source": {"in"}})
	defer dropped.close()
	waitFor(t, "two subscriptions", func() bool { return e.sup.Count() == 2 })

	added := auth.APIKey{Name: "added", SHA256: auth.HashKey("added-key"), Write: []string{"in"}}
	a, err := auth.New(auth.Config{APIKeys: []auth.APIKey{keep, added}})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.api.Apply(httpapi.Settings{Auth: a, Limits: httpapi.Limits{SubscriptionsPerCredential: 1}}); n != 1 {
		t.Errorf("Apply revoked %d streams, want 1", n)
	}
	_ = dropped.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = dropped.conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "credential revoked" {
		t.Fatalf("the removed key's stream: want close 1008 credential revoked, got %v", err)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/sources/in/messages?key=after", strings.NewReader("1"))
	req.Header.Set("Authorization", "Bearer added-key")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish with the added key: %s", resp.Status)
	}
	if ev := kept.next(t); ev.Type != "message" || ev.Key != "after" {
		t.Errorf("the kept key's stream got %+v, want the message published after the reload", ev)
	}
	status := func(token string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", e.streamURL(url.Values{"source": {"in"}}), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("drop-key"); got != http.StatusUnauthorized {
		t.Errorf("the removed key: %d, want 401", got)
	}
	// keep holds one stream: the new limit of one per credential refuses a second.
	if got := status("keep-key"); got != http.StatusTooManyRequests {
		t.Errorf("a second stream of keep under a limit of 1: %d, want 429", got)
	}
	added1 := e.ws(url.Values{"token": {"added-key"}, "source": {"in"}})
	added1.close()
}
