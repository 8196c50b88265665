package cluster

import (
	"bytes"
	"testing"
)

func TestUserMsgID(t *testing.T) {
	for id, want := range map[string]string{"abc": "uabc", "k-1:x/y": "uk-1:x/y"} {
		if got := userMsgID(id); got != want {
			t.Errorf("userMsgID(%q) = %q", id, got)
		}
	}
	for _, id := range []string{"a b", "a\r\nNats-Expected-Last-Sequence: 1", "Nats-Expected-Last-Sequence", "xNATS-msg-id", string(bytes.Repeat([]byte("x"), 65)), "é"} {
		got := userMsgID(id)
		if got[0] != 'h' || len(got) != 44 {
			t.Errorf("userMsgID(%q) = %q: want a hash", id, got)
		}
	}
	if userMsgID("a b") == userMsgID("a  b") {
		t.Error("two ids, one hash")
	}
}
