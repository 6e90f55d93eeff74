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

// TestFreeHandsOutAPortOnce: a process never gets the same port twice, and
// a port another process reserved is not handed out (a second lock on the
// same file stands for that process: file locks are per open file).
func TestFreeHandsOutAPortOnce(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		addr, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
	}
	port := lowest + 1
	for given[port] {
		port++
	}
	if !lock(port) {
		t.Fatalf("port %d: the first lock failed", port)
	}
	if lock(port) {
		t.Fatalf("port %d: reserved twice", port)
	}
}
