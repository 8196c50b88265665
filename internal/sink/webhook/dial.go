package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// ErrPrivate is what connecting to an address that a webhook may not reach returns: loopback,
// private, link-local (169.254.169.254, the cloud metadata service), unspecified, multicast,
// shared (100.64/10) or another reserved range, unless the operator allowed private addresses.
var ErrPrivate = errors.New("webhook: the address is not public")

// forbidden reports whether a webhook may not connect to addr.
func forbidden(addr netip.Addr) bool {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid(), addr.IsLoopback(), addr.IsPrivate(), addr.IsLinkLocalUnicast(),
		addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast(), addr.IsMulticast(),
		addr.IsUnspecified():
		return true
	}
	for _, p := range reserved {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// reserved are the ranges, besides those netip names, that no public service answers on.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// dialer returns the DialContext of a webhook's transport. Unless allowPrivate, it refuses an
// address a webhook may not reach, checked on the address it is about to connect to, after
// the name was resolved: a name that resolves to a private address is refused, and one that
// resolves to a public address once and a private one the next time (DNS rebinding) is
// checked each time.
func dialer(timeout time.Duration, allowPrivate bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("webhook: %s: %w", address, err)
			}
			if forbidden(ap.Addr()) {
				return fmt.Errorf("%w: %s (set limits.webhook_allow_private to allow it)", ErrPrivate, ap.Addr())
			}
			return nil
		}
	}
	return d.DialContext
}
