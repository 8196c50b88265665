package auth

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/yamlstrict"
)

// Config is the auth section of the configuration file. Its zero value (no auth section)
// disables authentication: the HTTP layer must then serve on loopback listeners only, unless
// None says that the operator wants it off on purpose.
//
// In YAML it is a mapping, or the bare word none (auth: none), which is None.
type Config struct {
	// None turns authentication off explicitly: every request is an anonymous principal that
	// may do everything. It cannot be combined with APIKeys or JWT.
	None bool `yaml:"none"`
	// APIKeys are the accepted static keys, stored as their SHA-256.
	APIKeys []APIKey `yaml:"api_keys"`
	// JWT, when set, accepts signed JSON Web Tokens.
	JWT *JWT `yaml:"jwt"`
}

// APIKey is one accepted key. The key itself is never in the configuration, only its hash.
type APIKey struct {
	// Name identifies the key in logs and limits. Defaults to "key-" and the first 8 hex digits
	// of its hash, which say nothing about the key.
	Name string `yaml:"name"`
	// SHA256 is the hex SHA-256 of the key (printf %s "$KEY" | sha256sum). Required.
	SHA256 string `yaml:"sha256"`
	// Sources the key may read. Absent: every source; [] reads none; "*" means every source.
	Sources []string `yaml:"sources"`
	// Write lists the sources the key may ingest into (POST /v1/sources/{name}/messages).
	// Absent: none, whatever Sources says, so that a reader confined by Where cannot inject
	// messages that other readers see; "*" means every source.
	Write []string `yaml:"write"`
	// Where is a predicate ANDed with every predicate the key subscribes with: the key sees only
	// messages that match both. Empty: none.
	Where string `yaml:"where"`
	// Admin allows the admin endpoints (subscriptions, source details). It does not widen
	// Sources, Write or Where.
	Admin bool `yaml:"admin"`
	// Sinks allows the key to create sinks (POST /v1/sinks), bounded by what it may read
	// (Sources, Where), and to see and remove the sinks it created.
	Sinks bool `yaml:"sinks"`
	// Expires, when set, is when the key stops being accepted (RFC 3339).
	Expires time.Time `yaml:"expires"`
}

// JWT configures JSON Web Token verification. At least one of HS256Secret, PublicKeys,
// JWKSFile and JWKSURL is required; a token is accepted only with an algorithm that one of them
// provides.
type JWT struct {
	// HS256Secret is the shared HMAC secret, at least 32 bytes; write it as "${ENV}" so that it
	// stays out of the file. It accepts HS256 only.
	HS256Secret string `yaml:"hs256_secret"`
	// PublicKeys are PEM public keys (or certificates), each a file path or the PEM text
	// itself. An RSA key accepts RS256; an ECDSA key accepts ES256, ES384 or ES512 after its
	// curve; an Ed25519 key accepts EdDSA. Relative paths are relative to the working directory.
	PublicKeys []string `yaml:"public_keys"`
	// JWKSFile is a JSON Web Key Set file. A token whose header names a kid is checked against
	// the keys with that kid only (and against keys that have none). Keys with "use":"enc" are
	// skipped. It is read at start and again at each reload (SIGHUP, POST /v1/reload).
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURL is a JSON Web Key Set fetched over HTTPS (http only to a loopback host), as an
	// identity provider publishes it: its keys are used as JWKSFile's are. It is fetched at
	// start, every JWKSRefresh, and again when a token names a kid that the set lacks (at most
	// once per JWKSMinRefresh); a fetch that fails keeps the keys already held.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSRefresh is how often JWKSURL is fetched again. Defaults to 1h.
	JWKSRefresh *time.Duration `yaml:"jwks_refresh"`
	// JWKSMinRefresh is the least time between two fetches of JWKSURL for tokens with an
	// unknown kid, and the wait before trying again after a fetch failed. Defaults to 1m.
	JWKSMinRefresh *time.Duration `yaml:"jwks_min_refresh"`
	// Audience, when set, must be in the token's aud claim.
	Audience string `yaml:"audience"`
	// Issuer, when set, must be the token's iss claim.
	Issuer string `yaml:"issuer"`
	// Leeway is the clock skew allowed on exp and nbf. Defaults to 30s.
	Leeway *time.Duration `yaml:"leeway"`
	// ClaimPrefix is put before the names of the claims sources, write, where, admin and sinks, for
	// identity providers that require namespaced custom claims ("https://streamux.example/").
	// Defaults to none.
	ClaimPrefix string `yaml:"claim_prefix"`
}

