package ingest

import "io"

// readAll reads r to its end, as io.ReadAll does, but into blocks that it joins once at the
// end. A body that arrives slowly, or stalls in the middle, then holds about what it has sent,
// where io.ReadAll's buffer, doubled as it fills, holds up to twice that and leaves as much
// again behind it for the collector. size, when not negative, is the body's announced length:
// a body that announces a small size gets one block of that size, which is the result, with no
// copy; a large announcement is not believed (a client could announce a size and send
// nothing).
func readAll(r io.Reader, size int64) ([]byte, error) {
	const first, most = 64 << 10, 1 << 20
	n := first
	if size >= 0 && size < first {
		n = int(size) + 1 // one byte more, for the read that sees the end
	}
	var blocks [][]byte
	total := 0
	for {
		b := make([]byte, 0, n)
		for len(b) < cap(b) {
			k, err := r.Read(b[len(b):cap(b)])
			b = b[:len(b)+k]
			if err == io.EOF {
				return join(append(blocks, b), total+len(b)), nil
			}
			if err != nil {
				return nil, err
			}
		}
		blocks = append(blocks, b)
		total += len(b)
		n = min(2*n, most)
	}
}

func join(blocks [][]byte, total int) []byte {
	if len(blocks) == 1 {
		return blocks[0]
	}
	out := make([]byte, 0, total)
	for _, b := range blocks {
		out = append(out, b...)
	}
	return out
}
