package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/httpapi"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/sourcetest"
)

// checkResult is the answer of POST /v1/check, as far as these tests read it.
type checkResult struct {
	Valid   bool `json:"valid"`
	Matched int  `json:"matched"`
	Of      int  `json:"of"`
	Failed  int  `json:"failed"`
	Sources map[string]struct {
		Matched int `json:"matched"`
		Of      int `json:"of"`
		Failed  int `json:"failed"`
	} `json:"sources"`
	FirstError *struct {
		ID      string `json:"id"`
		Message string `json:"message"`
	} `json:"first_error"`
	Warnings []struct {
		Message  string `json:"message"`
		Position int    `json:"position"`
	} `json:"warnings"`
	Stopped *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		ID      string `json:"id"`
	} `json:"stopped"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// check posts body to /v1/check and returns the answer.
func (e *env) check(body string) (*http.Response, checkResult) {
	e.t.Helper()
	resp, err := e.client.Post(e.srv.URL+"/v1/check", "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v checkResult
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		e.t.Fatalf("POST /v1/check %s: %s: %v", body, resp.Status, err)
	}
	return resp, v
}

// A source named twice is counted once (issue 16, item 7).
func TestCheckSourceNamedTwice(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.publish("in", numbered(3, keyEvenOdd)...)
	e.publish("other", numbered(2, keyEvenOdd)...)
	for _, body := range []string{
		`{"where":"true","source":["in","in"]}`,
		`{"where":"key == \"odd\"","source":["in","other","in"]}`,
	} {
		resp, v := e.check(body)
		want := map[string]int{"in": 3, "other": 0}
		if strings.Contains(body, "other") {
			want["other"] = 2
		}
		if resp.StatusCode != 200 || v.Of != want["in"]+want["other"] || v.Sources["in"].Of != 3 || v.Sources["other"].Of != want["other"] {
			t.Errorf("%s: %s %+v; want of %d", body, resp.Status, v, want["in"]+want["other"])
		}
	}
}

// A check's work is bounded by limits.check_max_cost: the answer counts what it looked at and
// says where it stopped.
func TestCheckBudget(t *testing.T) {
	e := newEnv(t, envOptions{history: 1000, check: httpapi.CheckLimits{MaxCost: 5000}})
	e.publish("in", numbered(1000, keyEvenOdd)...)
	resp, v := e.check(`{"where":"body.n > 0","source":"in"}`)
	if resp.StatusCode != 200 || !v.Valid || v.Stopped == nil || v.Stopped.Code != "check_too_costly" ||
		!strings.Contains(v.Stopped.Message, "limits.check_max_cost") {
		t.Fatalf("%s %+v; want a check stopped by check_too_costly", resp.Status, v)
	}
	// Each message costs one, its 8 or so bytes of body, and the predicate's estimate: a few
	// hundred of them fit.
	if v.Of < 100 || v.Of >= 1000 || v.Matched != v.Of || v.Stopped.ID != fmt.Sprintf("in:%d", v.Of) {
		t.Errorf("counted %d of 1000, stopped at %s", v.Of, v.Stopped.ID)
	}
	// Within the budget, no stop.
	if _, v := e.check(`{"where":"body.n > 0","source":"other"}`); v.Stopped != nil || v.Of != 0 {
		t.Errorf("an empty history: %+v", v)
	}
}

// One evaluation is held to the predicate's cost limit, as a stream is: the check stops where a
// stream with the predicate would be cut, and says so, without running the regex of issue 16
// on 10 KB.
func TestCheckPredicateTooCostly(t *testing.T) {
	e := newEnv(t, envOptions{predicates: predicate.Limits{MaxCost: 10_000_000}})
	e.publish("in", msg{Key: "k", Body: json.RawMessage(`{"s":"a"}`)})
	e.publish("in", bigBodies(3)...)
	resp, v := e.check(`{"where":` + strconv.Quote(hostileRegex) + `,"source":"in"}`)
	if resp.StatusCode != 200 || !v.Valid || v.Stopped == nil || v.Stopped.Code != "predicate_too_costly" ||
		v.Stopped.ID != "in:2" || v.Of != 1 || !strings.Contains(v.Stopped.Message, "limits.predicate_max_cost") {
		t.Fatalf("%s %+v; want a check stopped by predicate_too_costly at in:2", resp.Status, v)
	}
	// At the default limits, it does not compile.
	d := newEnv(t, envOptions{})
	if resp, v := d.check(`{"where":` + strconv.Quote(hostileRegex) + `}`); resp.StatusCode != 200 || v.Valid ||
		v.Error == nil || v.Error.Code != "predicate_too_costly" {
		t.Fatalf("default limits: %s %+v", resp.Status, v)
	}
}

// Checks are rate-limited per address without auth (loopback too, with apply_to_loopback), and
// per credential with it: a 429 with Retry-After, as the subscribe rate limit answers.
func TestCheckRateLimit(t *testing.T) {
	e := newEnv(t, envOptions{limits: httpapi.Limits{ApplyToLoopback: true}, check: httpapi.CheckLimits{Rate: 0.01, Burst: 2}})
	for i := range 3 {
		resp, _ := e.checkRaw(`{"where":"true"}`, "")
		if i < 2 && resp.StatusCode != 200 {
			t.Fatalf("call %d: %s", i+1, resp.Status)
		}
		if i == 2 && (resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "") {
			t.Fatalf("call 3: %s, Retry-After %q; want 429 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
		}
	}
	_, body := e.checkRaw(`{"where":"true"}`, "")
	if !strings.Contains(body, "limit_exceeded") || !strings.Contains(body, "limits.check_rate") {
		t.Errorf("429 body %s", body)
	}

	keyA, keyB := "check-key-a", "check-key-b"
	a := newEnv(t, envOptions{auth: auth.Config{APIKeys: []auth.APIKey{{Name: "a", SHA256: auth.HashKey(keyA)}, {Name: "b", SHA256: auth.HashKey(keyB)}}},
		check: httpapi.CheckLimits{Rate: 0.01, Burst: 1}})
	if resp, _ := a.checkRaw(`{"where":"true"}`, keyA); resp.StatusCode != 200 {
		t.Fatalf("key a, first call: %s", resp.Status)
	}
	if resp, _ := a.checkRaw(`{"where":"true"}`, keyA); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("key a, second call: %s; want 429 (loopback does not exempt a credential)", resp.Status)
	}
	if resp, _ := a.checkRaw(`{"where":"true"}`, keyB); resp.StatusCode != 200 {
		t.Fatalf("key b: %s; each credential has its own rate", resp.Status)
	}
}

// A reload that turns apply_to_loopback on subjects loopback callers of /v1/check to its rate
// from then on, as it does their subscriptions; turned off again, they are exempt again.
func TestCheckRateFollowsReloadedApplyToLoopback(t *testing.T) {
	e := newEnv(t, envOptions{check: httpapi.CheckLimits{Rate: 0.01, Burst: 1}})
	calls := func(n int) (limited int) {
		t.Helper()
		for range n {
			if resp, _ := e.checkRaw(`{"where":"true"}`, ""); resp.StatusCode == http.StatusTooManyRequests {
				limited++
			}
		}
		return limited
	}
	if n := calls(3); n != 0 {
		t.Fatalf("loopback, apply_to_loopback off: %d of 3 calls refused, want none", n)
	}
	e.api.Apply(httpapi.Settings{Limits: httpapi.Limits{ApplyToLoopback: true}})
	if n := calls(3); n != 2 {
		t.Fatalf("after a reload that turned apply_to_loopback on: %d of 3 calls refused, want 2 (burst 1)", n)
	}
	e.api.Apply(httpapi.Settings{Limits: httpapi.Limits{}})
	if n := calls(3); n != 0 {
		t.Fatalf("after a reload that turned it off again: %d of 3 calls refused, want none", n)
	}
}

// checkRaw posts body to /v1/check with the credential, if any, and returns the answer's text.
func (e *env) checkRaw(body, credential string) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/check", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// slowCheck starts, in its own goroutine, a check that would take minutes (2,000 evaluations of
// a regex costing 7 million on 10 KB, about 0.15 s each, under a cost limit raised to allow them),
// and returns once the server is counting. The answer, or the client's error, comes on the
// channel.
func slowCheck(t *testing.T, e *env, ctx context.Context) <-chan string {
	t.Helper()
	body := json.RawMessage(`{"s":"` + strings.Repeat("a", 10_000) + `"}`)
	for range 40 {
		batch := make([]msg, 50)
		for i := range batch {
			batch[i] = msg{Key: "k", Body: body}
		}
		e.publish("in", batch...)
	}
	where := `body.s.matches("(.*.*.*.*.*.*.*.*){40}x")`
	answer := make(chan string, 1)
	go func() { // ends with the request, which the test waits for
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/v1/check", strings.NewReader(`{"where":`+strconv.Quote(where)+`,"source":"in"}`))
		resp, err := e.client.Do(req)
		if err != nil {
			answer <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answer <- resp.Status + " " + string(b)
	}()
	// The request compiles a costly predicate first: on a loaded machine under -race that
	// alone has taken over 10 s.
	sourcetest.Eventually(t, 40*time.Second, func() bool { return httpapi.ChecksRunning(e.api) == 1 }, "the check to start counting")
	return answer
}

// A check whose client leaves stops counting: it does not burn a core for minutes after.
func TestCheckClientGone(t *testing.T) {
	e := newEnv(t, envOptions{history: 2000, predicates: predicate.Limits{MaxCost: 10_000_000}, check: httpapi.CheckLimits{MaxCost: 1 << 62}})
	ctx, cancel := context.WithCancel(context.Background())
	answer := slowCheck(t, e, ctx)
	cancel()
	<-answer
	// A liveness bound, far below the minutes the count would take.
	sourcetest.Eventually(t, 20*time.Second, func() bool { return httpapi.ChecksRunning(e.api) == 0 }, "the check to stop")
}

// A shutdown does not wait for a check: draining ends it at once with 503 shutting_down, so that
// SIGTERM is not held for the whole grace.
func TestCheckDrain(t *testing.T) {
	e := newEnv(t, envOptions{history: 2000, predicates: predicate.Limits{MaxCost: 10_000_000}, check: httpapi.CheckLimits{MaxCost: 1 << 62}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a liveness bound
	defer cancel()
	answer := slowCheck(t, e, ctx)
	e.api.Drain()
	if got := <-answer; !strings.HasPrefix(got, "503 ") || !strings.Contains(got, "shutting_down") {
		t.Fatalf("the check answered %.200s; want 503 shutting_down", got)
	}
	sourcetest.Eventually(t, 20*time.Second, func() bool { return httpapi.ChecksRunning(e.api) == 0 }, "the check to stop")
}

// A predicate that compiles but cannot work on the history is told as such: how many messages
// it failed on and the first error (a result that is not a bool, a comparison CEL has no
// overload for), and an equality test that the history shows to be always false is warned of,
// with the fix; a predicate that works gets neither.
func TestCheckTellsPredicatesThatCannotWork(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.publish("in", numbered(4, keyEvenOdd)...)
	e.publish("in", msg{Key: "odd", Body: json.RawMessage(`{"m":1}`)})
	for _, c := range []struct {
		where         string
		matched, fail int
		firstError    string
		warning       string
		position      int
	}{
		{where: `body.n`, fail: 5, firstError: "not a bool"},
		{where: `body.n > "x"`, fail: 5, firstError: "no such overload"},
		// The last message, odd, has no n: an error, as in a stream. Whatever && makes of it,
		// the field's type is looked at in every message.
		{where: `key == "odd" && body.n == "3"`, fail: 1, firstError: "no such key: n", warning: `body.n is a number in 4 of the 5 messages checked, but it is compared with "3": ` +
			`in CEL a number never equals a string, so this comparison is always false (!= always true); did you mean body.n == 3?`, position: 16},
		{where: `has(body.n) && body.n == 3`, matched: 1},
	} {
		resp, v := e.check(`{"where":` + strconv.Quote(c.where) + `,"source":"in"}`)
		if resp.StatusCode != 200 || !v.Valid || v.Of != 5 || v.Matched != c.matched || v.Failed != c.fail || v.Sources["in"].Failed != c.fail {
			t.Errorf("%s: %s %+v; want %d matched, %d failed of 5", c.where, resp.Status, v, c.matched, c.fail)
			continue
		}
		switch {
		case c.firstError == "" && v.FirstError != nil:
			t.Errorf("%s: first_error %+v, want none", c.where, v.FirstError)
		case c.firstError != "" && (v.FirstError == nil || !strings.Contains(v.FirstError.Message, c.firstError)):
			t.Errorf("%s: first_error %+v, want %q", c.where, v.FirstError, c.firstError)
		}
		switch {
		case c.warning == "" && len(v.Warnings) != 0:
			t.Errorf("%s: warnings %+v, want none", c.where, v.Warnings)
		case c.warning != "" && (len(v.Warnings) != 1 || v.Warnings[0].Message != c.warning || v.Warnings[0].Position != c.position):
			t.Errorf("%s: warnings %+v\nwant %q at %d", c.where, v.Warnings, c.warning, c.position)
		}
	}
}
