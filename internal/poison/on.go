//go:build poison

package poison

import (
	"strings"

	"github.com/valyala/fastjson"
)

// Enabled says that this build poisons reused buffers.
const Enabled = true

// spaces is a JSON document of any length up to its own: a 0 and spaces after it, which fastjson
// copies whole and parses without error, so without allocating.
var spaces = "0" + strings.Repeat(" ", 64<<10-1)

// parseGarbage makes p parse a document as long as the copy of doc that it holds. fastjson
// copies what it parses into its own buffer, leading spaces skipped, with append: the copy of a
// document no longer than the one before lands on the same bytes.
func parseGarbage(p *fastjson.Parser, doc []byte) {
	n := len(doc)
	for i := 0; i < len(doc) && isSpace(doc[i]); i++ {
		n-- // fastjson skips what its skipWS skips
	}
	if n == 0 {
		return // p holds nothing of doc
	}
	g := spaces
	if n > len(g) {
		g = "0" + strings.Repeat(" ", n-1)
	}
	_, _ = p.Parse(g[:n])
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }
