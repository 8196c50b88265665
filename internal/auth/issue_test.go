package auth

import (
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"
)

// pemPrivate writes priv as a PEM file of the given block type and returns its path.
func pemPrivate(t *testing.T, priv any, blockType string) string {
	t.Helper()
	var der []byte
	var err error
	switch blockType {
	case "PRIVATE KEY":
		der, err = x509.MarshalPKCS8PrivateKey(priv)
	case "EC PRIVATE KEY":
		der, err = x509.MarshalECPrivateKey(keys().ec)
	case "RSA PRIVATE KEY":
		der = x509.MarshalPKCS1PrivateKey(keys().rsa)
	}
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})))
}

// A token that Issue signs with a private key is accepted by a verifier that has the public
// key, in every PEM form, and carries the claims it was given.
func TestIssueWithPrivateKey(t *testing.T) {
	k := keys()
	for _, tc := range []struct {
		name      string
		path      string
		alg, want string
		pub       any
	}{
		{"rsa pkcs8", pemPrivate(t, k.rsa, "PRIVATE KEY"), "", "RS256", &k.rsa.PublicKey},
		{"rsa pkcs1 ps256", pemPrivate(t, k.rsa, "RSA PRIVATE KEY"), "PS256", "PS256", &k.rsa.PublicKey},
		{"ec sec1", pemPrivate(t, k.ec, "EC PRIVATE KEY"), "", "ES256", &k.ec.PublicKey},
		{"ec384 pkcs8", pemPrivate(t, k.ec384, "PRIVATE KEY"), "", "ES384", &k.ec384.PublicKey},
		{"ed25519", pemPrivate(t, k.ed, "PRIVATE KEY"), "", "EdDSA", k.ed.Public()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sk, err := LoadSigningKey(tc.path, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			if sk.Alg != tc.want {
				t.Fatalf("alg %s, want %s", sk.Alg, tc.want)
			}
			sk.KeyID = "k1"
			tok, err := Issue(sk, Claims{Subject: "svc", Sources: []string{"a"}, Where: "key == 'x'", Sinks: true}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			// A JWKS names the alg a key is pinned to; a kid that differs refuses the token.
			jwk := jwkOf(t, tc.pub, "k1")
			if tc.want != "RS256" {
				delete(jwk, "alg")
				if strings.HasPrefix(tc.want, "PS") {
					jwk["alg"] = tc.want
				}
			}
			a := newAuth(t, Config{JWT: &JWT{JWKSFile: writeJWKS(t, jwk)}}, time.Time{})
			p, err := a.Authenticate(bearer(tok))
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != "svc" || !slices.Equal(p.Sources, []string{"a"}) || p.Where != "key == 'x'" || !p.Sinks || p.Admin || p.Write != nil {
				t.Errorf("principal %+v", p)
			}
			other := newAuth(t, Config{JWT: &JWT{JWKSFile: writeJWKS(t, jwkOf(t, tc.pub, "k2"))}}, time.Time{})
			if _, err := other.Authenticate(bearer(tok)); err == nil {
				t.Error("a token with kid k1 was accepted by a JWKS that has only k2")
			}
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	k := keys()
	rsaPath := pemPrivate(t, k.rsa, "PRIVATE KEY")
	if _, err := LoadSigningKey(rsaPath, "ES256"); err == nil || !strings.Contains(err.Error(), "not an RSA algorithm") {
		t.Errorf("RSA key as ES256: %v", err)
	}
	if _, err := LoadSigningKey(writeFile(t, "pub.pem", pemPublic(t, &k.rsa.PublicKey)), ""); err == nil || !strings.Contains(err.Error(), "not a private key") {
		t.Errorf("a public key: %v", err)
	}
	if _, err := LoadSigningKey(writeFile(t, "none.pem", "nothing"), ""); err == nil || !strings.Contains(err.Error(), "no PEM block") {
		t.Errorf("not PEM: %v", err)
	}
	for _, sk := range []SigningKey{
		{Alg: "none", Key: []byte(testSecret)},
		{Alg: "HS384", Key: []byte(testSecret)},
		HS256Key([]byte("short")),
		{Alg: "ES256", Key: k.rsa},
	} {
		if tok, err := Issue(sk, Claims{}, time.Minute); err == nil {
			t.Errorf("%s with %T: signed %s", sk.Alg, sk.Key, tok)
		}
	}
	if _, err := Issue(HS256Key([]byte(testSecret)), Claims{}, 0); err == nil {
		t.Error("a ttl of 0 was taken")
	}
}
