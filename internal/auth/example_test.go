package auth_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/streamux/streamux/internal/auth"
)

// An API key is configured by its hash; the key itself goes to the client.
func ExampleHashKey() {
	fmt.Println(auth.HashKey("abc")) // the same as: printf %s abc | sha256sum
	// Output: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
}

// How the HTTP layer uses an Authenticator: 401 for an error, 403 for what the principal may
// not do, and the forced predicate for the stream.
func ExampleAuthenticator_Authenticate() {
	a, err := auth.New(auth.Config{APIKeys: []auth.APIKey{{
		Name:    "acme",
		SHA256:  auth.HashKey("sx_acme-key"),
		Sources: []string{"orders"},
		Where:   `headers.tenant == "acme"`,
	}}})
	if err != nil {
		panic(err)
	}
	for _, target := range []string{"/v1/stream?source=orders", "/v1/stream?token=sx_acme-key&source=orders", "/v1/stream?token=wrong"} {
		r := httptest.NewRequest("GET", target, nil)
		p, err := a.Authenticate(r)
		switch {
		case errors.Is(err, auth.ErrNoCredential), errors.Is(err, auth.ErrInvalidCredential):
			fmt.Println(401, err)
		case !p.CanRead(r.URL.Query().Get("source")):
			fmt.Println(403)
		default:
			fmt.Printf("%s reads orders where %s\n", p, p.Where)
		}
		fmt.Println("  logged as", auth.RedactQuery(r.URL.RawQuery))
	}
	// Output:
	// 401 no credential: send Authorization: Bearer <token>, or ?token=<token> where headers cannot be set
	//   logged as source=orders
	// api_key:acme reads orders where headers.tenant == "acme"
	//   logged as token=REDACTED&source=orders
	// 401 invalid credential: unknown API key
	//   logged as token=REDACTED
}

// A token for tests or a command such as `streamux auth token`.
func ExampleIssueHS256() {
	secret := []byte("a shared secret of at least 32 bytes!")
	token, err := auth.IssueHS256(secret, auth.Claims{Subject: "dashboard", Sources: []string{"demo"}}, time.Hour)
	if err != nil {
		panic(err)
	}
	a, _ := auth.New(auth.Config{JWT: &auth.JWT{HS256Secret: string(secret)}})
	r := httptest.NewRequest("GET", "/v1/stream", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	p, err := a.Authenticate(r)
	fmt.Println(p, p.CanRead("demo"), p.CanRead("orders"), err)
	// Output: jwt:dashboard true false <nil>
}
