package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/predicate"
)

const authUsage = `Usage:
  streamux auth hash-key [-name NAME] [-generate]
      Read an API key on stdin (echo "$KEY" | streamux auth hash-key), or make a new one
      with -generate and show it once on stderr; print its auth.api_keys entry on stdout.
  streamux auth token [-config FILE | -hs256-secret-file FILE | -private-key FILE] [flags]
      Print a JWT that auth.jwt accepts, signed with its HS256 secret or a private key.
      streamux auth token -h lists the claims' flags.
`

// authCommand is streamux auth: the keys' and tokens' tools.
func authCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, authUsage)
		return errUsage
	}
	switch args[0] {
	case "hash-key":
		return hashKey(args[1:], stdin, stdout, stderr)
	case "token":
		return mintToken(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, authUsage)
		return nil
	}
	fmt.Fprintf(stderr, "streamux auth: unknown command %q\n\n%s", args[0], authUsage)
	return errUsage
}

// parseFlags parses args into fs, which takes no arguments: the flag package's errors become
// errUsage, as in the other commands.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// minKeyBytes is the length under which hash-key warns: a short key can be guessed.
const minKeyBytes = 16

// hashKey prints the auth.api_keys entry of a key read on stdin, or of a new one.
func hashKey(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("streamux auth hash-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the key's name in logs and limits (default: key- and the first 8 hex digits of its hash)")
	generate := fs.Bool("generate", false, "make a new random key, print it once on stderr, and its entry on stdout")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: streamux auth hash-key [-name NAME] [-generate]\n\n"+
			"Prints the auth.api_keys entry of a key: read on stdin, or new with -generate.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	var key, sum string
	if *generate {
		key, sum = auth.NewKey()
	} else {
		if f, ok := stdin.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				fmt.Fprintln(stderr, "streamux auth hash-key: reading the key on stdin (end with Enter, then Ctrl-D); or: echo \"$KEY\" | streamux auth hash-key")
			}
		}
		var err error
		if key, err = readKey(stdin); err != nil {
			return err
		}
		sum = auth.HashKey(key)
	}
	// The entry is checked as the server will check it, so that what is printed is accepted.
	entry := auth.APIKey{Name: *name, SHA256: sum}
	if errs := (&auth.Config{APIKeys: []auth.APIKey{entry}}).Validate(); len(errs) > 0 {
		return fmt.Errorf("-name: %w", errors.Join(errs...))
	}
	if *generate {
		fmt.Fprintf(stderr, "streamux auth hash-key: the new key, shown this once (its hash is all the server keeps):\n%s\n", key)
	} else if len(key) < minKeyBytes {
		fmt.Fprintf(stderr, "streamux auth hash-key: warning: the key is %d bytes; a key under %d can be guessed (streamux auth hash-key -generate makes one of 32 random bytes)\n", len(key), minKeyBytes)
	}
	w := bufio.NewWriter(stdout)
	if *name != "" {
		fmt.Fprintf(w, "- name: %s\n  sha256: %s\n", *name, sum)
	} else {
		fmt.Fprintf(w, "- sha256: %s\n", sum)
	}
	return w.Flush()
}

// readKey reads one key from r: surrounding white space (the newline that echo adds) is not
// part of it, as the server trims a bearer token's; a key cannot hold a line break or another
// control character, which no header could carry.
func readKey(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, auth.MaxCredentialBytes+1))
	if err != nil {
		return "", fmt.Errorf("read the key on stdin: %w", err)
	}
	if len(b) > auth.MaxCredentialBytes {
		return "", fmt.Errorf("the key on stdin is over %d bytes, which the server refuses unread", auth.MaxCredentialBytes)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", errors.New("no key on stdin: echo \"$KEY\" | streamux auth hash-key, or -generate to make one")
	}
	if strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", errors.New("the key on stdin holds a line break or a control character: give one key, on one line")
	}
	return key, nil
}

// listFlag is a comma-separated list that knows whether it was given: absent leaves a claim out
// (every source), given empty is an empty list (none).
type listFlag struct {
	set  bool
	list []string
}

func (l *listFlag) String() string { return strings.Join(l.list, ",") }
func (l *listFlag) Set(v string) error {
	l.set, l.list = true, []string{}
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			l.list = append(l.list, s)
		}
	}
	return nil
}

// value is the claim's value: nil when the flag was not given.
func (l *listFlag) value() []string {
	if !l.set {
		return nil
	}
	return l.list
}

