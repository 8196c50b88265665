package sink_test

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/streamux/streamux/internal/sink"
)

// A position is shown as the ids a stream's from= takes, and read back from that form and from
// the object of sequences that older files and cluster states hold.
func TestPositionJSON(t *testing.T) {
	for _, c := range []struct {
		p    sink.Position
		json string
	}{
		{sink.Position{}, `""`},
		{sink.Position{"orders": 1042}, `"orders:1042"`},
		{sink.Position{"b": 9, "a": 3, "c-1": 0}, `"a:3,b:9,c-1:0"`},
	} {
		b, err := json.Marshal(c.p)
		if err != nil || string(b) != c.json {
			t.Errorf("%v: %s %v, want %s", c.p, b, err, c.json)
		}
		var back sink.Position
		if err := json.Unmarshal(b, &back); err != nil || !maps.Equal(back, c.p) {
			t.Errorf("%s read back as %v %v", b, back, err)
		}
	}
	var old sink.Position
	if err := json.Unmarshal([]byte(`{"in":20,"x":3}`), &old); err != nil || !maps.Equal(old, sink.Position{"in": 20, "x": 3}) {
		t.Errorf("an object of sequences read as %v %v", old, err)
	}
	for _, bad := range []string{`"in"`, `"in:x"`, `":3"`, `3`} {
		var p sink.Position
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s read as %v, want an error", bad, p)
		}
	}
}
