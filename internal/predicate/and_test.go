package predicate

import (
	"testing"

	"github.com/streamux/streamux/internal/stream"
)

func TestAnd(t *testing.T) {
	forced, err := Compile(`headers.tenant == "acme"`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	acme := &stream.Message{Key: "a", Headers: map[string]string{"tenant": "acme"}, Body: []byte(`{}`)}
	other := &stream.Message{Key: "a", Headers: map[string]string{"tenant": "other"}, Body: []byte(`{}`)}
	for _, client := range []string{``, `true`, `key == "a"`, `true // a comment`, `key == "a" || true`, "true\n// more"} {
		p, err := Compile(client, Limits{})
		if err != nil {
			t.Fatalf("%q: %v", client, err)
		}
		both, err := And(forced, p, Limits{})
		if err != nil {
			t.Fatalf("%q: %v", client, err)
		}
		in.Reset(other)
		if ok, _ := both.Match(&in); ok {
			t.Errorf("client %q widened the forced predicate", client)
		}
		in.Reset(acme)
		if ok, _ := both.Match(&in); !ok {
			t.Errorf("client %q: the forced subset does not match", client)
		}
	}
	// A client text that is not a whole expression never gets as far as And.
	if _, err := Compile(`true) || (true`, Limits{}); err == nil {
		t.Fatal("an unbalanced predicate compiled")
	}
	if got, _ := And(nil, forced, Limits{}); got != forced {
		t.Fatal("And(nil, p) is not p")
	}
}
