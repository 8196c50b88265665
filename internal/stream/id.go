package stream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ParseID splits an event id "<source>:<seq>" into its source and sequence number.
// The source is everything before the last colon, so source names may contain colons.
func ParseID(id string) (source string, seq uint64, err error) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return "", 0, errors.New("event id must be <source>:<seq>")
	}
	seq, err = strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("event id %q: sequence is not a number", id)
	}
	return id[:i], seq, nil
}
