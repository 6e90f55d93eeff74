package client

// The stores a client talks to: one shared gRPC connection per store
// address, made on first use; the endpoints it was given, taken in turn;
// marks on stores that could not be reached; and the leaders it has
// learned, per namespace.

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
)

// leaderKey is the response metadata (header or trailer) in which a store
// names the leader of the namespace of a strong call: its advertised
// address, host:port.
const leaderKey = "rdb-leader"

// maxStores bounds the connections a client keeps: the endpoints and the
// leader addresses it learns (a cluster has far fewer stores).
const maxStores = 1024

// stubs are the services of one store's connection.
type stubs struct {
	conn  *grpc.ClientConn
	cas   kvrpc.KvCasClient
	raw   kvrpc.KvRawClient
	modes raftpb.RaftServiceClient
}

// store is one store address.
type store struct {
	addr      string
	downUntil atomic.Int64 // unix nanoseconds; passed over until then

	st     atomic.Pointer[stubs]
	mu     sync.Mutex // making or closing the connection
	closed bool
}

// stubs returns the store's services, connecting on first use.
func (s *store) stubs(dial []grpc.DialOption) (*stubs, error) {
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, closedStatus
	}
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	conn, err := grpc.NewClient(s.addr, dial...)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", s.addr, err)
	}
	st := &stubs{conn: conn, cas: kvrpc.NewKvCasClient(conn), raw: kvrpc.NewKvRawClient(conn), modes: raftpb.NewRaftServiceClient(conn)}
	s.st.Store(st)
	return st, nil
}

func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if st := s.st.Load(); st != nil {
		return st.conn.Close()
	}
	return nil
}

// ready waits, at most timeout, for conn to be ready to send. It reports
// false when the store cannot be reached now: its connection failed, or
// none was made in time. Nothing was sent then.
func ready(ctx context.Context, conn *grpc.ClientConn, timeout time.Duration) bool {
	state := conn.GetState()
	if state == connectivity.Ready {
		return true
	}
	conn.Connect()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		switch state {
		case connectivity.Ready:
			return true
		case connectivity.TransientFailure, connectivity.Shutdown:
			return false
		}
		if !conn.WaitForStateChange(wctx, state) {
			return false
		}
		state = conn.GetState()
	}
}

func (s *store) down(now time.Time) bool { return now.UnixNano() < s.downUntil.Load() }

func (s *store) markDown(d time.Duration) { s.downUntil.Store(time.Now().Add(d).UnixNano()) }

func (s *store) markUp() {
	if s.downUntil.Load() != 0 {
		s.downUntil.Store(0)
	}
}

// pool holds every store the client knows.
type pool struct {
	mu     sync.RWMutex
	byAddr map[string]*store
	closed bool
	// endpoints are the stores the client was given, taken in turn for
	// calls any store can serve.
	endpoints []*store
	next      atomic.Uint64
}

func newPool(endpoints []string) *pool {
	p := &pool{byAddr: map[string]*store{}}
	for _, addr := range endpoints {
		if _, ok := p.byAddr[addr]; ok {
			continue
		}
		s := &store{addr: addr}
		p.byAddr[addr] = s
		p.endpoints = append(p.endpoints, s)
	}
	// Clients that start together do not all begin with the first store.
	p.next.Store(rand.Uint64())
	return p
}

