package cluster

// SinkLease returns the lease of the sink called name, which says the one node that delivers
// it: the key "sinks." + EscapeName(name) in the lease bucket, beside the sources' (whose keys,
// escaped, hold no '.'), held, renewed and taken over as a source's lease is. It does no I/O.
func (c *Conn) SinkLease(name string) *Lease {
	l := c.Lease(name)
	l.source = "sink " + name
	l.key = "sinks." + EscapeName(name)
	return l
}
