package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// With HS256, a token whose kid is not a string, whose exp is a string (RFC 7519 wants a
// NumericDate), or that names critical header extensions (RFC 7515: crit) is refused with 401,
// as the README's table says (issue 16).
func TestJWTHeaderAndDateTypesOverHTTP(t *testing.T) {
	e := secureEnv(t, envOptions{})
	sign := func(header map[string]any, claims jwt.MapClaims) string {
		c := jwt.MapClaims{"sub": "x", "aud": "streamux", "iss": "test", "exp": time.Now().Add(time.Hour).Unix(), "admin": true}
		for k, v := range claims {
			c[k] = v
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if status, code, _ := e.do("GET", "/v1/subscriptions", sign(nil, nil), "", nil); status != 200 {
		t.Fatalf("a good token: %d %s", status, code)
	}
	for _, c := range []struct {
		name, token, want string
	}{
		{"kid a number", sign(map[string]any{"kid": 7}, nil), "the kid header is not a string"},
		{"exp a string", sign(nil, jwt.MapClaims{"exp": fmt.Sprint(time.Now().Add(time.Hour).Unix())}), `claim "exp" must be a number (NumericDate)`},
		{"unknown crit", sign(map[string]any{"crit": []string{"x-bound"}, "x-bound": true}, nil), "unsupported critical header (crit)"},
	} {
		status, code, hdr := e.do("GET", "/v1/subscriptions", c.token, "", nil)
		if status != 401 || code != "unauthorized" || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("%s: %d %s %q", c.name, status, code, hdr.Get("WWW-Authenticate"))
		}
		if _, msg := e.errorOf("GET", "/v1/subscriptions", c.token); !strings.Contains(msg, c.want) {
			t.Errorf("%s: message %q, want %q", c.name, msg, c.want)
		}
	}
}

// errorOf is the status and error message of an answer.
func (e *env) errorOf(method, path, bearer string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ae apiErr
	_ = json.NewDecoder(resp.Body).Decode(&ae)
	return resp.StatusCode, ae.Error.Message
}
