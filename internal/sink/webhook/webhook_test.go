package webhook_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sink/webhook"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func event(seq uint64, body string) *stream.Event {
	return stream.NewMessage(&stream.Message{Source: "orders", Seq: seq, Key: "k", Body: []byte(body), Time: time.UnixMilli(1_700_000_000_000)})
}

// received is one request a test receiver took.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a webhook receiver answering with answer.
func receiver(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, func() []received) {
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Header.Clone(), b})
		mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func newWebhook(t *testing.T, c webhook.Config, o webhook.Options) *webhook.Webhook {
	t.Helper()
	w, err := webhook.New(c, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// Requests carry the event (or an array of them), the Standard Webhooks headers, and the
// configured ones; 2xx acknowledges.
func TestDeliverSigned(t *testing.T) {
	srv, got := receiver(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a key of the test"))
	now := time.Unix(1_800_000_000, 0)
	w := newWebhook(t, webhook.Config{URL: srv.URL, Secret: secret, Headers: map[string]string{"X-Team": "a"}},
		webhook.Options{AllowPrivate: true, Now: func() time.Time { return now }})
	one, two := event(41, `{"a":1}`), event(42, `"x"`)
	if err := w.Deliver(context.Background(), []*stream.Event{one}); err != nil {
		t.Fatal(err)
	}
	batch := newWebhook(t, webhook.Config{URL: srv.URL, Secret: secret}, webhook.Options{AllowPrivate: true, Batch: true, Now: func() time.Time { return now }})
	if err := batch.Deliver(context.Background(), []*stream.Event{one, two}); err != nil {
		t.Fatal(err)
	}
	reqs := got()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if string(reqs[0].body) != string(one.JSON()) {
		t.Errorf("one event: %s", reqs[0].body)
	}
	if want := "[" + string(one.JSON()) + "," + string(two.JSON()) + "]"; string(reqs[1].body) != want {
		t.Errorf("a batch: %s, want %s", reqs[1].body, want)
	}
	key, _ := webhook.ParseSecret(secret)
	for i, want := range []string{"orders:41", "orders:41..orders:42"} {
		h := reqs[i].header
		if h.Get("webhook-id") != want || h.Get("webhook-timestamp") != "1800000000" || h.Get("Content-Type") != "application/json" {
			t.Errorf("request %d: headers %v", i, h)
		}
		if sig := webhook.Sign(key, want, 1_800_000_000, reqs[i].body); h.Get("webhook-signature") != sig {
			t.Errorf("request %d: signature %q, want %q", i, h.Get("webhook-signature"), sig)
		}
	}
	if reqs[0].header.Get("X-Team") != "a" {
		t.Errorf("configured header missing: %v", reqs[0].header)
	}
}

// The signatures are those of the Standard Webhooks reference library (JavaScript, run by
// Node): an implementation that is not ours checks ours, over random secrets, ids and bodies.
func TestSignatureMatchesTheReferenceLibrary(t *testing.T) {
	node := sourcetest.RequireCommand(t, "node")
	npm := sourcetest.RequireCommand(t, "npm")
	dir, _ := filepath.Abs("testdata/verify")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	var in strings.Builder
	type vector struct {
		Secret    string `json:"secret"`
		ID        string `json:"id"`
		Timestamp int64  `json:"timestamp"`
		Body      string `json:"body"`
		Signature string `json:"signature"`
	}
	const n = 50
	now := time.Now().Unix()
	for i := range n {
		k := make([]byte, 8+rand.IntN(40))
		for j := range k {
			k[j] = byte(rand.IntN(256))
		}
		secret := "whsec_" + base64.StdEncoding.EncodeToString(k)
		body := fmt.Sprintf(`{"n":%d,"s":"é\u2028%x"}`, i, rand.Uint64())
		id := fmt.Sprintf("orders:%d", rand.Uint64())
		key, err := webhook.ParseSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		v := vector{secret, id, now, body, webhook.Sign(key, id, now, []byte(body))}
		if i == n-1 {
			v.Signature = webhook.Sign(key, id, now, []byte(body+" ")) // one that must fail
		}
		b, _ := json.Marshal(v)
		in.Write(append(b, '\n'))
	}
	cmd := exec.Command(node, filepath.Join(dir, "verify.mjs"))
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	i := 0
	for ; sc.Scan(); i++ {
		want := "ok"
		if i == n-1 {
			want = "bad"
		}
		if !strings.HasPrefix(sc.Text(), want) {
			t.Errorf("vector %d: the reference library says %q", i, sc.Text())
		}
	}
	if i != n {
		t.Errorf("the reference library answered %d of %d", i, n)
	}
}

// What a receiver answers decides: 429 and 5xx are tried again (after Retry-After when given),
// a timeout too; other 4xx and redirects fail the sink, with the answer as its error.
func TestAnswers(t *testing.T) {
	for _, c := range []struct {
		name      string
		answer    func(w http.ResponseWriter, r *http.Request)
		permanent bool
		after     time.Duration
		says      string
	}{
		{"503 with Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}, false, 7 * time.Second, "503"},
		{"429", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }, false, 0, "429"},
		{"400", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no such hook\nmore", http.StatusBadRequest)
		}, true, 0, "no such hook"},
		{"302", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/", http.StatusFound)
		}, true, 0, "redirects are not followed"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) }, false, 0, "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, got := receiver(t, c.answer)
			w := newWebhook(t, webhook.Config{URL: srv.URL, Timeout: 100 * time.Millisecond}, webhook.Options{AllowPrivate: true})
			err := w.Deliver(context.Background(), []*stream.Event{event(1, "1")})
			if err == nil {
				t.Fatal("delivered")
			}
			says := strings.Contains(err.Error(), c.says)
			if c.name == "timeout" {
				// The request's deadline or the transport's header timeout: both are the
				// sink's timeout, and whichever fires first says so.
				says = strings.Contains(err.Error(), "timeout") || strings.Contains(err.Error(), "deadline exceeded")
			}
			if sink.IsPermanent(err) != c.permanent || sink.RetryAfter(err) != c.after || !says {
				t.Errorf("error %v (permanent %v, after %v)", err, sink.IsPermanent(err), sink.RetryAfter(err))
			}
			if len(got()) != 1 {
				t.Errorf("%d requests: a redirect is not followed, nothing is sent twice", len(got()))
			}
		})
	}
}