// DefaultLeeway is JWT.Leeway's default.
const DefaultLeeway = 30 * time.Second

// MinSecretBytes is the shortest HS256 secret accepted: RFC 7518 asks for a key as long as the
// hash.
const MinSecretBytes = 32

// Disabled reports whether c turns authentication off, explicitly (None) or by configuring no
// credential at all.
func (c *Config) Disabled() bool {
	return len(c.APIKeys) == 0 && c.JWT == nil
}

// Validate reports every problem in c at once: bad hashes, duplicate keys, forced predicates
// that do not compile, unreadable or unusable key files, secrets that are too short.
func (c *Config) Validate() []error {
	_, errs := c.build()
	return errs
}

// CheckListen applies the rule for serving without authentication: allowed on a loopback
// address; elsewhere only when the operator wrote auth: none, and then with a warning to log.
// A host name other than localhost, or no host (every interface), is not loopback.
func (c *Config) CheckListen(addr string) (warning string, err error) {
	if !c.Disabled() {
		return "", nil
	}
	host, _, splitErr := net.SplitHostPort(addr)
	if splitErr != nil {
		host = addr
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return "", nil
	}
	if c.None {
		return fmt.Sprintf("authentication is off (auth: none) on %s, which is not a loopback address: whoever reaches it may read and write every source", addr), nil
	}
	return "", fmt.Errorf("listen %s is not a loopback address and auth is not configured: configure auth.api_keys or auth.jwt, or write auth: none to serve without authentication", addr)
}

// CheckSources reports every source named in api_keys that known does not know, so that a typo
// in a source name fails at start rather than silently denying.
func (c *Config) CheckSources(known func(name string) bool) []error {
	var errs []error
	for i, k := range c.APIKeys {
		for _, list := range []struct {
			field string
			names []string
		}{{"sources", k.Sources}, {"write", k.Write}} {
			for _, s := range list.names {
				if s != "*" && !known(s) {
					errs = append(errs, fmt.Errorf("auth.api_keys[%d] (%s).%s: unknown source %q", i, k.name(i), list.field, s))
				}
			}
		}
	}
	return errs
}

// name is the key's name, or one made from its hash, or from its index i while the hash is not
// one: an operator who pasted the key itself where the hash goes must not find it in the logs.
func (k *APIKey) name(i int) string {
	if k.Name != "" {
		return k.Name
	}
	if h := strings.ToLower(strings.TrimSpace(k.SHA256)); validHash.MatchString(h) {
		return "key-" + h[:8]
	}
	return fmt.Sprintf("key-%d", i)
}

var validHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

var validKeyName = regexp.MustCompile(`^[A-Za-z0-9._@:-]{1,64}$`)

// forcedLimits bound the operator's forced predicates: only that they compile is checked here,
// so the length limit is far above a client's.
var forcedLimits = predicate.Limits{MaxBytes: 64 << 10}

