package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func joined(errs []error) string { return errors.Join(errs...).Error() }

// TestValidate: one configuration with a problem of every kind reports them all at once.
func TestValidate(t *testing.T) {
	t.Parallel()
	k := keys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	must(t, err)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	must(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k.rsa)
	must(t, err)
	private := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	ecJWK := jwkOf(t, &k.ec.PublicKey, "e")
	ecJWK["alg"] = "RS256"
	rsaJWK := jwkOf(t, &k.rsa.PublicKey, "r")
	rsaJWK["d"] = "c2VjcmV0"
	pointOff := jwkOf(t, &k.ec.PublicKey, "p")
	pointOff["y"] = pointOff["x"]

	c := Config{
		None: true,
		APIKeys: []APIKey{
			{SHA256: "zz" + HashKey("a")[2:]},
			{SHA256: "abcd"},
			{},
			{Name: "dup", SHA256: HashKey("b")},
			{Name: "dup", SHA256: HashKey("b")},
			{Name: "bad name!", SHA256: HashKey("c"), Where: "body.amount >", Sources: []string{""}},
		},
		JWT: &JWT{
			HS256Secret: "too-short",
			PublicKeys: []string{
				filepath.Join(t.TempDir(), "missing.pem"),
				private,
				pemPublic(t, &small.PublicKey),
				pemPublic(t, &p224.PublicKey),
				"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
			},
			JWKSFile: writeJWKS(t,
				map[string]string{"kty": "oct", "k": "c2VjcmV0", "kid": "o"},
				map[string]string{"kty": "XYZ", "kid": "u"},
				ecJWK, rsaJWK, pointOff,
				map[string]string{"kty": "RSA", "kid": "nb", "n": "!!!", "e": "AQAB"},
			),
			Leeway: dur(-time.Second),
		},
	}
	msg := joined(c.Validate())
	for _, want := range []string{
		"auth: none cannot be combined with api_keys or jwt",
		"api_keys[0]: sha256 is not hex: it is the key's SHA-256, not the key",
		"api_keys[1]: sha256 is 2 bytes; a SHA-256 is 32 (64 hex digits)",
		"api_keys[2]: sha256 is required",
		`api_keys[4]: name "dup" is also api_keys[3]'s`,
		"api_keys[4]: the same key as api_keys[3]",
		"api_keys[5]: name must be",
		"api_keys[5]: a source name is empty",
		"api_keys[5]: where: ",
		"hs256_secret is 9 bytes; at least 32 are required",
		"public_keys[0] (" + c.JWT.PublicKeys[0] + "): no such file or directory",
		"public_keys[1]: PEM block 1 is a private key",
		"public_keys[2]: PEM block 1: RSA key of 1024 bits; at least 2048 are required",
		"public_keys[3]: PEM block 1: ECDSA curve P-224 is not supported",
		"public_keys[4]: no PEM public key found",
		`keys[0] (kid "o"): symmetric keys are not accepted from a JWKS`,
		`keys[1] (kid "u"): kty "XYZ" is not supported`,
		`keys[2] (kid "e"): alg "RS256" does not fit a P-256 key (ES256)`,
		`keys[3] (kid "r"): holds private key material`,
		`keys[4] (kid "p"): bad EC point`,
		`keys[5] (kid "nb"): n is not base64url`,
		"leeway must not be negative",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Validate does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "zz") || strings.Contains(msg, "'z'") {
		t.Errorf("Validate quotes a sha256 that is not hex:\n%s", msg)
	}
	if strings.Contains(msg, "not base64\n") || strings.Contains(msg, "BEGIN") {
		t.Errorf("Validate quotes an inline PEM:\n%s", msg)
	}
	if a, err := New(c); a != nil || err == nil || err.Error() != msg {
		t.Errorf("New = %v, %v; want Validate's problems", a, err)
	}

	for _, c := range []struct {
		name string
		c    Config
		want string
	}{
		{"empty jwt", Config{JWT: &JWT{Audience: "x"}}, "auth.jwt: no key"},
		{"unreadable JWKS", Config{JWT: &JWT{JWKSFile: "/nonexistent/jwks.json"}}, "jwks_file (/nonexistent/jwks.json): no such file or directory"},
		{"JWKS not JSON", Config{JWT: &JWT{JWKSFile: writeFile(t, "j.json", "nope")}}, "not a JWKS"},
		{"JWKS of enc keys only", Config{JWT: &JWT{JWKSFile: writeJWKS(t, map[string]string{"kty": "RSA", "use": "enc"})}}, "no signature key in the JWKS"},
		{"JWKS key of another use", Config{JWT: &JWT{JWKSFile: writeJWKS(t, map[string]string{"kty": "RSA", "use": "wrap"})}}, `use "wrap"`},
		{"JWK RSA with an unknown alg", Config{JWT: &JWT{JWKSFile: writeJWKS(t, func() map[string]string {
			j := jwkOf(t, &k.rsa.PublicKey, "")
			j["alg"] = "RS1"
			return j
		}())}}, `alg "RS1" is not an RSA algorithm`},
		{"PEM of another kind", Config{JWT: &JWT{PublicKeys: []string{"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n"}}}, `PEM block 1 is a "FOO"`},
	} {
		if msg := joined(c.c.Validate()); !strings.Contains(msg, c.want) {
			t.Errorf("%s: Validate = %s; want %q", c.name, msg, c.want)
		}
	}

	// Good configurations have nothing to say.
	for _, c := range []Config{{}, {None: true}, fullConfig(t), {APIKeys: []APIKey{{SHA256: " " + strings.ToUpper(HashKey("x")) + "\n", Where: `key == "a"`}}}} {
		if errs := c.Validate(); len(errs) != 0 {
			t.Errorf("Validate(%+v) = %v", c, errs)
		}
	}
}

