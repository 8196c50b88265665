package stream

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestNewMessage(t *testing.T) {
	m := &Message{Source: "orders", Seq: 1042, Key: "eu.order.created", Headers: map[string]string{"region": "eu"},
		Body: []byte(`{"amount": 120.5}`), Time: time.Date(2026, 11, 25, 16, 0, 0, 123456789, time.UTC)}
	ev := NewMessage(m)
	want := `{"type":"message","id":"orders:1042","source":"orders","seq":1042,"key":"eu.order.created","time":"2026-11-25T16:00:00.123Z","headers":{"region":"eu"},"body":{"amount":120.5}}`
	if string(ev.JSON()) != want {
		t.Fatalf("got  %s\nwant %s", ev.JSON(), want)
	}
	if string(ev.Line()) != want+"\n" {
		t.Fatal("line")
	}
	if f := ev.WSFrame(); f[0] != 0x81 || f[1] != 126 || int(binary.BigEndian.Uint16(f[2:4])) != len(want) || string(f[4:]) != want {
		t.Fatalf("frame header % x", f[:4])
	}
}

func TestGapAndStatus(t *testing.T) {
	if got := string(NewGap("orders", 17, GapDropped).JSON()); got != `{"type":"gap","source":"orders","missed":17,"reason":"dropped"}` {
		t.Fatal(got)
	}
	if got := string(NewStatus("orders", "reconnecting", `dial: "refused"`).JSON()); got != `{"type":"status","source":"orders","state":"reconnecting","error":"dial: \"refused\""}` {
		t.Fatal(got)
	}
	if got := string(NewStatus("orders", "up", "").JSON()); got != `{"type":"status","source":"orders","state":"up"}` {
		t.Fatal(got)
	}
}

// Frames of every length class carry the right header.
func TestWSFrameLengths(t *testing.T) {
	for _, n := range []int{0, 10, 125, 126, 200, 65535, 65536, 70000} {
		ev := NewMessage(&Message{Source: "s", Body: []byte(`"` + strings.Repeat("a", n) + `"`)})
		f, js := ev.WSFrame(), ev.JSON()
		var l, hl int
		switch f[1] {
		case 126:
			l, hl = int(binary.BigEndian.Uint16(f[2:4])), 4
		case 127:
			l, hl = int(binary.BigEndian.Uint64(f[2:10])), 10
		default:
			l, hl = int(f[1]), 2
		}
		if l != len(js) || !bytes.Equal(f[hl:], js) {
			t.Fatalf("body of %d: frame says %d, json is %d", n, l, len(js))
		}
	}
}

// Whatever a source hands in, the event is one line of valid JSON that says the same thing.
func FuzzNewMessage(f *testing.F) {
	f.Add("k", "h", "v", []byte(`{"a":[1,2.5,"x\n"]}`))
	f.Add("", "", "", []byte("plain\ntext"))
	f.Add("\xff\u2028", "\x00", "\"\\", []byte("\xff\xfe\x00"))
	f.Add("k", "h", "v", []byte(" 42 "))
	f.Fuzz(func(t *testing.T, key, hk, hv string, body []byte) {
		m := &Message{Source: "src", Seq: 7, Key: key, Headers: map[string]string{hk: hv}, Body: body, Time: time.Unix(0, 0)}
		ev := NewMessage(m)
		js := ev.JSON()
		var c bytes.Buffer
		if json.Compact(&c, body) == nil && bytes.Equal(c.Bytes(), body) {
			// A body a source vouches for as compact JSON is carried as checking it would.
			vouched := *m
			vouched.BodyIsJSON = true
			if v := NewMessage(&vouched).JSON(); !bytes.Equal(v, js) {
				t.Fatalf("vouched body: %s, want %s", v, js)
			}
		}
		if bytes.ContainsAny(js, "\n\r") {
			t.Fatalf("raw newline in %q", js)
		}
		var got struct {
			Key          string            `json:"key"`
			Headers      map[string]string `json:"headers"`
			Body         json.RawMessage   `json:"body"`
			BodyEncoding string            `json:"body_encoding"`
		}
		if err := json.Unmarshal(js, &got); err != nil {
			t.Fatalf("invalid JSON %q: %v", js, err)
		}
		if utf8.ValidString(key) && got.Key != key {
			t.Fatalf("key %q became %q", key, got.Key)
		}
		if utf8.ValidString(hk) && utf8.ValidString(hv) && got.Headers[hk] != hv {
			t.Fatalf("header %q=%q became %v", hk, hv, got.Headers)
		}
		switch ClassifyBody(body) {
		case BodyJSON:
			var a, b any
			_ = json.Unmarshal(body, &a)
			_ = json.Unmarshal(got.Body, &b)
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if !bytes.Equal(ja, jb) || got.BodyEncoding != "" {
				t.Fatalf("JSON body %q became %s", body, got.Body)
			}
		case BodyText:
			var s string
			if err := json.Unmarshal(got.Body, &s); err != nil || s != string(body) {
				t.Fatalf("text body %q became %s", body, got.Body)
			}
		case BodyBase64:
			var s string
			_ = json.Unmarshal(got.Body, &s)
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil || !bytes.Equal(raw, body) || got.BodyEncoding != "base64" {
				t.Fatalf("binary body %q became %s %q", body, got.Body, got.BodyEncoding)
			}
		}
	})
}

func TestParseID(t *testing.T) {
	for _, c := range []struct {
		id, src string
		seq     uint64
		ok      bool
	}{
		{"orders:1042", "orders", 1042, true},
		{"a:b:3", "a:b", 3, true},
		{":3", "", 0, false},
		{"orders", "", 0, false},
		{"orders:", "", 0, false},
		{"orders:x", "", 0, false},
	} {
		src, seq, err := ParseID(c.id)
		if (err == nil) != c.ok || src != c.src || seq != c.seq {
			t.Errorf("%q: got %q %d %v", c.id, src, seq, err)
		}
	}
}
