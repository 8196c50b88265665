package stream

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
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

// A message's event is encoded on first use, by whichever goroutine reads it first, and every
// reader sees the same bytes, body and encoding; the history's charge for it does not change
// when it is encoded.
func TestEncodedOnFirstUse(t *testing.T) {
	for _, body := range []string{`{"a": [1, 2]}`, `{"a":1}`, "text\n", "\xff\x00", ``} {
		m := &Message{Source: "s", Seq: 3, Key: "k", Headers: map[string]string{"h": "v"}, Body: []byte(body), Time: time.Unix(1, 0)}
		ev := NewMessage(m)
		charged, planned := ev.Footprint(), encodedCap(m)
		want := string(NewMessage(&Message{Source: "s", Seq: 3, Key: "k", Headers: map[string]string{"h": "v"}, Body: []byte(body), Time: time.Unix(1, 0)}).JSON())
		wantEnc := ClassifyBody([]byte(body))
		type seen struct {
			json, payload string
			enc           BodyEncoding
			size          int
		}
		got := make(chan seen, 8)
		for i := range cap(got) {
			go func() { // each sends once, received below
				var s seen
				switch i % 4 { // start from each way in
				case 0:
					s.json = string(ev.JSON())
				case 1:
					s.size = ev.Size()
				case 2:
					s.enc = m.BodyEncoding()
				case 3:
					s.payload = string(m.Payload())
				}
				s.json, s.payload, s.enc, s.size = string(ev.Line()[:len(ev.Line())-1]), string(m.Payload()), m.BodyEncoding(), ev.Size()
				got <- s
			}()
		}
		for range cap(got) {
			s := <-got
			if s.json != want || s.enc != wantEnc || s.size != cap(ev.Line())+wsRoom {
				t.Fatalf("body %q: saw %+v, want %s, encoding %d", body, s, want, wantEnc)
			}
			if wantEnc == BodyJSON && !strings.Contains(want, `"body":`+s.payload+"}") || wantEnc != BodyJSON && s.payload != body {
				t.Fatalf("body %q: payload %q in %s", body, s.payload, want)
			}
		}
		if ev.Footprint() != charged {
			t.Fatalf("body %q: footprint %d once encoded, %d before", body, ev.Footprint(), charged)
		}
		if wantEnc == BodyJSON && charged != planned {
			t.Fatalf("body %q: JSON charged %d, want %d: once encoded, the event holds its one copy", body, charged, planned)
		}
		if wantEnc == BodyJSON && ClassifyBody([]byte(body)) == BodyJSON {
			// A source that vouches for the same JSON is charged the same.
			compact := &Message{Source: "s", Seq: 3, Key: "k", Headers: map[string]string{"h": "v"}, Body: m.Payload(), BodyIsJSON: true, Time: time.Unix(1, 0)}
			if f := NewMessage(compact).Footprint(); f != encodedCap(compact) {
				t.Fatalf("body %q vouched for: charged %d, want %d", body, f, encodedCap(compact))
			}
		}
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
	f.Add("k", "h", "v", []byte("{\"a\":\"\xff\"}"))
	f.Add("k", "h", "v", []byte("\"\a\\b\""))
	f.Fuzz(func(t *testing.T, key, hk, hv string, body []byte) {
		m := &Message{Source: "src", Seq: 7, Key: key, Headers: map[string]string{hk: hv}, Body: body, Time: time.Unix(0, 0)}
		ev := NewMessage(m)
		js := ev.JSON()
		if !utf8.Valid(js) {
			t.Fatalf("invalid UTF-8 in %q: a WebSocket text frame must be UTF-8", js)
		}
		if m.BodyEncoding() != ClassifyBody(body) {
			t.Fatalf("body %q: encoded as %d, classified as %d", body, m.BodyEncoding(), ClassifyBody(body))
		}
		var c bytes.Buffer
		if utf8.Valid(body) && json.Compact(&c, body) == nil && bytes.Equal(c.Bytes(), body) {
			// A body a source vouches for as compact JSON is carried as checking it would.
			vouched := &Message{Source: m.Source, Seq: m.Seq, Key: key, Headers: m.Headers, Body: body, BodyIsJSON: true, Time: m.Time}
			if v := NewMessage(vouched).JSON(); !bytes.Equal(v, js) {
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

// The quick test for compact JSON never says yes to what encoding/json would not carry as is,
// and classifying a body gives what the long way gives.
func FuzzCompactJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `NaN`, `-inf`, `[1,2]`, `"\u00e9"`, "\"\x01\"", `01`, `{"a":1}}`,
		" 1 ", "\"\xff\"", `1.`, `{"a" : [ true , null ] }`, `"\ud800"`, "\"\a\\b0000\"", "[\"\\\"\t\"]",
		strings.Repeat("[", 400) + strings.Repeat("]", 400), `{"s":"a b"}`, `truex`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if compactJSON(b) {
			var c bytes.Buffer
			if !utf8.Valid(b) || json.Compact(&c, b) != nil || !bytes.Equal(c.Bytes(), b) {
				t.Fatalf("%q: taken for compact JSON", b)
			}
		}
		if ValidJSON(b) != json.Valid(b) {
			t.Fatalf("%q: ValidJSON %v, json.Valid %v", b, ValidJSON(b), json.Valid(b))
		}
		want := BodyBase64
		switch {
		case utf8.Valid(b) && json.Valid(b):
			want = BodyJSON
		case utf8.Valid(b):
			want = BodyText
		}
		if got := ClassifyBody(b); got != want {
			t.Fatalf("%q: classified %d, want %d", b, got, want)
		}
	})
}

// JSON in invalid UTF-8 cannot go in a text frame as it is (a browser closes the connection
// with 1007): its bytes are carried in base64.
func TestInvalidUTF8JSONIsBase64(t *testing.T) {
	body := []byte("{\"a\":\"\xff\"}")
	m := &Message{Source: "s", Seq: 1, Body: body}
	js := NewMessage(m).JSON()
	want := `"body":"` + base64.StdEncoding.EncodeToString(body) + `","body_encoding":"base64"}`
	if !bytes.HasSuffix(js, []byte(want)) || m.BodyEncoding() != BodyBase64 {
		t.Fatalf("got %s (encoding %d), want it to end in %s", js, m.BodyEncoding(), want)
	}
}

// Events write their time as time.Format would, faster.
func FuzzAppendTime(f *testing.F) {
	for _, t := range []time.Time{time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), {},
		time.Date(2026, 11, 26, 3, 4, 5, 6000000, time.FixedZone("x", -7*3600))} {
		f.Add(t.Unix(), int64(t.Nanosecond()))
	}
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		tm := time.Unix(sec, nsec)
		if got, want := AppendTime(nil, tm), tm.UTC().AppendFormat(nil, timeLayout); !bytes.Equal(got, want) {
			t.Fatalf("%d.%d: %s, want %s", sec, nsec, got, want)
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

// A message's event has the same bytes however its headers map iterates: in a cluster, every
// node encodes the same id, and a node its history and a replay, and they must agree.
func TestHeadersInNameOrder(t *testing.T) {
	h := map[string]string{}
	for i := range 40 { // past the encoder's room on the stack
		h[fmt.Sprintf("h%02d", 39-i)] = fmt.Sprint(i)
	}
	h["X-Mixed"] = "v"
	h["b"] = "\x00"
	at := time.UnixMilli(1_700_000_000_000)
	want := string(NewMessage(&Message{Source: "s", Seq: 1, Headers: h, Body: []byte(`1`), Time: at}).JSON())
	if !strings.Contains(want, `"headers":{"X-Mixed":"v","b":"\u0000","h00":"39","h01":"38"`) {
		t.Fatalf("headers not in name order: %s", want)
	}
	for range 50 {
		c := maps.Clone(h)
		if got := string(NewMessage(&Message{Source: "s", Seq: 1, Headers: c, Body: []byte(`1`), Time: at}).JSON()); got != want {
			t.Fatalf("encoded\n%s\nthen\n%s", want, got)
		}
	}
}