// Without limits.webhook_allow_private a webhook reaches public addresses only, checked on the
// address it connects to: loopback, the metadata service, a private address, a name that
// resolves to loopback are all refused, for good, without a request.
func TestPrivateAddressesRefused(t *testing.T) {
	srv, got := receiver(t, func(w http.ResponseWriter, r *http.Request) {})
	port := srv.URL[strings.LastIndexByte(srv.URL, ':'):]
	for _, u := range []string{
		srv.URL, "http://localhost" + port, "http://[::1]" + port, "http://169.254.169.254/latest/meta-data/",
		"http://10.1.2.3/", "http://192.168.0.1/", "http://0.0.0.0" + port, "http://100.64.0.1/", "http://[fe80::1]/",
	} {
		w := newWebhook(t, webhook.Config{URL: u, Timeout: time.Second}, webhook.Options{})
		err := w.Deliver(context.Background(), []*stream.Event{event(1, "1")})
		if !errors.Is(err, webhook.ErrPrivate) || !sink.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent ErrPrivate", u, err)
		}
	}
	if n := len(got()); n != 0 {
		t.Errorf("the receiver got %d requests", n)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct {
		cfg  webhook.Config
		want string
	}{
		{webhook.Config{}, "url is required"},
		{webhook.Config{URL: "ftp://x/"}, "want http:// or https://"},
		{webhook.Config{URL: "http:///x"}, "has no host"},
		{webhook.Config{URL: "http://x/", Secret: "whsec_!!"}, "base64"},
		{webhook.Config{URL: "http://x/", Timeout: -1}, "timeout"},
		{webhook.Config{URL: "http://x/", Headers: map[string]string{"Webhook-Signature": "x"}}, "set by the sink"},
	} {
		if all := sourcetest.Problems(c.cfg.Validate()); !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
	}
}
