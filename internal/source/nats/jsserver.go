package nats

import (
	"strconv"
	"strings"
	"time"
)

// staleAfter is, for a server that loses what is given back while a pull request of a reader
// that has gone waits (serverLosesGiveBack), how often the server hears from the source's pull
// requests (their idle heartbeat), and so how soon after the source stopped reading the server
// has forgotten them; end waits for that before giving messages back.
const staleAfter = time.Second

// serverLosesGiveBack reports whether the nats-server of version v (ConnectedServerVersion)
// mishandles what a consumer is given back while a pull request of a reader that has gone is
// still waiting: before 2.10.15, such a redelivery is dropped until ack_wait, and the last new
// message delivered again (nats-server#5305, #5338). An unknown version counts as one that does.
func serverLosesGiveBack(v string) bool {
	var n [3]int
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) != 3 {
		return true
	}
	for i, p := range parts {
		p, _, _ = strings.Cut(p, "-") // 2.11.0-beta.1
		x, err := strconv.Atoi(p)
		if err != nil {
			return true
		}
		n[i] = x
	}
	switch {
	case n[0] != 2:
		return n[0] < 2
	case n[1] != 10:
		return n[1] < 10
	}
	return n[2] < 15
}