func TestCheckSources(t *testing.T) {
	t.Parallel()
	c := Config{APIKeys: []APIKey{
		{Name: "a", SHA256: HashKey("a"), Sources: []string{"orders", "ordrs", "*"}, Write: []string{"evnts"}},
		{SHA256: "sx_the-key-itself", Sources: []string{"x"}},
		{SHA256: strings.ToUpper(HashKey("b")), Sources: []string{"y"}},
	}}
	known := func(s string) bool { return s == "orders" || s == "events" }
	msg := joined(c.CheckSources(known))
	for _, want := range []string{`auth.api_keys[0] (a).sources: unknown source "ordrs"`, `auth.api_keys[0] (a).write: unknown source "evnts"`,
		`auth.api_keys[1] (key-1).sources: unknown source "x"`, `auth.api_keys[2] (key-` + HashKey("b")[:8] + `).sources: unknown source "y"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("CheckSources does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, `"*"`) || strings.Contains(msg, `"orders"`) {
		t.Errorf("CheckSources complains of a good name:\n%s", msg)
	}
}

// file is how the config package embeds Config: strictly decoded under auth.
type file struct {
	Listen string `yaml:"listen"`
	Auth   Config `yaml:"auth"`
}

func decode(src string) (file, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	err := dec.Decode(&f)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return f, err
}

func TestYAML(t *testing.T) {
	t.Parallel()
	f, err := decode(`
listen: 0.0.0.0:8080
auth:
  api_keys:
    - name: acme
      sha256: "` + HashKey("k") + `"
      sources: [orders, demo]
      where: 'headers.tenant == "acme"'
      write: [events]
      admin: true
      sinks: true
      expires: 2027-01-01T00:00:00Z
    - sha256: "` + HashKey("j") + `"
      sources: []
  jwt:
    hs256_secret: "` + testSecret + `"
    audience: streamux
    issuer: https://idp.example
    leeway: 45s
    claim_prefix: "https://streamux.example/"
`)
	must(t, err)
	a := f.Auth
	k := a.APIKeys[0]
	if k.Name != "acme" || k.Where != `headers.tenant == "acme"` || !k.Admin || !k.Sinks || a.APIKeys[1].Sinks || len(k.Sources) != 2 || k.Write[0] != "events" ||
		!k.Expires.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("key %+v", k)
	}
	if a.APIKeys[1].Sources == nil || a.APIKeys[1].Write != nil {
		t.Errorf("sources: [] must decode as an empty list and an absent write as nil: %+v", a.APIKeys[1])
	}
	if a.JWT == nil || *a.JWT.Leeway != 45*time.Second || a.JWT.Audience != "streamux" || a.JWT.ClaimPrefix != "https://streamux.example/" {
		t.Errorf("jwt %+v", a.JWT)
	}
	if errs := a.Validate(); len(errs) > 0 {
		t.Error(errs)
	}

	for _, src := range []string{"auth: none\n", "auth: \"none\"\n", "auth:\n  none: true\n"} {
		f, err := decode(src)
		if err != nil || !f.Auth.None || !f.Auth.Disabled() {
			t.Errorf("%q: %+v, %v", src, f.Auth, err)
		}
	}
	if f, err := decode("listen: x\n"); err != nil || f.Auth.None || !f.Auth.Disabled() {
		t.Errorf("no auth section: %+v, %v", f.Auth, err)
	}
	if f, err := decode("auth:\n"); err != nil || f.Auth.None || !f.Auth.Disabled() {
		t.Errorf("empty auth section: %+v, %v", f.Auth, err)
	}

	for _, c := range []struct {
		src  string
		want []string
	}{
		{"auth: off\n", []string{"line 1: auth is a mapping (api_keys, jwt) or the word none"}},
		{"auth: [a]\n", []string{"line 1: auth is a mapping"}},
		{"auth:\n  api_key: []\n  jwt:\n    secret: x\n    leeway: 5s\n", []string{`line 2: unknown field "api_key"`, `line 4: unknown field "secret"`}},
		{"auth:\n  api_keys:\n    - sha256: x\n      source: [a]\n", []string{`line 4: unknown field "source"`}},
		{"auth:\n  api_keys:\n    - sha256: x\n      admin: maybe\n", []string{"line 4: cannot unmarshal"}},
		{"auth:\n  jwt:\n    leeway: soon\n", []string{"line 3: cannot unmarshal !!str `soon` into a duration (such as 30s)"}},
		{"auth:\n  api_keys: x\n  jwt: [1]\n", []string{"line 2: cannot unmarshal !!str `x` into a list of keys", "line 3: cannot unmarshal !!seq into a mapping"}},
		{"auth:\n  api_keys:\n    - x\n    - sources: x\n      expires: soon\n", []string{"line 3: cannot unmarshal !!str `x` into a key", "line 4: cannot unmarshal !!str `x` into a list of strings", `line 5: "soon" is not a time`}},
		{"auth:\n  api_keys:\n    - expires: soon\n", []string{`line 3: "soon" is not a time`}},
	} {
		_, err := decode(c.src)
		if err == nil {
			t.Errorf("%q: no error", c.src)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not say %q", c.src, err, w)
			}
		}
		if strings.Contains(err.Error(), "auth.") || strings.Contains(err.Error(), "time.") || strings.Contains(err.Error(), "not found in type") {
			t.Errorf("%q: error shows Go types: %q", c.src, err)
		}
	}
}

func TestCheckListen(t *testing.T) {
	t.Parallel()
	keyed := Config{APIKeys: []APIKey{{SHA256: HashKey("k")}}}
	for _, c := range []struct {
		c          Config
		addr       string
		warn, fail bool
	}{
		{Config{}, "127.0.0.1:8080", false, false},
		{Config{}, "127.1.2.3:8080", false, false},
		{Config{}, "[::1]:8080", false, false},
		{Config{}, "localhost:8080", false, false},
		{Config{}, "0.0.0.0:8080", false, true},
		{Config{}, ":8080", false, true},
		{Config{}, "[::]:8080", false, true},
		{Config{}, "example.com:8080", false, true},
		{Config{}, "192.168.1.5:8080", false, true},
		{Config{None: true}, "0.0.0.0:8080", true, false},
		{Config{None: true}, "127.0.0.1:8080", false, false},
		{keyed, "0.0.0.0:8080", false, false},
	} {
		warn, err := c.c.CheckListen(c.addr)
		if (warn != "") != c.warn || (err != nil) != c.fail {
			t.Errorf("%+v.CheckListen(%q) = %q, %v", c.c, c.addr, warn, err)
		}
	}
}