// mintToken prints a JWT signed with the configured HS256 secret or a private key.
func mintToken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("streamux auth token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "take hs256_secret, audience, issuer and claim_prefix from this config file's auth.jwt, and check that it accepts the token")
	secretFile := fs.String("hs256-secret-file", "", "sign with the HS256 secret in this file (surrounding white space ignored)")
	keyFile := fs.String("private-key", "", "sign with this PEM private key (PKCS #8, PKCS #1 or SEC 1): the private half of a public_keys or JWKS key")
	alg := fs.String("alg", "", "the algorithm for -private-key (default: RS256 for RSA, the curve's ES algorithm, EdDSA)")
	kid := fs.String("kid", "", "the kid header, which a JWKS needs to pick the key")
	sub := fs.String("sub", "", "the subject: the principal's name in logs and limits")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid (exp)")
	aud := fs.String("aud", "", "the audience (aud); default: the config's auth.jwt.audience")
	iss := fs.String("iss", "", "the issuer (iss); default: the config's auth.jwt.issuer")
	prefix := fs.String("claim-prefix", "", "put before the custom claims' names; default: the config's auth.jwt.claim_prefix")
	var sources, write listFlag
	fs.Var(&sources, "sources", "comma-separated sources the token may read (claim sources); absent: every source, empty: none")
	fs.Var(&write, "write", "comma-separated sources the token may ingest into (claim write); absent: none")
	where := fs.String("where", "", "a predicate ANDed with every subscription's (claim where)")
	admin := fs.Bool("admin", false, "allow the admin endpoints (claim admin)")
	sinks := fs.Bool("sinks", false, "allow making sinks bounded by what the token reads (claim sinks)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: streamux auth token [-config FILE | -hs256-secret-file FILE | -private-key FILE] [flags]\n\n"+
			"Prints a JWT on stdout. The key: -private-key, else -hs256-secret-file, else the config's hs256_secret.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	var jc auth.JWT
	var cfg *config.Config
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
		if cfg.Auth.JWT == nil {
			return fmt.Errorf("%s: no auth.jwt section: the server would accept no token", *cfgPath)
		}
		jc = *cfg.Auth.JWT
	}
	claims := auth.Claims{
		Subject: *sub, Audience: first(*aud, jc.Audience), Issuer: first(*iss, jc.Issuer),
		Sources: sources.value(), Write: write.value(), Where: *where, Admin: *admin, Sinks: *sinks,
		Prefix: first(*prefix, jc.ClaimPrefix),
	}
	if claims.Where != "" {
		// The server compiles it at every subscription; a token whose where does not compile
		// could open none.
		if _, err := predicate.Compile(claims.Where, predicate.Limits{MaxBytes: 64 << 10}); err != nil {
			return fmt.Errorf("-where: %w", err)
		}
	}
	var key auth.SigningKey
	switch {
	case *keyFile != "":
		var err error
		if key, err = auth.LoadSigningKey(*keyFile, *alg); err != nil {
			return err
		}
	case *alg != "" && *alg != "HS256":
		fmt.Fprintf(stderr, "streamux auth token: -alg %s needs -private-key\n", *alg)
		return errUsage
	case *secretFile != "":
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("-hs256-secret-file: %w", err)
		}
		key = auth.HS256Key([]byte(strings.TrimSpace(string(b))))
	case jc.HS256Secret != "":
		key = auth.HS256Key([]byte(jc.HS256Secret))
	case cfg != nil:
		return fmt.Errorf("%s: auth.jwt has no hs256_secret: give -private-key FILE, the private half of one of its public keys", *cfgPath)
	default:
		fmt.Fprintln(stderr, "streamux auth token: no key: give -config FILE, -hs256-secret-file FILE or -private-key FILE")
		return errUsage
	}
	key.KeyID = *kid
	token, err := auth.Issue(key, claims, *ttl)
	if err != nil {
		return err
	}
	if cfg != nil {
		// What the server would say of it.
		if err := acceptedBy(cfg.Auth, token); err != nil {
			return fmt.Errorf("%s would not accept the token: %w", *cfgPath, err)
		}
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// acceptedBy checks token as a server configured with c would.
func acceptedBy(c auth.Config, token string) error {
	a, err := auth.New(c)
	if err != nil {
		return err
	}
	r, err := http.NewRequest(http.MethodGet, "/", nil)
	if err != nil {
		return err
	}
	r.Header.Set("Authorization", "Bearer "+token)
	_, err = a.Authenticate(r)
	return err
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