// get returns the store at addr, adding it if the pool has room (nil if
// not, or once closed).
func (p *pool) get(addr string) *store {
	p.mu.RLock()
	s, ok := p.byAddr[addr]
	p.mu.RUnlock()
	if ok {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.byAddr[addr]; ok {
		return s
	}
	if p.closed || len(p.byAddr) >= maxStores {
		return nil
	}
	s = &store{addr: addr}
	p.byAddr[addr] = s
	return s
}

// any picks an endpoint for a call any store can serve: the next in turn
// that is not marked down, other than avoid (the store that just failed
// the call). If every endpoint is down, the one whose mark ends first.
func (p *pool) any(avoid *store) *store {
	n := uint64(len(p.endpoints))
	start := p.next.Add(1)
	now := time.Now()
	var soonest *store
	for i := range n {
		s := p.endpoints[(start+i)%n]
		if s == avoid && n > 1 {
			continue
		}
		if !s.down(now) {
			return s
		}
		if soonest == nil || s.downUntil.Load() < soonest.downUntil.Load() {
			soonest = s
		}
	}
	if soonest == nil {
		return avoid
	}
	return soonest
}

// anyUp reports whether an endpoint other than avoid is not marked down.
func (p *pool) anyUp(avoid *store) bool {
	now := time.Now()
	for _, s := range p.endpoints {
		if s != avoid && !s.down(now) {
			return true
		}
	}
	return false
}

func (p *pool) close() error {
	p.mu.Lock()
	p.closed = true
	stores := make([]*store, 0, len(p.byAddr))
	for _, s := range p.byAddr {
		stores = append(stores, s)
	}
	p.mu.Unlock()
	var first error
	for _, s := range stores {
		if err := s.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// leaders remembers the leader's address of the namespaces used most
// recently, at most max of them.
type leaders struct {
	mu  sync.Mutex
	max int
	ll  *list.List // of *leaderEntry, most recently used first
	m   map[string]*list.Element
}

type leaderEntry struct{ ns, addr string }

func newLeaders(max int) *leaders {
	return &leaders{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

func (l *leaders) get(ns string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[ns]
	if !ok {
		return "", false
	}
	l.ll.MoveToFront(e)
	return e.Value.(*leaderEntry).addr, true
}

// put records addr as ns's leader; it reports whether that changed what
// the client knew.
func (l *leaders) put(ns, addr string) bool {
	if l.max <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m[ns]; ok {
		l.ll.MoveToFront(e)
		le := e.Value.(*leaderEntry)
		changed := le.addr != addr
		le.addr = addr
		return changed
	}
	l.m[ns] = l.ll.PushFront(&leaderEntry{ns: ns, addr: addr})
	for l.ll.Len() > l.max {
		old := l.ll.Back()
		l.ll.Remove(old)
		delete(l.m, old.Value.(*leaderEntry).ns)
	}
	return true
}

// drop forgets ns's leader if it is addr.
func (l *leaders) drop(ns, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m[ns]; ok && e.Value.(*leaderEntry).addr == addr {
		l.ll.Remove(e)
		delete(l.m, ns)
	}
}

func (l *leaders) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ll.Len()
}

// leaderOf reads the leader a store named in a response's header or
// trailer: a host:port, or nothing if the value is not one.
func leaderOf(mds ...metadata.MD) (string, bool) {
	for _, md := range mds {
		if v := md.Get(leaderKey); len(v) > 0 {
			if validAddr(v[0]) {
				return v[0], true
			}
			return "", false
		}
	}
	return "", false
}

// SplitEndpoints parses a comma-separated list of store addresses, as the
// command lines take them ("10.0.0.1:20160,10.0.0.2:20160"), with the
// rules of New: host:port each, blanks around them and empty items
// dropped, at least one.
func SplitEndpoints(list string) ([]string, error) {
	return checkEndpoints(strings.Split(list, ","))
}

// checkEndpoints returns the endpoints New was given, trimmed, without the
// empty ones; an error if one is not host:port or none is left.
func checkEndpoints(endpoints []string) ([]string, error) {
	var addrs []string
	for _, ep := range endpoints {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			continue
		}
		if !validAddr(ep) {
			return nil, fmt.Errorf("store endpoint %q: want host:port", ep)
		}
		addrs = append(addrs, ep)
	}
	if len(addrs) == 0 {
		return nil, errors.New("no store endpoint given: want at least one host:port")
	}
	return addrs, nil
}

// validAddr reports whether a is a host:port the client may connect to:
// a host name or IP address and a port from 1 to 65535.
func validAddr(a string) bool {
	if len(a) > 300 {
		return false
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return false
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || strconv.FormatUint(n, 10) != port {
		return false
	}
	if net.ParseIP(host) != nil {
		return true
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return true
}
