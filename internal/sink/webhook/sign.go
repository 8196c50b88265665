package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// secretPrefix begins a secret written as the Standard Webhooks specification writes them:
// "whsec_" and the key in base64.
const secretPrefix = "whsec_"

// ParseSecret returns the signing key of a secret: the bytes after "whsec_" decoded from
// base64, as the Standard Webhooks libraries take it, or, without the prefix, the secret's own
// bytes.
func ParseSecret(secret string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(secret, secretPrefix); ok {
		key, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("secret: after %q it must be base64: %w", secretPrefix, err)
		}
		if len(key) == 0 {
			return nil, fmt.Errorf("secret: no key after %q", secretPrefix)
		}
		return key, nil
	}
	if secret == "" {
		return nil, fmt.Errorf("secret is empty")
	}
	return []byte(secret), nil
}

// Sign returns the webhook-signature header of a request with the given id, timestamp (Unix
// seconds) and body, per the Standard Webhooks specification: "v1," and the base64 of the
// HMAC-SHA256, with key, of "<id>.<timestamp>.<body>".
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, timestamp, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
