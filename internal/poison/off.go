//go:build !poison

package poison

import "github.com/valyala/fastjson"

// Enabled says that this build poisons reused buffers.
const Enabled = false

func parseGarbage(*fastjson.Parser, []byte) {}
