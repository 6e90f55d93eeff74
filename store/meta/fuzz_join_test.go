package meta

// FuzzJoin: the intake of a Join request, any request gRPC decodes, on a
// running one-store cluster. Join never panics and answers within its
// deadline; a request without a store id or an address is answered
// InvalidArgument; a member's id with another address, or another id with
// a member's address, is answered AlreadyExists; a member's own id and
// address is answered with the members (a retried join). None of them
// changes the members.
//
// A join of a new store adds a voter to the meta group, which a store that
// never starts cannot answer: the group loses its quorum. So the one
// accepted join runs before fuzzing (store 2 joins), and fuzzing starts
// once the group has lost its leader for good. From then on no join can
// be accepted: one of a new store is answered Unavailable at once (no
// leader, nothing proposed), and the others never wait for Raft (they read
// the applied members).

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/modetable"
	"github.com/rdb-project/rdb/store/namespace"
	"github.com/rdb-project/rdb/store/raftstore"
)

// quietPebble discards pebble's own logs.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// startMeta starts store 1 of a new static cluster as rdb-server without
// --peer does: Meta.Start bootstraps the meta group (one voter) on pebble
// in a temporary directory, and the seed loop creates the default
// namespace. Cleanup stops everything.
func startMeta(tb testing.TB, addr string) *single {
	tb.Helper()
	db, err := pebble.Open(tb.TempDir(), &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		tb.Fatal(err)
	}
	s := &single{db: db}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		if s.raft != nil {
			s.raft.Stop()
		}
		_ = db.Close()
	})
	s.table = modetable.New()
	if s.meta, err = New(Config{StoreID: 1, AdvertiseAddr: addr, DB: db, Table: s.table, Logger: zap.NewNop(),
		Client: func(id uint64) (storepb.StoreInternalClient, error) {
			return nil, status.Errorf(codes.Unavailable, "store %d: this test has no transport", id)
		},
		GroupState: func(uint64) *storepb.GroupState { return nil }}); err != nil {
		tb.Fatal(err)
	}
	if s.raft, err = raftstore.Open(raftstore.Config{
		StoreID: 1, DB: db, Transport: nopTransport{}, TickInterval: 10 * time.Millisecond,
		NewStateMachine: func(uint64) (raftstore.StateMachine, error) { return s.meta.StateMachine(), nil },
		OnFatal:         func(err error) { tb.Errorf("fatal: %v", err) },
	}); err != nil {
		tb.Fatal(err)
	}
	s.meta.SetRaft(s.raft)
	s.raft.Start()
	if err := s.meta.Start(ctx, &wg); err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := s.table.Get(namespace.Default); ok {
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatal("the default namespace was not seeded after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sameStores(a, b []*storepb.StoreInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func FuzzJoin(f *testing.F) {
	const self, joined = "127.0.0.1:1", "127.0.0.1:2"
	long := strings.Repeat("a", 4096)
	for _, req := range []*storepb.JoinRequest{
		{StoreId: 3, Addr: "127.0.0.1:3"},       // a new store
		{StoreId: 1, Addr: self},                // a member's own join, again
		{StoreId: 2, Addr: joined},              // the joined store's, again
		{StoreId: 1, Addr: "127.0.0.1:9"},       // a member's id, another address
		{StoreId: 2, Addr: self},                // a member's id, another member's address
		{StoreId: 9, Addr: self},                // another id, a member's address
		{StoreId: math.MaxUint64, Addr: joined}, // the same, the largest id
		{StoreId: 0, Addr: "127.0.0.1:5"},       // no id
		{StoreId: 5},                            // no address
		{},                                      // neither
		{StoreId: 1, Addr: long},                // a member's id, a very long address
		{StoreId: 7, Addr: long},                // a new store, a very long address
		{StoreId: 1, Addr: self + "\x00"},       // a member's address and a byte
		{StoreId: 1, Addr: "localhost:1"},       // another spelling of its address
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := startMeta(f, self)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The one accepted join: store 2, which never starts.
	resp, err := s.meta.Join(ctx, &storepb.JoinRequest{StoreId: 2, Addr: joined})
	want := []*storepb.StoreInfo{{Id: 1, Addr: self}, {Id: 2, Addr: joined}}
	if err != nil || !sameStores(resp.GetStores(), want) || resp.GetClusterId() == 0 || resp.GetClusterId() != s.meta.ClusterID() {
		f.Fatalf("join of store 2: %v, %v", resp, err)
	}
	// Store 1 alone cannot keep the lead (check quorum) nor win a vote.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st, ok := s.raft.Status(keys.MetaGroupID)
		if ok && st.Leader == 0 && len(st.Voters) == 2 {
			break
		}
		if time.Now().After(deadline) {
			f.Fatalf("the meta group still has a leader after store 2 joined: %+v", st)
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		req := &storepb.JoinRequest{}
		if proto.Unmarshal(data, req) != nil {
			return // gRPC refuses it before Join sees it
		}
		members := s.meta.Stores()
		var sameID, sameAddr *storepb.StoreInfo
		for _, st := range members {
			if st.GetId() == req.GetStoreId() {
				sameID = st
			}
			if st.GetAddr() == req.GetAddr() {
				sameAddr = st
			}
		}
		invalid := req.GetStoreId() == 0 || req.GetAddr() == ""
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := s.meta.Join(ctx, req)
		switch {
		case invalid:
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("join of store %d at %.64q answered %v, want InvalidArgument", req.GetStoreId(), req.GetAddr(), err)
			}
		case sameID != nil && sameID.GetAddr() == req.GetAddr():
			if err != nil || !sameStores(resp.GetStores(), members) || resp.GetClusterId() != s.meta.ClusterID() || resp.GetClusterId() == 0 {
				t.Fatalf("a member's join again answered %v, %v", resp, err)
			}
		case sameID == nil && sameAddr == nil:
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("join of new store %d at %.64q without a quorum answered %v, %v, want Unavailable", req.GetStoreId(), req.GetAddr(), resp, err)
			}
		default:
			if status.Code(err) != codes.AlreadyExists {
				t.Fatalf("join of store %d at %.64q (members %v) answered %v, want AlreadyExists", req.GetStoreId(), req.GetAddr(), members, err)
			}
		}
		if err != nil && resp != nil {
			t.Fatalf("an error (%v) with an answer", err)
		}
		if now := s.meta.Stores(); !sameStores(now, members) {
			t.Fatalf("join of store %d at %.64q changed the members from %v to %v", req.GetStoreId(), req.GetAddr(), members, now)
		}
	})
}
