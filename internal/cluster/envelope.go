package cluster

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/streamux/streamux/internal/stream"
)

// A message is stored in its log as an envelope: the NATS payload holds the key, the
// headers, the ingest time and the body, in this binary layout (version 1):
//
//	magic    4 bytes: 0x00 'S' 'X' 0x01 (the last byte is the version)
//	flags    1 byte:  bit 0 the body is compact JSON (stream.Message.BodyIsJSON),
//	                  bit 1 the time is set
//	time     varint:  unix nanoseconds, when bit 1 is set
//	key      uvarint length, then the bytes
//	headers  uvarint count, then for each, in increasing byte order of its name:
//	         uvarint length, name, uvarint length, value
//	body     the rest of the payload
//
// Nothing of the message goes into the NATS header block, which carries only what the
// servers act on (Nats-Msg-Id, Nats-Expected-Stream, Nats-Expected-Last-Sequence). A
// streamux header is any string to any string: its name may be "Nats-Msg-Id", hold a colon
// or a space, differ from another only in case; its value may hold CR, LF, NUL or invalid
// UTF-8. None of that survives NATS headers (one line per header, names compared without
// regard to case by some clients, values trimmed), and a header a server acts on must not
// be forgeable by a message's contents; the envelope carries them byte for byte. The
// headers are sorted so that one message always makes the same bytes, and every node
// decodes the same sequence into the same message.
//
// A payload that does not begin with the magic was put in the log by something else than
// streamux (a nats pub to the stream's subject): it is decoded as a foreign message, its
// body the whole payload, its key "", its NATS headers (but the Nats-* ones the servers
// set) its headers, several values joined with ", ", and its time the one the log stored.
const (
	envMagic   = "\x00SX\x01"
	flagJSON   = 1 << 0
	flagTime   = 1 << 1
	flagsKnown = flagJSON | flagTime
)

// ErrCorrupt is what decoding a payload that begins with the envelope's magic and breaks
// its layout returns. No message written by streamux is corrupt; the Reader reports one as
// a Skip of its sequence, so that every node gives it the same gap.
var ErrCorrupt = errors.New("cluster: corrupt envelope")

// Entry is one message to append to a log.
type Entry struct {
	// ID de-duplicates: the log stores one message per ID within its duplicate window
	// (Config.DuplicateWindow), and answers a repeat with the first one's sequence. Give an
	// ingest's Idempotency-Key, an envelope's "id", an upstream's own offset; "" has Append
	// give the entry an id of its own, so that resending it after an unanswered publish
	// stores it once.
	ID string
	// Msg is the message: its Key, Headers, Body, BodyIsJSON and Time go into the log;
	// Source and Seq are ignored (the log is the source's, and assigns the sequence).
	Msg *stream.Message
}

// appendEnvelope appends m's envelope to dst.
func appendEnvelope(dst []byte, m *stream.Message) []byte {
	dst = append(dst, envMagic...)
	var flags byte
	if m.BodyIsJSON {
		flags |= flagJSON
	}
	if !m.Time.IsZero() {
		flags |= flagTime
	}
	dst = append(dst, flags)
	if flags&flagTime != 0 {
		dst = binary.AppendVarint(dst, m.Time.UnixNano())
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Key)))
	dst = append(dst, m.Key...)
	dst = binary.AppendUvarint(dst, uint64(len(m.Headers)))
	if len(m.Headers) > 0 {
		names := make([]string, 0, len(m.Headers))
		for k := range m.Headers {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			v := m.Headers[k]
			dst = binary.AppendUvarint(dst, uint64(len(k)))
			dst = append(dst, k...)
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			dst = append(dst, v...)
		}
	}
	return append(dst, m.Body...)
}

// envelopeSize is an upper bound of m's envelope's length.
func envelopeSize(m *stream.Message) int {
	n := len(envMagic) + 1 + binary.MaxVarintLen64 + 2*binary.MaxVarintLen64 + len(m.Key) + len(m.Body)
	for k, v := range m.Headers {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	return n
}

// isEnvelope reports whether payload is an envelope (rather than a foreign message).
func isEnvelope(payload []byte) bool {
	return len(payload) >= len(envMagic) && string(payload[:len(envMagic)]) == envMagic
}

// decodeEnvelope fills m's Key, Headers, Body, BodyIsJSON and Time from an envelope. m.Body
// is a slice of payload, so payload must be the message's own (see stream.Message.Body).
func decodeEnvelope(payload []byte, m *stream.Message) error {
	p := payload[len(envMagic):]
	if len(p) < 1 || p[0]&^flagsKnown != 0 {
		return ErrCorrupt
	}
	flags := p[0]
	p = p[1:]
	if flags&flagTime != 0 {
		ns, n := varint(p)
		if n <= 0 {
			return ErrCorrupt
		}
		p = p[n:]
		m.Time = time.Unix(0, ns).UTC()
	} else {
		m.Time = time.Time{}
	}
	klen, n := uvarint(p)
	if n <= 0 || klen > uint64(len(p)-n) {
		return ErrCorrupt
	}
	p = p[n:]
	m.Key = string(p[:klen])
	p = p[klen:]
	count, n := uvarint(p)
	// Every header takes at least two bytes, so count is bounded by what is left: a forged
	// count cannot make a huge map.
	if n <= 0 || count > uint64(len(p)-n)/2 {
		return ErrCorrupt
	}
	p = p[n:]
	m.Headers = nil
	if count > 0 {
		// One string holds every name and value; the map's strings are slices of it.
		end := 0
		q := p
		for range 2 * count {
			l, n := uvarint(q)
			if n <= 0 || l > uint64(len(q)-n) {
				return ErrCorrupt
			}
			q = q[n+int(l):]
			end = len(p) - len(q)
		}
		all := string(p[:end])
		h := make(map[string]string, count)
		i := 0
		next := func() string {
			l, n := uvarint(p[i:])
			s := all[i+n : i+n+int(l)]
			i += n + int(l)
			return s
		}
		prev := ""
		for j := range count {
			k := next()
			if j > 0 && k <= prev {
				return ErrCorrupt // out of order, or a name twice
			}
			prev = k
			h[k] = next()
		}
		m.Headers = h
		p = p[end:]
	}
	m.Body = p
	m.BodyIsJSON = flags&flagJSON != 0
	return nil
}

// foreignHeaders turns the NATS headers of a foreign message into a message's headers:
// several values of one name joined with ", ", as the nats source does, and the Nats-*
// headers, which the servers set and act on, left out.
func foreignHeaders(h map[string][]string) map[string]string {
	var out map[string]string
	for k, vs := range h {
		if len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(h))
		}
		out[k] = strings.Join(vs, ", ")
	}
	return out
}

// uvarint is binary.Uvarint that takes only the shortest encoding of each number, so that
// one message has one envelope: n <= 0 for anything else.
func uvarint(p []byte) (uint64, int) {
	v, n := binary.Uvarint(p)
	if n > 1 && p[n-1] == 0 {
		return 0, -1 // a last byte of 0 adds nothing: a longer encoding than needed
	}
	return v, n
}

// varint is binary.Varint, shortest encodings only.
func varint(p []byte) (int64, int) {
	ux, n := uvarint(p)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, n
}
