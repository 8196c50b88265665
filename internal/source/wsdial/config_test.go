package wsdial_test

import (
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/source/wsdial"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  wsdial.Config
		want []string // substrings, one per expected error; none: valid
	}{
		{"minimal", wsdial.Config{URL: "wss://feed.example/ws"}, nil},
		{"everything", wsdial.Config{
			URL: "ws://127.0.0.1:9000/ws?x=1", Headers: map[string]string{"Authorization": "Bearer t", "Origin": "https://a"},
			Subprotocols: []string{"v1.feed"}, OnConnect: []string{`{"op":"subscribe"}`}, Key: `data.sym\.bol`,
			PingInterval: time.Second, PongTimeout: time.Second, ReadLimit: 4096, HandshakeTimeout: time.Second,
			Compression: true,
		}, nil},
		{"wss with tls options", wsdial.Config{URL: "wss://h/", TLS: wsdial.TLS{InsecureSkipVerify: true}}, nil},
		{"empty", wsdial.Config{}, []string{"url is required"}},
		{"http scheme", wsdial.Config{URL: "https://h/"}, []string{"scheme must be ws or wss"}},
		{"no host", wsdial.Config{URL: "ws:///path"}, []string{"no host"}},
		{"bad url hides token", wsdial.Config{URL: "ws://h/%zz?token=secret"}, []string{"url:"}},
		{"everything wrong", wsdial.Config{
			URL:          "ws://h/",
			Headers:      map[string]string{"Sec-WebSocket-Protocol": "x", "bad name": "v", "X-Ok": "line\nbreak"},
			Subprotocols: []string{"", "has space"}, Key: "a..b",
			PingInterval: -1, PongTimeout: -1, ReadLimit: -1, HandshakeTimeout: -1,
			TLS: wsdial.TLS{CertFile: "c.pem"},
		}, []string{
			"set by the WebSocket handshake", `"bad name" is not a valid header`, "line break",
			`subprotocols: ""`, `subprotocols: "has space"`, "key:", "ping_interval", "pong_timeout",
			"read_limit", "handshake_timeout", "tls is set but the url is ws://", "cert_file and key_file go together",
		}},
		{"missing ca", wsdial.Config{URL: "wss://h/", TLS: wsdial.TLS{CAFile: "/nonexistent.pem"}}, []string{"ca_file"}},
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
				t.Errorf("an error shows the URL's token:\n%s", all)
			}
			if _, err := wsdial.New(tt.cfg); (err == nil) != (len(tt.want) == 0) {
				t.Errorf("New error = %v, want error: %v", err, len(tt.want) > 0)
			}
		})
	}
}
