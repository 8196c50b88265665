package config

import (
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/sink/webhook"
)

func TestSinks(t *testing.T) {
	c, err := Parse([]byte(`
sources: [{name: orders, type: demo}, {name: demo, type: demo}]
limits: {webhook_allow_private: true}
sinks:
  - name: big-orders
    type: webhook
    url: https://hooks.example/orders
    where: 'body.amount > 1000'
    source: [orders]
    secret: whsec_c2VjcmV0
    batch: {max: 100, wait: 200ms}
    retry: {max_age: 1h}
  - {name: all, type: console, source: demo}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sinks) != 2 || !c.Limits.WebhookAllowPrivate {
		t.Fatalf("sinks %+v", c.Sinks)
	}
	s := c.Sinks[0]
	w, ok := s.Spec.(*webhook.Config)
	if !ok || w.URL != "https://hooks.example/orders" || w.Secret != "whsec_c2VjcmV0" || s.Where != "body.amount > 1000" ||
		len(s.Sources) != 1 || s.Batch.Max != 100 || s.Batch.Wait != 200*time.Millisecond || s.Retry.MaxAge != time.Hour {
		t.Errorf("webhook sink %+v (%+v)", s, s.Spec)
	}
	if c.Sinks[1].Sources[0] != "demo" {
		t.Errorf("a source written as a string: %+v", c.Sinks[1])
	}
}

func TestSinkProblems(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{`sinks: [{name: a, type: pigeon}]`, `unknown type "pigeon" (one of `},
		{`sinks: [{name: a}]`, "type is required"},
		{`sinks: [{type: console}]`, "sinks[0]: name is required"},
		{`sinks: [{name: a.b, type: console}]`, "name must be"},
		{`sinks: [{name: a, type: console}, {name: a, type: console}]`, `name "a" is used twice`},
		{`sinks: [{name: a, type: console, source: nope}]`, `source "nope" is not configured`},
		{`sinks: [{name: a, type: webhook}]`, "sinks[0] (a): url is required"},
		{`sinks: [{name: a, type: webhook, url: "http://x/", colour: red}]`, `unknown field "colour"`},
		{`sinks: [{name: a, type: console, batch: {max: -1}}]`, "must be positive"},
	} {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %s", c.yaml, err, c.want)
		}
	}
}