// build checks c and prepares what Authenticate needs; it returns every problem found.
func (c *Config) build() (*Authenticator, []error) {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	a := &Authenticator{none: c.Disabled(), now: time.Now}
	if c.None && !c.Disabled() {
		add("auth: none cannot be combined with api_keys or jwt")
	}
	seenHash := map[[32]byte]int{}
	seenName := map[string]int{}
	for i, k := range c.APIKeys {
		where := fmt.Sprintf("auth.api_keys[%d]", i)
		name := k.name(i)
		if k.Name != "" && !validKeyName.MatchString(k.Name) {
			add("%s: name must be 1-64 letters, digits, '.', '_', '@', ':' or '-'", where)
		}
		if j, dup := seenName[name]; dup {
			add("%s: name %q is also api_keys[%d]'s", where, name, j)
		}
		seenName[name] = i
		var sum [32]byte
		switch raw, err := hex.DecodeString(strings.TrimSpace(k.SHA256)); {
		case k.SHA256 == "":
			add("%s: sha256 is required (printf %%s \"$KEY\" | sha256sum)", where)
		case errors.Is(err, hex.ErrLength):
			// Hex digits all, but an odd number of them: a hash cut short in a copy.
			add("%s: sha256 is %d hex digits; a SHA-256 is 64", where, len(strings.TrimSpace(k.SHA256)))
		case err != nil:
			// Not quoted: it may be the key itself, pasted where its hash goes.
			add("%s: sha256 is not hex: it is the key's SHA-256, not the key (printf %%s \"$KEY\" | sha256sum)", where)
		case len(raw) != len(sum):
			add("%s: sha256 is %d bytes; a SHA-256 is 32 (64 hex digits)", where, len(raw))
		default:
			copy(sum[:], raw)
			if j, dup := seenHash[sum]; dup {
				add("%s: the same key as api_keys[%d]", where, j)
			}
			seenHash[sum] = i
		}
		for _, s := range append(append([]string(nil), k.Sources...), k.Write...) {
			if s == "" {
				add("%s: a source name is empty", where)
				break
			}
		}
		if k.Where != "" {
			if _, err := predicate.Compile(k.Where, forcedLimits); err != nil {
				add("%s: where: %v", where, err)
			}
		}
		a.keys = append(a.keys, apiKey{sum: sum, principal: Principal{
			Name:    name,
			Method:  MethodAPIKey,
			Sources: k.Sources,
			Write:   k.Write,
			Where:   k.Where,
			Admin:   k.Admin,
			Sinks:   k.Sinks,
			Expires: k.Expires,
			keySum:  sum,
		}})
	}
	if c.JWT != nil {
		v, jerrs := c.JWT.build()
		errs = append(errs, jerrs...)
		a.jwt = v
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return a, nil
}

// UnmarshalYAML accepts the word none as well as a mapping, and decodes the mapping strictly: a
// custom unmarshaler is never decoded strictly by yaml itself, so unknown fields are looked for
// here. Problems are returned as a *yaml.TypeError, at the file's lines, so that the caller
// reports them with the rest of the file's.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == "none" {
		*c = Config{None: true}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: auth is a mapping (api_keys, jwt) or the word none", n.Line)}}
	}
	type plain Config
	var p plain
	n = deepCopy(n) // badTimes nulls the bad times, so that yaml reports the other problems
	msgs := yamlstrict.UnknownFields(n, reflect.TypeFor[plain](), badTimes)
	if err := n.Decode(&p); err != nil {
		var te *yaml.TypeError
		switch {
		case errors.As(err, &te):
			for _, m := range te.Errors {
				msgs = append(msgs, goTypes.Replace(m))
			}
		case len(msgs) == 0:
			// A value that yaml gives up on (a bad time) and that badTimes did not name.
			msgs = append(msgs, fmt.Sprintf("line %d: %v", n.Line, err))
		}
	}
	if len(msgs) > 0 {
		return &yaml.TypeError{Errors: msgs}
	}
	*c = Config(p)
	return nil
}

// goTypes names the Go types in yaml's messages as a user editing the file knows them.
var goTypes = strings.NewReplacer(
	"into []auth.APIKey", "into a list of keys",
	"into auth.APIKey", "into a key (a mapping)",
	"into auth.JWT", "into a mapping",
	"into auth.plain", "into a mapping",
	"into []string", "into a list of strings",
	"into time.Duration", "into a duration (such as 30s)",
	"into bool", "into true or false",
)

// badTimes names the times under n that do not parse, and replaces them by null: yaml stops at
// the first of those, without saying where.
func badTimes(n *yaml.Node, t reflect.Type) ([]string, bool) {
	if t != reflect.TypeFor[time.Time]() {
		return nil, false
	}
	var v time.Time
	if n.Decode(&v) != nil {
		msg := fmt.Sprintf("line %d: %q is not a time (RFC 3339, such as 2027-01-01T00:00:00Z)", n.Line, n.Value)
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		return []string{msg}, true
	}
	return nil, true
}

func deepCopy(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, e := range n.Content {
		c.Content[i] = deepCopy(e)
	}
	return &c
}
