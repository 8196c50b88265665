package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// checkResult is the answer of POST /v1/check, as far as these tests read it.
type checkResult struct {
	Valid   bool `json:"valid"`
	Matched int  `json:"matched"`
	Of      int  `json:"of"`
	Sources map[string]struct {
		Matched int `json:"matched"`
		Of      int `json:"of"`
	} `json:"sources"`
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
