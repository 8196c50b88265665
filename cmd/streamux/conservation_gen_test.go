package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// The conservation test's generator: bodies of every shape the contract distinguishes (JSON,
// compact or spaced; text; bytes that are not UTF-8), of exact sizes that cross the buffers on
// the way, and the keys and headers that go with them.

// bodyKind is the shape a generated body is meant to have. What a client must receive is decided
// from the bytes themselves (see wantFor), never from the kind, which only steers the generator.
type bodyKind int

const (
	kindJSON        bodyKind = iota // compact JSON
	kindJSONSpaced                  // JSON with spaces, tabs, CRs (and newlines where allowed) between tokens
	kindText                        // UTF-8 text: controls, quotes, escapes, every UTF-8 length
	kindTextSpaced                  // text that starts and ends with Unicode spaces (U+00A0, U+0085, U+2028, U+3000…)
	kindBinary                      // bytes that are not UTF-8
	kindJSONBadUTF8                 // JSON whose strings hold bytes that are not UTF-8: carried in base64
	kindAlmostJSON                  // JSON with one byte too many or too few: text (or JSON, if it still parses)
	nKinds
)

func (k bodyKind) String() string {
	return [...]string{"json", "json-spaced", "text", "text-spaced", "binary", "json-bad-utf8", "almost-json"}[k]
}

// bodyRules is what a path cannot carry.
type bodyRules struct {
	// line: the body is one NDJSON line. It holds no '\n' (that would end it), does not end in
	// '\r' (a "\r\n" ending, or a '\r' that ends the body, is stripped whole), and is not empty
	// (an empty line is skipped). Anything else is kept as sent (README, Ingest: "A line loses
	// its line ending and nothing else"): spaces, tabs and Unicode spaces around a text, and a
	// line of spaces alone, which is a text message; the generator makes all of them.
	line bool
}

func (rl bodyRules) allows(b []byte) bool {
	return !rl.line || len(b) > 0 && bytes.IndexByte(b, '\n') < 0 && b[len(b)-1] != '\r'
}

// gen draws everything random of one path from its own seeded generator.
type gen struct {
	r *rand.Rand
}

