package predicate

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/streamux/streamux/internal/stream"
)

var msgTime = time.Date(2026, 11, 25, 16, 0, 0, 123e6, time.UTC)

// order is the message most cases read.
func order() *stream.Message {
	return &stream.Message{
		Source:  "orders",
		Seq:     1042,
		Key:     "eu.order.created",
		Headers: map[string]string{"region": "eu", "tenant": "acme", "x-trace": "t1"},
		Body: []byte(`{"amount":120.5,"n":9,"count":100,"neg":-3,"exp":1e2,"big":12345678901234567890,
			"name":"Widget \"Pro\"","esc":"caf\u00e9","empty":"","flag":true,"off":false,"nothing":null,
			"customer":{"tier":"gold","id":7,"address":{"city":"Zürich"}},
			"tags":["new","sale"],"nums":[1,2.5,3],"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}],
			"dup":1,"dup":2}`),
		Time: msgTime,
	}
}

func withBody(b string) *stream.Message {
	m := order()
	m.Body = []byte(b)
	return m
}

func TestMatch(t *testing.T) {
	t.Parallel()
	noHeaders := order()
	noHeaders.Headers = nil
	binary := order()
	binary.Body = []byte{0xff, 0xfe, 0x00, 0x01}

	cases := []struct {
		src     string
		msg     *stream.Message // order() when nil
		want    bool
		wantErr bool
	}{
		// Equality on the message's fields.
		{src: `key == "eu.order.created"`, want: true},
		{src: `key == "us.order.created"`, want: false},
		{src: `key != "us.order.created"`, want: true},
		{src: `source == "orders"`, want: true},
		{src: `headers.region == "eu"`, want: true},
		{src: `headers["x-trace"] == "t1"`, want: true},
		{src: `headers.region in ["eu", "us"]`, want: true},
		{src: `headers.region in ["us", "ap"]`, want: false},
		{src: `"tenant" in headers`, want: true},
		{src: `has(headers.tenant)`, want: true},
		{src: `has(headers.missing)`, want: false},
		{src: `headers.missing == "x"`, wantErr: true},
		{src: `size(headers) == 0`, msg: noHeaders, want: true},
		{src: `has(headers.region)`, msg: noHeaders, want: false},
		{src: `key in ["a", "eu.order.created"]`, want: true},

		// Strings.
		{src: `key.startsWith("eu.")`, want: true},
		{src: `key.endsWith(".created")`, want: true},
		{src: `key.contains("order")`, want: true},
		{src: `key.contains("refund")`, want: false},
		{src: `key.matches("^eu\\.[a-z]+\\.created$")`, want: true},
		{src: `key.split(".")[0] == "eu"`, want: true},
		{src: `headers.region.upperAscii() == "EU"`, want: true},
		{src: `body.name == "Widget \"Pro\""`, want: true},
		{src: `body.esc == "café"`, want: true},
		{src: `body.empty == ""`, want: true},
		{src: `body.customer.address.city.startsWith("Zü")`, want: true},
		{src: `size(body.customer.address.city) == 6`, want: true},

		// Numbers: ints and doubles, and comparisons across them.
		{src: `body.amount > 100`, want: true},
		{src: `body.amount > 100.0`, want: true},
		{src: `body.amount < 120`, want: false},
		{src: `body.amount == 120.5`, want: true},
		{src: `body.count == 100`, want: true},
		{src: `body.count == 100.0`, want: true},
		{src: `body.count >= 100.0 && body.count <= 100u`, want: true},
		{src: `body.n % 3 == 0`, want: true},
		{src: `body.n % 2 == 0`, want: false},
		{src: `body.neg < 0`, want: true},
		{src: `body.exp == 100`, want: true},          // 1e2 is a double
		{src: `type(body.exp) == double`, want: true}, // an exponent makes a double
		{src: `type(body.count) == int`, want: true},  // an integer literal is an int
		{src: `type(body.big) == double`, want: true}, // too big for int64
		{src: `body.big > 1e19`, want: true},          //
		{src: `body.amount % 2 == 0`, wantErr: true},  // % is for ints
		{src: `body.nums[1] == 2.5 && body.nums[0] == 1`, want: true},
		{src: `1 in body.nums`, want: true},
		{src: `2 in body.nums`, want: false},

		// Nested fields, has(), lists.
		{src: `body.customer.tier == "gold"`, want: true},
		{src: `body.customer.id == 7`, want: true},
		{src: `has(body.customer)`, want: true},
		{src: `has(body.customer.tier)`, want: true},
		{src: `has(body.customer.email)`, want: false},
		{src: `has(body.refund)`, want: false},
		{src: `has(body.refund.id)`, wantErr: true}, // body.refund itself is missing
		{src: `"sale" in body.tags`, want: true},
		{src: `body.tags[0] == "new"`, want: true},
		{src: `size(body.tags) == 2`, want: true},
		{src: `body.items.exists(i, i.sku == "b" && i.qty > 1)`, want: true},
		{src: `body.items.all(i, i.qty > 1)`, want: false},
		{src: `body.flag`, want: true},
		{src: `body.off`, want: false},
		{src: `!body.off && body.flag == true`, want: true},
		{src: `body.nothing == null`, want: true},
		{src: `body.dup == 2`, want: true}, // the last of a repeated name, as JSON.parse has it

		// Logic.
		{src: `key == "x" || headers.region == "eu"`, want: true},
		{src: `key == "x" && headers.region == "eu"`, want: false},
		{src: `!(key == "x")`, want: true},
		{src: `source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`, want: true},
		{src: `key.startsWith("eu.") && has(body.customer) && body.customer.tier == "gold"`, want: true},
		{src: `key == "x" && body.missing == 1`, want: false},            // false && error is false
		{src: `headers.region == "eu" || body.missing == 1`, want: true}, // true || error is true
		{src: `key == "eu.order.created" && body.missing == 1`, wantErr: true},

		// seq and time.
		{src: `seq == 1042`, want: true},
		{src: `seq > 1000 && seq < 2000`, want: true},
		{src: `seq % 2 == 0`, want: true},
		{src: `time > timestamp("2026-11-25T00:00:00Z")`, want: true},
		{src: `time < timestamp("2026-11-25T16:00:00.123Z")`, want: false},
		{src: `time - timestamp("2026-11-25T16:00:00Z") == duration("123ms")`, want: true},
		{src: `time.getHours() == 16`, want: true},

		// Missing fields and wrong types: no match, and an error.
		{src: `body.missing == 1`, wantErr: true},
		{src: `body.customer.email == "x"`, wantErr: true},
		{src: `body.name > 3`, wantErr: true},
		{src: `body.name.startsWith("W")`, want: true},
		{src: `body.amount.startsWith("1")`, wantErr: true},
		{src: `body.tags.tier == "gold"`, wantErr: true},
		{src: `body.tags[5] == "x"`, wantErr: true},
		{src: `body.name`, wantErr: true}, // dyn, but not a bool
		{src: `body.amount > 100`, msg: withBody(`{"amount":"lots"}`), wantErr: true},
		{src: `body.amount > 100`, msg: withBody(`[1,2]`), wantErr: true},

		// Bodies that are not JSON objects.
		{src: `body == 42`, msg: withBody(`42`), want: true},
		{src: `body == "hello"`, msg: withBody(`"hello"`), want: true},
		{src: `body == "hello world"`, msg: withBody(`hello world`), want: true},
		{src: `body.startsWith("{")`, msg: withBody(`{"a":1`), want: true},                 // not JSON: text
		{src: `body == "{\"a\":\"\x01\"}"`, msg: withBody("{\"a\":\"\x01\"}"), want: true}, // raw control char: text
		{src: `body == "1.2.3"`, msg: withBody(`1.2.3`), want: true},                       // fastjson would take it
		{src: `body == "NaN"`, msg: withBody(`NaN`), want: true},
		{src: `body == ""`, msg: withBody(``), want: true},
		{src: `body == "  "`, msg: withBody(`  `), want: true},
		{src: `body == null`, msg: withBody(` null `), want: true},
		{src: `body == ` + quote(base64.StdEncoding.EncodeToString(binary.Body)), msg: binary, want: true},
		{src: `body.a == 1`, msg: withBody(strings.Repeat("[", 400) + strings.Repeat("]", 400)), wantErr: true},
		{src: `key == "eu.order.created"`, msg: withBody(strings.Repeat("[", 400) + strings.Repeat("]", 400)), want: true},

		// Comprehensions, with the run-time cost limit.
		{src: `body.items.map(i, i.qty).exists(q, q == 2)`, want: true},
		{src: `body.tags.filter(t, t.startsWith("s")).size() == 1`, want: true},
	}
	for _, c := range cases {
		p, err := Compile(c.src, Limits{})
		if err != nil {
			t.Errorf("Compile(%s): %v", c.src, err)
			continue
		}
		m := c.msg
		if m == nil {
			m = order()
		}
		var in Input
		in.Reset(m)
		got, err := p.Match(&in)
		if c.wantErr {
			if err == nil || got {
				t.Errorf("%s on %.40q: got %v, %v; want false and an error", c.src, m.Body, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s on %.40q: got %v, %v; want %v", c.src, m.Body, got, err, c.want)
		}
	}
}

func quote(s string) string { return `"` + s + `"` }

// A failure on one message does not stick: the same predicate and Input go on matching.
func TestMatchAfterFailure(t *testing.T) {
	t.Parallel()
	p, err := Compile(`body.amount > 100 && key.startsWith("eu.")`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		body    string
		want    bool
		wantErr bool
	}{
		{`{"amount":120.5}`, true, false},
		{`{"total":120.5}`, false, true},
		{`{"amount":"120.5"}`, false, true},
		{`not json`, false, true},
		{`{"amount":99}`, false, false},
		{`{"amount":101}`, true, false},
	}
	var in Input
	for _, s := range steps {
		in.Reset(withBody(s.body))
		got, err := p.Match(&in)
		if got != s.want || (err != nil) != s.wantErr {
			t.Errorf("body %s: got %v, %v; want %v, error %v", s.body, got, err, s.want, s.wantErr)
		}
	}
}

// Many predicates read one Input; the body is decoded once and every predicate sees it.
func TestInputShared(t *testing.T) {
	t.Parallel()
	srcs := []string{`key == "eu.order.created"`, `body.amount > 100`, `body.customer.tier == "gold"`, `headers.region == "eu"`, `seq == 1042`}
	var in Input
	for round := 0; round < 3; round++ {
		in.Reset(order())
		for _, src := range srcs {
			p, err := Compile(src, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := p.Match(&in); !ok || err != nil {
				t.Errorf("round %d: %s: got %v, %v", round, src, ok, err)
			}
		}
	}
}

// Predicates share the values of body paths on a message; paths that look alike stay apart.
func TestPathCache(t *testing.T) {
	t.Parallel()
	srcs := map[string]bool{
		`body.a.b == 1`:                     true,
		`body["a.b"] == 2`:                  true,
		`body["a\u0000.b"] == 3`:            true,
		`body.a["b"] == 1 && body.a.c == 4`: true,
		`body.l[0] == 5`:                    true,
		`body.l[1] == 6`:                    true,
		`body["l"][0] == 5`:                 true,
		`body.a.b == 2`:                     false,
		`body.nope == 1`:                    false,
	}
	body := `{"a":{"b":1,"c":4},"a.b":2,"a\u0000.b":3,"l":[5,6]}`
	var in Input
	for round := 0; round < 3; round++ {
		in.Reset(withBody(body))
		for src, want := range srcs { // in random order
			p, err := Compile(src, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := p.Match(&in); ok != want {
				t.Errorf("round %d: %s: %v, want %v", round, src, ok, want)
			}
		}
		// The next message does not see this one's values.
		in.Reset(withBody(`{"a":{"b":7}}`))
		p, _ := Compile(`body.a.b == 7`, Limits{})
		if ok, err := p.Match(&in); !ok || err != nil {
			t.Errorf("round %d, next message: %v, %v", round, ok, err)
		}
	}
}

// A predicate that reads no body leaves it alone.
func TestBodyUntouched(t *testing.T) {
	t.Parallel()
	p, err := Compile(`key == "eu.order.created" && headers.region == "eu" && seq > 0`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	in.Reset(order())
	if ok, err := p.Match(&in); !ok || err != nil {
		t.Fatalf("got %v, %v", ok, err)
	}
	if in.body.kind != bodyUnknown {
		t.Errorf("the body was decoded (kind %d) for a predicate that does not read it", in.body.kind)
	}
}

func TestMatchesAll(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "  ", "\n\t", "true", " true ", "(true)"} {
		p, err := Compile(src, Limits{})
		if err != nil {
			t.Errorf("Compile(%q): %v", src, err)
			continue
		}
		if !p.MatchesAll() {
			t.Errorf("%q: not MatchesAll", src)
		}
		if p.String() != src {
			t.Errorf("String() = %q, want %q", p.String(), src)
		}
		var in Input
		in.Reset(order())
		if ok, err := p.Match(&in); !ok || err != nil {
			t.Errorf("%q: Match = %v, %v", src, ok, err)
		}
	}
	for _, src := range []string{"false", `key == "x"`, "true && true"} {
		p, err := Compile(src, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if p.MatchesAll() {
			t.Errorf("%q: MatchesAll", src)
		}
	}
}

func TestMatchWithoutMessage(t *testing.T) {
	t.Parallel()
	p, err := Compile(`key == ""`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Match(&Input{}); ok || err == nil {
		t.Errorf("Match on an Input never Reset: %v, %v", ok, err)
	}
	if ok, err := p.Match(nil); ok || err == nil {
		t.Errorf("Match(nil): %v, %v", ok, err)
	}
}

// A comprehension is held to MaxCost at run time when the body is bigger than the hints.
func TestRuntimeCostLimit(t *testing.T) {
	t.Parallel()
	p, err := Compile(`body.items.exists(i, i.contains("needle"))`, Limits{MaxCost: 30_000})
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	in.Reset(withBody(`{"items":["hay","a needle"]}`))
	if ok, err := p.Match(&in); !ok || err != nil {
		t.Fatalf("small body: %v, %v", ok, err)
	}
	// 100 strings of 10,000 characters: few iterations, but each costs 1,000.
	big := `{"items":[` + strings.Repeat(`"`+strings.Repeat("hay", 3333)+`",`, 100) + `"a needle"]}`
	in.Reset(withBody(big))
	ok, err := p.Match(&in)
	if ok || err == nil || !strings.Contains(err.Error(), "cost") {
		t.Errorf("big body: %v, %v; want the cost limit", ok, err)
	}
}

// After a huge body, an Input lets go of the memory it parsed it with.
func TestInputReleasesBigBody(t *testing.T) {
	t.Parallel()
	p, err := Compile(`body.n == 1`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	in.Reset(withBody(`{"n":1,"pad":"` + strings.Repeat("x", keepBytes) + `"}`))
	if ok, err := p.Match(&in); !ok || err != nil {
		t.Fatalf("big body: %v, %v", ok, err)
	}
	in.Reset(withBody(`{"n":1}`))
	if !reflect.DeepEqual(in.body.parser, fastjson.Parser{}) {
		t.Error("the parser still holds the big body")
	}
	if ok, err := p.Match(&in); !ok || err != nil {
		t.Fatalf("small body: %v, %v", ok, err)
	}
}

// Comprehensions over the body stop at maxIterations per evaluation, whatever the cost limit.
func TestIterationLimit(t *testing.T) {
	t.Parallel()
	p, err := Compile(`body.items.exists(i, i == "needle") || body.more.all(m, m > 0)`, Limits{MaxCost: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	list := func(n int, elem string) string { return "[" + strings.Repeat(elem+",", n-1) + elem + "]" }
	var in Input
	for _, c := range []struct {
		items, more int
		wantErr     bool
	}{
		{maxIterations - 1, 1, false},
		{maxIterations / 2, maxIterations / 2, false},
		{maxIterations, 1, true},
		{maxIterations / 2, maxIterations/2 + 1, true}, // the count is per evaluation, not per list
		{10, 10, false},
	} {
		in.Reset(withBody(`{"items":` + list(c.items, `"hay"`) + `,"more":` + list(max(c.more, 1), "1") + `}`))
		ok, err := p.Match(&in)
		if c.wantErr != (err != nil) || ok != !c.wantErr {
			t.Errorf("%d and %d elements: %v, %v", c.items, c.more, ok, err)
		}
		// The count starts afresh for each evaluation.
		if ok2, err2 := p.Match(&in); ok2 != ok || (err2 != nil) != (err != nil) {
			t.Errorf("%d and %d elements, again: %v, %v", c.items, c.more, ok2, err2)
		}
	}
	// Every range counts, not only the body's lists: a text body split into lines, too.
	lines, err := Compile(`body.split("\n").exists(l, l.startsWith("ERROR"))`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	in.Reset(withBody(strings.Repeat("INFO ok\n", 10) + "ERROR disk full"))
	if ok, err := lines.Match(&in); !ok || err != nil {
		t.Errorf("11 lines: %v, %v", ok, err)
	}
	in.Reset(withBody(strings.Repeat("INFO ok\n", 2*maxIterations) + "ERROR disk full"))
	if ok, err := lines.Match(&in); ok || err == nil {
		t.Errorf("%d lines: %v, %v", 2*maxIterations+1, ok, err)
	}
	// Without a comprehension, a long list is no problem.
	q, err := Compile(`size(body.items) > 5 && "needle" in body.items && body.items[5000] == "hay"`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	in.Reset(withBody(`{"items":` + list(10*maxIterations, `"hay"`)[:len(list(10*maxIterations, `"hay"`))-1] + `,"needle"]}`))
	if ok, err := q.Match(&in); !ok || err != nil {
		t.Errorf("no comprehension over a long list: %v, %v", ok, err)
	}
}

func TestCost(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		`key == "a"`,
		`source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`,
		`body.items.exists(i, i.sku.contains("x"))`,
		`body.s.matches("^[a-z]+@example\\.com$")`,
	} {
		p, err := Compile(src, Limits{})
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		lo, hi := p.Cost()
		if lo > hi || hi == 0 || hi > DefaultMaxCost {
			t.Errorf("%s: Cost() = %d, %d", src, lo, hi)
		}
	}
	p, _ := Compile("", Limits{})
	if lo, hi := p.Cost(); lo != 0 || hi != 0 {
		t.Errorf("empty: Cost() = %d, %d", lo, hi)
	}
}
