package worker

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1", "loopback"},
		{"127.8.9.10", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"fd00::1", "private"},
		{"169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"0.1.2.3", "this-network"},
		{"100.64.0.1", "shared (carrier-grade NAT)"},
		{"192.0.2.1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"64:ff9b::a00:1", "NAT64"},
		{"2002:a00:1::1", "6to4"},
		{"2001:db8::1", "documentation"},
		{"fec0::1", "site-local"},
		{"8.8.8.8", ""},
		{"172.32.0.1", ""},
		{"93.184.215.14", ""},
		{"2606:4700:4700::1111", ""},
	} {
		if got := classify(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("classify(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestAddressPolicyAllow(t *testing.T) {
	p := AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.20.0.0/16")}}
	for _, tc := range []struct {
		addr    string
		refused bool
	}{
		{"127.0.0.1:80", false},
		{"[::ffff:127.0.0.1]:80", false},
		{"10.20.3.4:443", false},
		{"10.21.3.4:443", true},
		{"[::1]:80", true},
		{"169.254.169.254:80", true},
		{"1.1.1.1:443", false},
	} {
		err := p.Check(netip.MustParseAddrPort(tc.addr))
		var re *RefusedError
		if got := errors.As(err, &re); got != tc.refused {
			t.Errorf("Check(%s) = %v, want refused=%v", tc.addr, err, tc.refused)
		}
	}
}

// TestDialerChecksResolvedAddress dials a live local listener by name: the
// default policy refuses it on the address "localhost" resolves to, before
// any connection is made; the allow-list admits it.
func TestDialerChecksResolvedAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	for _, target := range []string{"localhost:" + port, ln.Addr().String()} {
		conn, err := AddressPolicy{}.DialContext(ctx, "tcp", target)
		if err == nil {
			conn.Close()
			t.Fatalf("dialing %s with the default policy succeeded", target)
		}
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != "loopback" {
			t.Fatalf("dialing %s: %v, want a loopback refusal", target, err)
		}
	}
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Fatal("a refused dial reached the listener")
	}

	conn, err := AddressPolicy{Allow: loopback}.DialContext(ctx, "tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("dialing with 127.0.0.0/8 allowed: %v", err)
	}
	conn.Close()
}
