package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SigningKey signs the tokens Issue makes: an HS256 secret, or a private key whose public half
// the verifier has (public_keys, or a JWKS with the same kid).
type SigningKey struct {
	// Alg is the JWS algorithm: HS256; RS256, RS384, RS512, PS256, PS384 or PS512 for an RSA
	// key; ES256, ES384 or ES512 after an ECDSA key's curve; EdDSA for an Ed25519 key.
	Alg string
	// Key is the HS256 secret ([]byte) or the private key (*rsa.PrivateKey, *ecdsa.PrivateKey,
	// ed25519.PrivateKey).
	Key any
	// KeyID, when set, is put in the token's kid header, so that a verifier with a JWKS picks
	// the key that has it.
	KeyID string
}

// HS256Key is the SigningKey of an HS256 secret.
func HS256Key(secret []byte) SigningKey { return SigningKey{Alg: "HS256", Key: secret} }

// LoadSigningKey reads a PEM private key file (PKCS #8, PKCS #1 RSA or SEC 1 EC) and pins it to
// alg, or, when alg is "", to the default for its type, as a public key is pinned when verifying
// (RS256; the ECDSA curve's ES algorithm; EdDSA).
func LoadSigningKey(path, alg string) (SigningKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return SigningKey{}, fmt.Errorf("private key: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return SigningKey{}, fmt.Errorf("private key %s: no PEM block", path)
	}
	var priv any
	switch b.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return SigningKey{}, fmt.Errorf("private key %s: a PEM %q, not a private key", path, b.Type)
	}
	if err != nil {
		return SigningKey{}, fmt.Errorf("private key %s: %w", path, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return SigningKey{}, fmt.Errorf("private key %s: unsupported key type %T", path, priv)
	}
	// The public half is pinned by the verifier's own rules, so that what signs here is what
	// the server accepts.
	vk, err := newVerifyKey(signer.Public(), "", alg)
	if err != nil {
		return SigningKey{}, fmt.Errorf("private key %s: %w", path, err)
	}
	return SigningKey{Alg: vk.alg, Key: priv}, nil
}

// Issue returns a token signed with k that carries claims and expires after ttl, which must be
// positive: the verifier requires exp. It is what tests and `streamux auth token` use; an
// identity provider issues the tokens in production.
func Issue(k SigningKey, claims Claims, ttl time.Duration) (string, error) {
	method := jwt.GetSigningMethod(k.Alg)
	if method == nil || k.Alg == "none" {
		return "", fmt.Errorf("auth: unknown signing algorithm %q", k.Alg)
	}
	switch key := k.Key.(type) {
	case []byte:
		if k.Alg != "HS256" {
			return "", fmt.Errorf("auth: a secret signs HS256 only, not %s", k.Alg)
		}
		if len(key) < MinSecretBytes {
			return "", fmt.Errorf("auth: HS256 secret is %d bytes; at least %d are required", len(key), MinSecretBytes)
		}
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		if _, err := newVerifyKey(key.(crypto.Signer).Public(), "", k.Alg); err != nil {
			return "", fmt.Errorf("auth: %w", err)
		}
	default:
		return "", fmt.Errorf("auth: unsupported signing key %T", k.Key)
	}
	if ttl <= 0 {
		return "", errors.New("auth: a token needs a positive ttl")
	}
	now := time.Now()
	m := jwt.MapClaims{
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if claims.Subject != "" {
		m["sub"] = claims.Subject
	}
	if claims.Audience != "" {
		m["aud"] = claims.Audience
	}
	if claims.Issuer != "" {
		m["iss"] = claims.Issuer
	}
	if claims.Sources != nil {
		m[claims.Prefix+"sources"] = slices.Clone(claims.Sources)
	}
	if claims.Write != nil {
		m[claims.Prefix+"write"] = slices.Clone(claims.Write)
	}
	if claims.Where != "" {
		m[claims.Prefix+"where"] = claims.Where
	}
	if claims.Admin {
		m[claims.Prefix+"admin"] = true
	}
	if claims.Sinks {
		m[claims.Prefix+"sinks"] = true
	}
	t := jwt.NewWithClaims(method, m)
	if k.KeyID != "" {
		t.Header["kid"] = k.KeyID
	}
	return t.SignedString(k.Key)
}
