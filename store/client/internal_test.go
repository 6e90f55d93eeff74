package client

import (
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
)

func TestLeaderCacheIsBounded(t *testing.T) {
	l := newLeaders(3)
	for i := range 5 {
		l.put(fmt.Sprintf("ns%d", i), fmt.Sprintf("s%d:1", i))
	}
	if l.len() != 3 {
		t.Fatalf("%d leaders kept, want 3", l.len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := l.get(fmt.Sprintf("ns%d", i)); ok != want {
			t.Errorf("ns%d kept = %v, want %v", i, ok, want)
		}
	}
	// Using ns2 keeps it over ns3 when ns5 comes.
	l.get("ns2")
	l.put("ns5", "s5:1")
	if _, ok := l.get("ns3"); ok {
		t.Error("the least recently used leader was kept")
	}
	if _, ok := l.get("ns2"); !ok {
		t.Error("a recently used leader was dropped")
	}
	if l.put("ns2", "s2:1") || !l.put("ns2", "s9:1") {
		t.Error("put reports changes wrongly")
	}
	l.drop("ns2", "s2:1") // not its leader any more
	if a, _ := l.get("ns2"); a != "s9:1" {
		t.Errorf("drop of a leader the client no longer had removed the new one")
	}
	l.drop("ns2", "s9:1")
	if _, ok := l.get("ns2"); ok {
		t.Error("drop kept the leader")
	}
	off := newLeaders(0)
	off.put("a", "b:1")
	if _, ok := off.get("a"); ok {
		t.Error("a cache of size 0 kept a leader")
	}
}

func TestPoolTakesEndpointsInTurn(t *testing.T) {
	p := newPool([]string{"a:1", "b:1", "c:1"})
	seen := map[string]int{}
	for range 30 {
		seen[p.any(nil).addr]++
	}
	for _, a := range []string{"a:1", "b:1", "c:1"} {
		if seen[a] != 10 {
			t.Errorf("endpoints picked %v, want each 10 times", seen)
		}
	}
	a, b, c := p.byAddr["a:1"], p.byAddr["b:1"], p.byAddr["c:1"]
	a.markDown(3 * time.Minute)
	for range 10 {
		if s := p.any(b); s != c {
			t.Fatalf("any(avoid b) with a down = %s, want c", s.addr)
		}
	}
	b.markDown(time.Minute)
	c.markDown(2 * time.Minute)
	if s := p.any(nil); s != b {
		t.Errorf("all down: any = %s, want b, whose mark ends first", s.addr)
	}
	if p.anyUp(nil) {
		t.Error("anyUp with every endpoint down")
	}
	b.markUp()
	if !p.anyUp(a) || p.anyUp(b) {
		t.Error("anyUp wrong with only b up")
	}
	for range maxStores {
		p.get(fmt.Sprintf("learned-%d:1", len(p.byAddr)))
	}
	if p.get("one-more:1") != nil || len(p.byAddr) != maxStores {
		t.Errorf("the pool grew to %d stores, past %d", len(p.byAddr), maxStores)
	}
}

func TestValidAddr(t *testing.T) {
	for _, tc := range []struct {
		a  string
		ok bool
	}{
		{"127.0.0.1:20160", true},
		{"store-1.rdb.svc:20160", true},
		{"[::1]:20160", true},
		{"localhost:1", true},
		{"localhost:65535", true},
		{"localhost:65536", false},
		{"localhost:0", false},
		{"localhost:01", false},
		{"localhost", false},
		{":20160", false},
		{"a b:1", false},
		{"a/b:1", false},
		{"dns:///a:1", false},
		{"", false},
	} {
		if got := validAddr(tc.a); got != tc.ok {
			t.Errorf("validAddr(%q) = %v, want %v", tc.a, got, tc.ok)
		}
	}
}

// FuzzLeaderHeader: the leader a store names comes from the network. The
// client takes only a host:port from it, and never panics.
func FuzzLeaderHeader(f *testing.F) {
	for _, s := range []string{"127.0.0.1:20160", "[::1]:1", "host:65535", "", ":", "a:b", "[::1", "x:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		addr, ok := leaderOf(metadata.MD{}, metadata.Pairs(leaderKey, v))
		if !ok {
			return
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" || addr != v {
			t.Fatalf("leaderOf(%q) = %q: not a host:port", v, addr)
		}
	})
}
