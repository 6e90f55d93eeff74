// Package testport picks loopback ports for servers that tests start,
// stop and start again on the same address.
//
// A port picked by listening on port 0 comes from the kernel's ephemeral
// range, the range it also takes the local port of every outgoing
// connection from. Between the moment a test picks it and the moment its
// server binds it, or while the server is down between two starts, a
// connection (another server dialing a peer, a client) can take it, for as
// long as that connection lives: the server then cannot start ("address
// already in use"). Ports below the ephemeral range are never given to
// connections. A port is handed out once per process, and is reserved for
// the process's life by a lock on a file named for it (lock_unix.go), so
// that test processes running side by side (go test runs packages in
// parallel) do not pick the same port between one's pick and its bind.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port picked: above the well-known and the commonly
// registered ports.
const lowest = 10000

// Free returns a loopback address whose port could be bound a moment ago
// and lies below the ephemeral range.
func Free() (string, error) {
	below := ephemeralStart()
	for range 100 {
		if below <= lowest {
			break
		}
		port := lowest + rand.IntN(below-lowest)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if !reserve(port) {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		return addr, l.Close()
	}
	// No room below the range (an unusual configuration): any port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("testport: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// ephemeralStart is the first port of the kernel's ephemeral range (Linux;
// elsewhere, IANA's 49152).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 49152
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 49152
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n <= 0 {
		return 49152
	}
	return n
}

var (
	mu sync.Mutex
	// given are the ports this process handed out (or found reserved by
	// another process).
	given = map[int]bool{}
)

// reserve reports whether port is this process's to hand out: not handed
// out before, and not reserved by another process running now.
func reserve(port int) bool {
	mu.Lock()
	defer mu.Unlock()
	if given[port] {
		return false
	}
	given[port] = true
	return lock(port)
}
