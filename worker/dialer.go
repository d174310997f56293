package worker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// RefusedError is the error of a connection the safe dialer refused: the
// address it resolved to is not a public one and no allowed network holds it.
type RefusedError struct {
	// Addr is the resolved address the connection would have gone to.
	Addr netip.AddrPort
	// Reason names the kind of address, e.g. "loopback".
	Reason string
}

// Error implements error.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused to connect to %s: %s address", e.Addr, e.Reason)
}

// refusedRanges are the special-purpose networks (RFC 6890 and its updates)
// that are not loopback, private, link-local or multicast by netip's own
// predicates but still are not the public internet.
var refusedRanges = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignment"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("5f00::/16"), "segment routing"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

// classify returns why addr is refused, or "" when it is a public unicast address.
func classify(addr netip.Addr) string {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid():
		return "invalid"
	case addr.IsUnspecified():
		return "unspecified"
	case addr.IsLoopback():
		return "loopback"
	case addr.IsPrivate():
		return "private"
	case addr.IsLinkLocalUnicast():
		return "link-local"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		return "multicast"
	case addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, r := range refusedRanges {
		if r.prefix.Contains(addr) {
			return r.reason
		}
	}
	return ""
}

// AddressPolicy decides which resolved addresses outgoing connections may go
// to: public unicast addresses, plus the Allow networks.
type AddressPolicy struct {
	// Allow lists networks admitted despite the refusal rules (e.g. a
	// company network the scripts must reach, or 127.0.0.0/8 in tests).
	Allow []netip.Prefix
}

// Check returns a *RefusedError when the policy refuses addr.
func (p AddressPolicy) Check(addr netip.AddrPort) error {
	ip := addr.Addr().Unmap()
	for _, n := range p.Allow {
		if n.Contains(ip) {
			return nil
		}
	}
	if reason := classify(ip); reason != "" {
		return &RefusedError{Addr: netip.AddrPortFrom(ip, addr.Port()), Reason: reason}
	}
	return nil
}

// control is a net.Dialer Control function: it runs on the resolved address
// after the socket is made and before it connects, so a name that resolves
// (or re-resolves) to a refused address cannot slip past the check.
func (p AddressPolicy) control(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("refused to connect to %s: network %q not allowed", address, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to connect to %s: parsing address: %w", address, err)
	}
	return p.Check(ap)
}

// Dialer returns a dialer whose every connection is checked by the policy.
func (p AddressPolicy) Dialer() *net.Dialer {
	return &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control:   p.control,
	}
}

// DialContext dials through a checked dialer; it has the signature of
// http.Transport.DialContext.
func (p AddressPolicy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return p.Dialer().DialContext(ctx, network, address)
}