// sizes returns n body sizes from lo to limit: the sizes either side of the buffers that every
// body passes through on its way (4 KiB: bufio's default and net/http's write buffer; 64 KiB:
// bufio.Scanner's default limit, and where a WebSocket frame's length outgrows 16 bits) and of
// the path's own
// (extra), the limit itself and one under it, then random sizes, most of them small, a few
// large.
func (g gen) sizes(n, lo, limit int, extra ...int) []int {
	var out []int
	for _, b := range append([]int{4096, 65536}, extra...) {
		for _, s := range []int{b - 1, b, b + 1} {
			if s < limit-1 {
				out = append(out, s)
			}
		}
	}
	out = append(out, limit-1, limit)
	for len(out) < n {
		var s int
		switch g.r.IntN(20) {
		case 0, 1, 2, 3:
			s = g.r.IntN(65)
		case 4, 5, 6, 7, 8, 9:
			s = 64 + g.r.IntN(4096-64)
		case 10, 11:
			s = 4096 - 16 + g.r.IntN(33)
		case 12, 13, 14, 15:
			s = 4096 + g.r.IntN(65536-4096)
		case 16, 17:
			s = 65536 - 16 + g.r.IntN(33)
		case 18:
			s = 65536 + g.r.IntN(max(1, limit/4-65536))
		default:
			s = 65536 + g.r.IntN(max(1, limit-65536))
		}
		out = append(out, s)
	}
	for i, s := range out {
		out[i] = min(max(s, lo), limit)
	}
	g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// kind draws a body kind.
func (g gen) kind() bodyKind {
	return bodyKind(g.r.IntN(int(nKinds)))
}

// body returns a body of kind k and exactly size bytes that rules allow (a size too small for
// the kind gets another shape of that size).
func (g gen) body(k bodyKind, size int, rules bodyRules) []byte {
	for try := 0; ; try++ {
		b := g.bodyOnce(k, size, rules)
		if len(b) != size {
			panic(fmt.Sprintf("conservation generator: %v of %d bytes came out %d bytes", k, size, len(b)))
		}
		if rules.allows(b) {
			return b
		}
		switch {
		case try > 1000:
			panic(fmt.Sprintf("conservation generator: no body of %d bytes satisfies %+v", size, rules))
		case try > 20:
			k = kindText // a size where the kind cannot satisfy the rules: plain text can
		}
	}
}

func (g gen) bodyOnce(k bodyKind, size int, rules bodyRules) []byte {
	switch k {
	case kindJSON, kindJSONSpaced, kindJSONBadUTF8:
		w := jsonWriter{g: g, spaced: k == kindJSONSpaced, line: rules.line, badUTF8: k == kindJSONBadUTF8}
		return w.top(size)
	case kindText:
		return g.text(nil, size, rules.line)
	case kindTextSpaced:
		return g.spacedText(size, rules.line)
	case kindBinary:
		return g.binary(size, rules.line)
	case kindAlmostJSON:
		if size == 0 {
			return nil
		}
		if g.r.IntN(2) == 0 {
			w := jsonWriter{g: g, line: rules.line}
			b := w.top(size - 1)
			return append(b, "x}]\":,"[g.r.IntN(6)])
		}
		w := jsonWriter{g: g, line: rules.line}
		b := w.top(size + 1)
		// Cut the last byte, or the last rune whole, so that the text stays UTF-8.
		_, n := utf8.DecodeLastRune(b)
		b = b[:len(b)-n]
		return append(b, bytes.Repeat([]byte{'y'}, size-len(b))...)
	}
	panic("conservation generator: unknown kind")
}

// textRunes are the runes text is made of besides printable ASCII: controls, what JSON must
// escape, what JavaScript once could not hold in a string (U+2028, U+2029), Unicode spaces, and
// runes of every UTF-8 length up to U+10FFFF.
var textRunes = []rune{
	'\t', 0x01, 0x1f, 0x7f, '"', '\\', '/', '<', '>', '&', '\'',
	'é', 'ß', 0xa0, 0x85, 0x300, 0x7ff,
	0x800, 0x2028, 0x2029, 0x3000, 0x200b, 0xfeff, 0xfffd, 0xe000, '日', '本', 0xffff,
	0x10000, 0x1f600, 0x10ffff,
}

// spaceRunes are Unicode's spaces (unicode.IsSpace), which bytes.TrimSpace strips.
var spaceRunes = []rune{' ', '\t', '\v', '\f', 0x85, 0xa0, 0x1680, 0x2000, 0x2007, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000}

// text appends UTF-8 text of exactly size bytes to b. On a line it holds no '\n' and does not
// end in '\r'.
func (g gen) text(b []byte, size int, line bool) []byte {
	end := len(b) + size
	for len(b) < end {
		left := end - len(b)
		var r rune
		switch g.r.IntN(8) {
		case 0, 1, 2, 3, 4:
			r = rune(0x20 + g.r.IntN(0x5f))
		case 5:
			if !line && g.r.IntN(4) == 0 {
				r = []rune{'\n', '\r'}[g.r.IntN(2)]
			} else {
				r = textRunes[g.r.IntN(len(textRunes))]
			}
		case 6:
			r = spaceRunes[g.r.IntN(len(spaceRunes))]
		default:
			r = rune(0xa1 + g.r.IntN(0xd7ff-0xa1)) // anywhere below the surrogates
		}
		if utf8.RuneLen(r) > left {
			r = rune('a' + g.r.IntN(26))
		}
		b = utf8.AppendRune(b, r)
	}
	if line && size > 0 && b[len(b)-1] == '\r' {
		b[len(b)-1] = 'z'
	}
	return b
}

// spacedText is text that begins and ends with Unicode spaces, where some room is left, or
// now and then (when small) spaces alone.
func (g gen) spacedText(size int, line bool) []byte {
	if size <= 64 && g.r.IntN(3) == 0 {
		var b []byte
		for len(b) < size {
			r := spaceRunes[g.r.IntN(len(spaceRunes))]
			if utf8.RuneLen(r) > size-len(b) {
				r = ' '
			}
			b = utf8.AppendRune(b, r)
		}
		return b
	}
	spaces := func(room int) []byte {
		var s []byte
		for range 1 + g.r.IntN(3) {
			r := spaceRunes[g.r.IntN(len(spaceRunes))]
			if !line && g.r.IntN(5) == 0 {
				r = []rune{'\n', '\r'}[g.r.IntN(2)]
			}
			if len(s)+utf8.RuneLen(r) > room {
				break
			}
			s = utf8.AppendRune(s, r)
		}
		return s
	}
	head := spaces(size / 3)
	tail := spaces(size / 3)
	b := append([]byte(nil), head...)
	b = g.text(b, size-len(head)-len(tail), line)
	if line && len(tail) == 0 && len(b) > 0 && b[len(b)-1] == '\r' {
		b[len(b)-1] = 'z'
	}
	return append(b, tail...)
}

// binary returns size bytes that are not UTF-8 (but for size 0): random bytes, or text with
// stray bytes in it (Latin-1, a lone continuation byte, an overlong encoding, a surrogate, a
// rune cut short at the end).
func (g gen) binary(size int, line bool) []byte {
	if size == 0 {
		return nil
	}
	var b []byte
	if g.r.IntN(2) == 0 {
		b = make([]byte, size)
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
	} else {
		b = g.text(nil, size, line)
		strays := [][]byte{{0xe9}, {0x80}, {0xff}, {0xc0, 0xaf}, {0xed, 0xa0, 0x80}, {0xf4, 0x90, 0x80, 0x80}}
		for range 1 + g.r.IntN(4) {
			s := strays[g.r.IntN(len(strays))]
			if len(s) <= size {
				copy(b[g.r.IntN(size-len(s)+1):], s)
			}
		}
		if size >= 2 && g.r.IntN(3) == 0 {
			copy(b[size-2:], []byte{0xe2, 0x82}) // a three-byte rune cut after two
		}
	}
	if utf8.Valid(b) {
		b[g.r.IntN(size)] = 0xff
	}
	if line {
		for i, c := range b {
			if c == '\n' {
				b[i] = 0xfe
			}
		}
		if b[size-1] == '\r' {
			b[size-1] = 0xfe
		}
	}
	return b
}

// jsonWriter writes one JSON value of an exact size.
type jsonWriter struct {
	g       gen
	spaced  bool // whitespace between tokens, before and after
	line    bool // no '\n' in that whitespace
	badUTF8 bool // one byte that is not UTF-8 inside a string
	b       []byte
}

// ws writes whitespace between tokens, sometimes, when spaced.
func (w *jsonWriter) ws() {
	if !w.spaced || w.g.r.IntN(3) != 0 {
		return
	}
	chunks := []string{" ", "\t", "  ", "\r", "\n", "\r\n", "\n    "}
	if w.line {
		chunks = chunks[:4]
	}
	w.b = append(w.b, chunks[w.g.r.IntN(len(chunks))]...)
}

// trailing is whitespace for after the value: on a line it does not end in '\r'.
func (w *jsonWriter) trailing() string {
	if !w.spaced || w.g.r.IntN(2) == 0 {
		return ""
	}
	if w.line {
		return []string{" ", "\t", " \t ", "\r "}[w.g.r.IntN(4)]
	}
	return []string{" ", "\n", "\r\n", "\t\n"}[w.g.r.IntN(4)]
}

// top writes a JSON value of exactly size bytes. A size of 0 is the empty body (not JSON).
func (w *jsonWriter) top(size int) []byte {
	w.b = w.b[:0]
	if size == 0 {
		return []byte{}
	}
	trail := w.trailing()
	if w.spaced && size > 2*len(trail)+2 {
		w.ws()
	} else {
		trail = ""
	}
	room := size - len(w.b) - len(trail)
	if room < 12 {
		w.b = w.b[:0]
		w.scalar(size)
		return w.b
	}
	switch w.g.r.IntN(10) {
	case 0: // a long string
		w.b = append(w.b, '"')
		w.pad(room - 2)
		w.b = append(w.b, '"')
	case 1, 2, 3: // an array
		w.container(room, '[', ']')
	default:
		w.container(room, '{', '}')
	}
	w.b = append(w.b, trail...)
	return w.b
}

// container writes an object or array of exactly room bytes: random members up to a random part
// of it, then one string member that pads it to the byte.
func (w *jsonWriter) container(room int, open, close byte) {
	start := len(w.b)
	end := start + room
	w.b = append(w.b, open)
	// The padding member is `"p":"` + pad + `"` + close (or `"` + pad + `"` + close), with
	// whitespace before it: keep room for it.
	const reserve = 16
	fill := start + 1 + w.g.r.IntN(max(1, room-reserve))
	for len(w.b) < fill {
		mark := len(w.b)
		w.ws()
		if open == '{' {
			w.key()
			w.ws()
			w.b = append(w.b, ':')
			w.ws()
		}
		w.value(0)
		w.ws()
		w.b = append(w.b, ',')
		if len(w.b) > end-reserve {
			w.b = w.b[:mark] // too far: undo the member
			break
		}
	}
	w.ws()
	if len(w.b)+len(`"p":""`)+1 > end {
		w.b = w.b[:start+1]
	}
	if open == '{' {
		w.b = append(w.b, `"p":`...)
	}
	w.b = append(w.b, '"')
	w.pad(end - len(w.b) - 2)
	w.b = append(w.b, '"', close)
}

// pad writes a string's content of exactly n bytes, with no escape needed; with badUTF8 one of
// its bytes is not UTF-8.
func (w *jsonWriter) pad(n int) {
	start := len(w.b)
	for len(w.b) < start+n {
		left := start + n - len(w.b)
		r := rune('a' + w.g.r.IntN(26))
		if w.g.r.IntN(4) == 0 {
			r = textRunes[w.g.r.IntN(len(textRunes))]
		}
		if r < 0x20 || r == '"' || r == '\\' || utf8.RuneLen(r) > left {
			r = '.'
		}
		w.b = utf8.AppendRune(w.b, r)
	}
	if w.badUTF8 && n > 0 {
		w.b[start+w.g.r.IntN(n)] = 0xff
	}
}

// key writes an object member's name: never "k", which the websocket path reads the key from.
func (w *jsonWriter) key() {
	names := []string{`f`, `field`, `n`, `é`, `\u00e9\n`, `with space`, ``, `\ud83d\ude00`, `a.b`}
	w.b = append(w.b, '"')
	w.b = append(w.b, names[w.g.r.IntN(len(names))]...)
	w.b = strconv.AppendInt(w.b, int64(w.g.r.IntN(1000)), 10)
	w.b = append(w.b, '"')
}

// value writes a small random JSON value.
func (w *jsonWriter) value(depth int) {
	switch n := w.g.r.IntN(14); {
	case n == 0:
		w.b = strconv.AppendInt(w.b, w.g.r.Int64N(1<<53)-(1<<52), 10) // exact as a float64 too
	case n == 1:
		w.b = append(w.b, []string{"0", "-0", "1.5", "-0.25e-3", "1E+2", "6.02214076e23", "123456789012345678901234567890", "9223372036854775808", "-9223372036854775809", "0.1"}[w.g.r.IntN(10)]...)
	case n == 2:
		w.b = append(w.b, []string{"true", "false", "null"}[w.g.r.IntN(3)]...)
	case n <= 7:
		w.str()
	case n <= 10 && depth < 3:
		w.b = append(w.b, '[')
		for i := range w.g.r.IntN(4) {
			if i > 0 {
				w.ws()
				w.b = append(w.b, ',')
			}
			w.ws()
			w.value(depth + 1)
		}
		w.ws()
		w.b = append(w.b, ']')
	case depth < 3:
		w.b = append(w.b, '{')
		for i := range w.g.r.IntN(4) {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.ws()
			w.key()
			w.ws()
			w.b = append(w.b, ':')
			w.ws()
			w.value(depth + 1)
			w.ws()
		}
		w.b = append(w.b, '}')
	default:
		w.b = append(w.b, `""`...)
	}
}

// str writes a short string with escapes of every kind, raw Unicode, and now and then a lone
// surrogate escape (valid JSON, which decodes to U+FFFD).
func (w *jsonWriter) str() {
	parts := []string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u0000`, `\u00e9`, `\u2028`, `\ud83d\ude00`, "\u2028", "\u3000", "日本", "é", " ", "x", "abc", `\uDC00`}
	w.b = append(w.b, '"')
	for range w.g.r.IntN(6) {
		w.b = append(w.b, parts[w.g.r.IntN(len(parts))]...)
	}
	w.b = append(w.b, '"')
}

// scalar writes a JSON scalar of exactly size bytes (1 to 11), with spaces around it when spaced.
func (w *jsonWriter) scalar(size int) {
	core := size
	lead, trail := 0, 0
	if w.spaced && size >= 3 {
		lead = w.g.r.IntN(2)
		trail = w.g.r.IntN(2)
		core = size - lead - trail
	}
	w.b = append(w.b, bytes.Repeat([]byte{' '}, lead)...)
	switch {
	case core == 4 && w.g.r.IntN(3) == 0:
		w.b = append(w.b, []string{"true", "null"}[w.g.r.IntN(2)]...)
	case core == 5 && w.g.r.IntN(3) == 0:
		w.b = append(w.b, "false"...)
	case core >= 2 && w.g.r.IntN(2) == 0:
		w.b = append(w.b, '"')
		w.pad(core - 2)
		w.b = append(w.b, '"')
	default: // a number of core digits, negative sometimes
		if core >= 2 && w.g.r.IntN(3) == 0 {
			w.b = append(w.b, '-')
			core--
		}
		w.b = append(w.b, byte('1'+w.g.r.IntN(9)))
		if core == 1 && w.g.r.IntN(2) == 0 {
			w.b[len(w.b)-1] = '0'
		}
		for range core - 1 {
			w.b = append(w.b, byte('0'+w.g.r.IntN(10)))
		}
	}
	w.b = append(w.b, bytes.Repeat([]byte{' '}, trail)...)
}

// word is a short name: ASCII letters, digits and '-', with Unicode letters when uni.
func (g gen) word(uni bool) string {
	const ascii = "abcdefghijklmnopqrstuvwxyz0123456789-"
	var b []byte
	b = append(b, byte('a'+g.r.IntN(26)))
	for range g.r.IntN(10) {
		if uni && g.r.IntN(6) == 0 {
			b = utf8.AppendRune(b, []rune{'é', 'ü', '日', 'ß', 0x1f600}[g.r.IntN(5)])
		} else {
			b = append(b, ascii[g.r.IntN(len(ascii))])
		}
	}
	return string(b)
}

// anyText is a short string of any valid UTF-8, spaces and controls included.
func (g gen) anyText(max int) string {
	return string(g.text(nil, g.r.IntN(max+1), false))
}

// headerValue is a value that survives a text protocol's header line: printable UTF-8, no
// space at either end (HTTP and NATS trim it), not empty, and none of the runes that MQTT
// forbids in its strings (controls, non-characters), which Mosquitto refuses.
func (g gen) headerValue() string {
	for {
		b := g.text(nil, 1+g.r.IntN(24), true)
		ok := true
		for _, r := range string(b) {
			ok = ok && mqttString(r)
		}
		s := string(bytes.TrimFunc(b, unicode.IsSpace))
		if ok && s != "" && s == string(b) {
			return s
		}
	}
}

// mqttString says that r may be in an MQTT string (a topic, a user property): not a control
// (C0, DEL, C1), not a non-character.
func mqttString(r rune) bool {
	return r >= 0x20 && !(r >= 0x7f && r <= 0x9f) && !(r >= 0xfdd0 && r <= 0xfdef) && r&0xfffe != 0xfffe
}

// jsonString is s as a JSON string.
func jsonString(s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return b
}
