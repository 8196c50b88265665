package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"slices"
	"strings"
)

// verifyKey is one public key and the one algorithm it verifies: a key is never tried with an
// algorithm of another family, so an RSA public key can never serve as an HMAC secret.
type verifyKey struct {
	kid string // "" matches any kid
	alg string
	key any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

var (
	rsaAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ecAlgs  = map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
)

// newVerifyKey pins pub to an algorithm: alg when the key's source names one (a JWK's "alg"),
// else the default for its type.
func newVerifyKey(pub any, kid, alg string) (verifyKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return verifyKey{}, fmt.Errorf("RSA key of %d bits; at least %d are required", k.N.BitLen(), minRSABits)
		}
		if alg == "" {
			alg = "RS256"
		}
		if !slices.Contains(rsaAlgs, alg) {
			return verifyKey{}, fmt.Errorf("alg %q is not an RSA algorithm (%s)", alg, strings.Join(rsaAlgs, ", "))
		}
	case *ecdsa.PublicKey:
		want, ok := ecAlgs[k.Curve.Params().Name]
		if !ok {
			return verifyKey{}, fmt.Errorf("ECDSA curve %s is not supported (P-256, P-384, P-521)", k.Curve.Params().Name)
		}
		if alg != "" && alg != want {
			return verifyKey{}, fmt.Errorf("alg %q does not fit a %s key (%s)", alg, k.Curve.Params().Name, want)
		}
		alg = want
	case ed25519.PublicKey:
		if alg != "" && alg != "EdDSA" {
			return verifyKey{}, fmt.Errorf("alg %q does not fit an Ed25519 key (EdDSA)", alg)
		}
		alg = "EdDSA"
	default:
		return verifyKey{}, fmt.Errorf("unsupported key type %T", pub)
	}
	return verifyKey{kid: kid, alg: alg, key: pub}, nil
}

// loadPEM reads the public keys of one public_keys entry: PEM text, or the path of a PEM file.
// Errors never quote the entry's text, which may be inline.
func loadPEM(entry string) ([]verifyKey, error) {
	data := []byte(entry)
	if !strings.Contains(entry, "-----BEGIN") {
		var err error
		if data, err = os.ReadFile(entry); err != nil {
			return nil, unwrapPath(err)
		}
	}
	var keys []verifyKey
	for i := 1; ; i++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var pub any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			if strings.Contains(b.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("PEM block %d is a private key: give streamux the public key only", i)
			}
			return nil, fmt.Errorf("PEM block %d is a %q, not a public key or certificate", i, b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i, err)
		}
		k, err := newVerifyKey(pub, "", "")
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}

// jwk is the part of a JSON Web Key (RFC 7517, 7518, 8037) that verification needs.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
	K   string `json:"k"`
}

// loadJWKS reads a JWKS file. It reports every bad key; keys meant for encryption are skipped.
func loadJWKS(path string) ([]verifyKey, []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{unwrapPath(err)}
	}
	keys, errs := parseJWKS(data)
	if len(keys) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no signature key in the JWKS"))
	}
	return keys, errs
}

// parseJWKS reads a JWKS (RFC 7517): its signature keys, and an error for every key that is
// not usable; keys meant for encryption are skipped.
func parseJWKS(data []byte) ([]verifyKey, []error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, []error{fmt.Errorf("not a JWKS: %v", err)}
	}
	var keys []verifyKey
	var errs []error
	for i, raw := range set.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			errs = append(errs, fmt.Errorf("keys[%d]: %v", i, err))
			continue
		}
		if j.Use == "enc" {
			continue
		}
		k, err := j.verifyKey()
		if err != nil {
			label := fmt.Sprintf("keys[%d]", i)
			if j.Kid != "" {
				label += fmt.Sprintf(" (kid %q)", j.Kid)
			}
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
			continue
		}
		keys = append(keys, k)
	}
	return keys, errs
}

func (j *jwk) verifyKey() (verifyKey, error) {
	if j.Use != "" && j.Use != "sig" {
		return verifyKey{}, fmt.Errorf("use %q: only sig keys verify tokens", j.Use)
	}
	if j.D != "" {
		return verifyKey{}, errors.New("holds private key material: give streamux the public keys only")
	}
	var pub any
	switch j.Kty {
	case "RSA":
		n, err := b64(j.N, "n")
		if err != nil {
			return verifyKey{}, err
		}
		e, err := b64(j.E, "e")
		if err != nil {
			return verifyKey{}, err
		}
		eb := new(big.Int).SetBytes(e)
		if len(n) == 0 || !eb.IsInt64() || eb.Int64() < 3 || eb.Int64() > 1<<31-1 || eb.Bit(0) == 0 {
			return verifyKey{}, errors.New("bad RSA modulus or exponent")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(eb.Int64())}
	case "EC":
		curves := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}
		curve, ok := curves[j.Crv]
		if !ok {
			return verifyKey{}, fmt.Errorf("crv %q is not supported (P-256, P-384, P-521)", j.Crv)
		}
		x, err := b64(j.X, "x")
		if err != nil {
			return verifyKey{}, err
		}
		y, err := b64(j.Y, "y")
		if err != nil {
			return verifyKey{}, err
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return verifyKey{}, fmt.Errorf("x and y must be %d bytes for %s", size, j.Crv)
		}
		k, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return verifyKey{}, fmt.Errorf("bad EC point: %v", err)
		}
		pub = k
	case "OKP":
		if j.Crv != "Ed25519" {
			return verifyKey{}, fmt.Errorf("crv %q is not supported (Ed25519)", j.Crv)
		}
		x, err := b64(j.X, "x")
		if err != nil {
			return verifyKey{}, err
		}
		if len(x) != ed25519.PublicKeySize {
			return verifyKey{}, fmt.Errorf("x must be %d bytes for Ed25519", ed25519.PublicKeySize)
		}
		pub = ed25519.PublicKey(x)
	case "oct":
		return verifyKey{}, errors.New("symmetric keys are not accepted from a JWKS: use hs256_secret")
	case "":
		return verifyKey{}, errors.New("kty is required")
	default:
		return verifyKey{}, fmt.Errorf("kty %q is not supported (RSA, EC, OKP)", j.Kty)
	}
	return newVerifyKey(pub, j.Kid, j.Alg)
}

// b64 decodes a JWK member: base64url without padding, as RFC 7515 writes it; padding is
// tolerated, since some tools write it.
func b64(s, member string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%s is required", member)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("%s is not base64url", member)
	}
	return b, nil
}

// unwrapPath drops the path from a file error: the message already names the file.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
