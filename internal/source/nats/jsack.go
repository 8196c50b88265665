package nats

import (
	"strconv"
	"strings"
)

// ackPrefix begins the reply subject of every message a JetStream consumer delivers: the
// subject its acknowledgement goes to, which carries the message's place.
const ackPrefix = "$JS.ACK."

// parseAck reads from a delivered message's reply subject how many times the consumer has
// delivered it and its stream sequence, as nats.go's jetstream.Msg.Metadata does, without the
// rest or an allocation: it runs for every message. The subject is
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
//
// from older servers (9 tokens), and from newer ones (11 tokens, or more: a last one is random)
//
//	$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>[.<random>]
//
// ok is false for any other subject, or numbers that are not.
func parseAck(reply string) (delivered, streamSeq uint64, ok bool) {
	rest, found := strings.CutPrefix(reply, ackPrefix)
	if !found {
		return 0, 0, false
	}
	at := 2 // the index of the delivered count among the tokens after $JS.ACK.
	switch n := strings.Count(rest, ".") + 1; {
	case n == 7:
	case n >= 9:
		at = 4
	default:
		return 0, 0, false
	}
	var tok string
	for range at {
		if _, rest, found = strings.Cut(rest, "."); !found {
			return 0, 0, false
		}
	}
	tok, rest, _ = strings.Cut(rest, ".")
	d, err := strconv.ParseUint(tok, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	tok, _, _ = strings.Cut(rest, ".")
	s, err := strconv.ParseUint(tok, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return d, s, true
}
