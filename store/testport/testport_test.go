package testport

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeIsBelowTheEphemeralRange: the port picked can be bound, and is
// not one the kernel hands to outgoing connections.
func TestFreeIsBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		addr, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if port < lowest || port >= ephemeralStart() {
			t.Fatalf("port %d: want [%d, %d)", port, lowest, ephemeralStart())
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("bind %s: %v", addr, err)
		}
		_ = l.Close()
	}
}
