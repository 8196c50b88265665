package amqp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/source/amqp"
)

func TestValidate(t *testing.T) {
	const url = "amqp://guest:guest@127.0.0.1:5672/"
	ca := writeCA(t)
	no := false
	tests := []struct {
		name string
		cfg  amqp.Config
		want []string // substrings, one per expected error; none: valid
	}{
		{"minimal", amqp.Config{URL: url, Exchange: "orders"}, nil},
		{"queue only", amqp.Config{URL: url, Queue: "jobs"}, nil},
		{"after_route with named queue", amqp.Config{URL: url, Exchange: "x", Queue: "q", Ack: "after_route"}, nil},
		{"fanout without bindings", amqp.Config{URL: url, Exchange: "x", ExchangeType: "fanout"}, nil},
		{"plugin type with bindings", amqp.Config{URL: url, Exchange: "x", ExchangeType: "x-consistent-hash", Bindings: []string{"1"}}, nil},
		{"amqps with ca", amqp.Config{URL: "amqps://h/", Exchange: "x", TLS: amqp.TLS{CAFile: ca}}, nil},
		{"arguments", amqp.Config{URL: url, Exchange: "x", QueueArguments: map[string]any{
			"x-max-length": 1000, "x-queue-type": "classic", "nested": map[string]any{"a": []any{1, "b"}},
		}}, nil},
		{"empty", amqp.Config{}, []string{"url is required", "exchange is required"}},
		{"bad scheme", amqp.Config{URL: "http://secret@h/", Exchange: "x"}, []string{"url:"}},
		{"bad url hides password", amqp.Config{URL: "amqp://u:p%zzsecret@h/", Exchange: "x"}, []string{"url:"}},
		{"everything wrong", amqp.Config{
			URL: "amqp://h/", ExchangeType: "bogus", Bindings: []string{"#"}, Prefetch: 70000,
			Ack: "sometimes", Heartbeat: -time.Second, Queue: "amq.mine", Passive: true,
			QueueArguments: map[string]any{"bad": struct{}{}}, TLS: amqp.TLS{CertFile: "c.pem"},
		}, []string{
			"bindings need an exchange", `exchange_type "bogus"`, "prefetch 70000", `ack "sometimes"`,
			"heartbeat", "reserved", "passive needs an exchange", "queue_arguments", "tls is set but the url is amqp://",
			"cert_file and key_file go together",
		}},
		{"direct needs bindings", amqp.Config{URL: url, Exchange: "x", ExchangeType: "direct"}, []string{"bindings are required for a direct"}},
		{"plugin needs bindings", amqp.Config{URL: url, Exchange: "x", ExchangeType: "x-delayed-message"}, []string{"bindings are required"}},
		{"after_route needs a name", amqp.Config{URL: url, Exchange: "x", Ack: "after_route"}, []string{"after_route needs a named queue"}},
		{"quorum", amqp.Config{URL: url, Exchange: "x", Queue: "q", QueueType: "quorum", Ack: "after_route"}, nil},
		{"classic", amqp.Config{URL: url, Exchange: "x", Queue: "q", QueueType: "classic"}, nil},
		{"stream with defaults", amqp.Config{URL: url, Exchange: "x", Queue: "q", QueueType: "stream"}, nil},
		{"stream from an offset", amqp.Config{URL: url, Queue: "q", QueueType: "stream", Offset: "12345", Prefetch: 10, Ack: "after_route"}, nil},
		{"stream from a time", amqp.Config{URL: url, Queue: "q", QueueType: "stream", Offset: "2026-11-25T16:00:00Z"}, nil},
		{"stream through queue_arguments", amqp.Config{URL: url, Queue: "q", Offset: "first", QueueArguments: map[string]any{"x-queue-type": "stream"}}, nil},
		{"same type twice", amqp.Config{URL: url, Queue: "q", QueueType: "quorum", QueueArguments: map[string]any{"x-queue-type": "quorum"}}, nil},
		{"unknown queue type", amqp.Config{URL: url, Exchange: "x", Queue: "q", QueueType: "lazy"}, []string{`queue_type "lazy": want classic, quorum or stream`}},
		{"unknown type in arguments", amqp.Config{URL: url, Queue: "q", QueueArguments: map[string]any{"x-queue-type": "lazy"}}, []string{`queue_arguments' x-queue-type "lazy"`}},
		{"types disagree", amqp.Config{URL: url, Queue: "q", QueueType: "stream", QueueArguments: map[string]any{"x-queue-type": "quorum"}}, []string{"disagree"}},
		{"quorum needs a name", amqp.Config{URL: url, Exchange: "x", QueueType: "quorum"}, []string{"queue_type quorum needs a named queue"}},
		{"quorum needs durable", amqp.Config{URL: url, Exchange: "x", Queue: "q", QueueType: "quorum", Durable: &no}, []string{"queue_type quorum needs a durable queue"}},
		{"stream everything wrong", amqp.Config{URL: url, Exchange: "x", QueueType: "stream", Durable: &no, Ack: "auto", Offset: "yesterday"}, []string{
			"queue_type stream needs a named queue", "queue_type stream needs a durable queue", `ack "auto": a stream is read with ack after_route`,
			`offset "yesterday": want first, last, next`,
		}},
		{"stream's default ack needs a name too", amqp.Config{URL: url, Exchange: "x", QueueType: "stream"}, []string{
			"queue_type stream needs a named queue", "after_route needs a named queue",
		}},
		{"negative offset", amqp.Config{URL: url, Queue: "q", QueueType: "stream", Offset: "-5"}, []string{"offset -5: an offset is 0 or more"}},
		{"offset without a stream", amqp.Config{URL: url, Queue: "q", QueueType: "quorum", Offset: "first"}, []string{`offset "first" is for a stream`}},
		{"offset on a classic queue", amqp.Config{URL: url, Exchange: "x", Offset: "next"}, []string{`offset "next" is for a stream`}},
		{"missing ca file", amqp.Config{URL: "amqps://h/", Exchange: "x", TLS: amqp.TLS{CAFile: "/nonexistent.pem"}}, []string{"ca_file"}},
		{"ca file without certificate", amqp.Config{URL: "amqps://h/", Exchange: "x", TLS: amqp.TLS{CAFile: writeFile(t, "junk")}}, []string{"no PEM certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.cfg.Validate()
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			all := strings.Join(msgs, "\n")
			if len(errs) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(errs), len(tt.want), all)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("no error mentions %q:\n%s", w, all)
				}
			}
			if strings.Contains(all, "secret") {
				t.Errorf("an error shows the URL's password:\n%s", all)
			}
			_, err := amqp.New(tt.cfg)
			if (err == nil) != (len(tt.want) == 0) {
				t.Errorf("New error = %v, want error: %v", err, len(tt.want) > 0)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "f.pem")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeCA writes a self-signed CA certificate in PEM and returns its path.
func writeCA(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}
