package meta

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/modetable"
	"github.com/rdb-project/rdb/store/raftstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type nopTransport struct{}

func (nopTransport) Send(uint64, []*storepb.RaftMessage)           {}
func (nopTransport) SendSnapshot(uint64, uint64, *eraftpb.Message) {}

// single is a one-store static cluster without gRPC: the meta group and
// its Raft engine over one DB.
type single struct {
	db    *pebble.DB
	table *modetable.Table
	meta  *Meta
	raft  *raftstore.RaftStore
}

func openSingle(t *testing.T, fs vfs.FS) *single {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	s := &single{db: db, table: modetable.New()}
	if s.meta, err = New(Config{StoreID: 1, AdvertiseAddr: "127.0.0.1:1", DB: db, Table: s.table,
		GroupState: func(uint64) *storepb.GroupState { return nil }}); err != nil {
		t.Fatal(err)
	}
	s.raft, err = raftstore.Open(raftstore.Config{
		StoreID: 1, DB: db, Transport: nopTransport{}, TickInterval: 10 * time.Millisecond,
		NewStateMachine: func(uint64) (raftstore.StateMachine, error) { return s.meta.StateMachine(), nil },
		OnFatal:         func(err error) { t.Errorf("fatal: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	s.meta.SetRaft(s.raft)
	return s
}

func (s *single) close() {
	s.raft.Stop()
	_ = s.db.Close()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestCaughtUpAfterReapplying: a store that restarts with its meta log
// committed past what it had applied (the apply batch was lost) is not
// caught up, and takes no raw writes, until it has applied the log again.
func TestCaughtUpAfterReapplying(t *testing.T) {
	fs := vfs.NewMem()
	s := openSingle(t, fs)
	s.raft.Start()
	if err := s.raft.CreateGroup(ctxT(t), keys.MetaGroupID, []uint64{1}, nil, true); err != nil {
		t.Fatal(err)
	}
	for i, mode := range []string{"eventual", "strong", "eventual"} {
		if _, _, err := s.meta.SetMode(ctxT(t), "logs", mode, false); err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
	}
	st, _ := s.raft.Status(keys.MetaGroupID)
	s.close()

	// Lose the last two applies: the applied index goes back, the log and
	// its commit index stay.
	db, err := pebble.Open("", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	b, closer, err := db.Get(keys.Applied(keys.MetaGroupID))
	if err != nil {
		t.Fatal(err)
	}
	applied := append([]byte(nil), b...)
	_ = closer.Close()
	binary.BigEndian.PutUint64(applied, st.Applied-2)
	if err := db.Set(keys.Applied(keys.MetaGroupID), applied, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	s = openSingle(t, fs)
	defer s.close()
	if s.meta.CaughtUp() {
		t.Fatal("caught up before re-applying the committed log")
	}
	s.raft.Start()
	deadline := time.Now().Add(10 * time.Second)
	for !s.meta.CaughtUp() {
		if time.Now().After(deadline) {
			t.Fatal("not caught up after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r, _ := s.table.Get("logs"); r.GetMode() != "eventual" || r.GetEpoch() != 3 {
		t.Fatalf("after catching up logs is %v", r)
	}
}

// TestRowRuleAndGroups: rows follow namespace.Next; a namespace that turns
// strong gets a group id once, kept across switches; bad input is refused
// without changing anything.
func TestRowRuleAndGroups(t *testing.T) {
	s := openSingle(t, vfs.NewMem())
	defer s.close()
	s.raft.Start()
	if err := s.raft.CreateGroup(ctxT(t), keys.MetaGroupID, []uint64{1}, nil, true); err != nil {
		t.Fatal(err)
	}
	rec, changed, err := s.meta.SetMode(ctxT(t), "a", "strong", false)
	if err != nil || !changed || rec.GetGroupId() != firstGroupID || rec.GetEpoch() != 1 {
		t.Fatalf("create a strong: %v %v %v", rec, changed, err)
	}
	rec, changed, err = s.meta.SetMode(ctxT(t), "a", "eventual", false)
	if err != nil || !changed || rec.GetGroupId() != firstGroupID || rec.GetEpoch() != 2 {
		t.Fatalf("a to eventual: %v %v %v", rec, changed, err)
	}
	if _, changed, err = s.meta.SetMode(ctxT(t), "a", "eventual", false); err != nil || changed {
		t.Fatalf("same mode again: changed %v, %v", changed, err)
	}
	rec, _, err = s.meta.SetMode(ctxT(t), "b", "strong", false)
	if err != nil || rec.GetGroupId() != firstGroupID+1 {
		t.Fatalf("b: %v %v", rec, err)
	}
	for _, bad := range [][2]string{{"B", "strong"}, {"c", "weak"}} {
		if _, _, err := s.meta.SetMode(ctxT(t), bad[0], bad[1], false); err == nil {
			t.Fatalf("SetMode(%q, %q) accepted", bad[0], bad[1])
		}
	}
	if _, ok := s.table.Get("c"); ok {
		t.Fatal("a refused row reached the table")
	}
	// Ensure of an existing namespace keeps it; of a new one creates it
	// strong from the default.
	if rec, err := s.meta.Ensure(ctxT(t), "a"); err != nil || rec.GetMode() != "eventual" {
		t.Fatalf("Ensure(a) = %v, %v", rec, err)
	}
	if rec, err := s.meta.Ensure(ctxT(t), "new"); err != nil || rec.GetMode() != "strong" || !rec.GetFromDefault() {
		t.Fatalf("Ensure(new) = %v, %v", rec, err)
	}
}

// FuzzApply: any command bytes in the meta log either apply (bad input is
// answered to the proposer) or return an error; nothing panics, and no row
// the table takes breaks the name rule.
func FuzzApply(f *testing.F) {
	for _, c := range []*storepb.MetaCommand{
		{Cmd: &storepb.MetaCommand_SetMode{SetMode: &storepb.SetMode{Name: "logs", Mode: "eventual"}}},
		{Cmd: &storepb.MetaCommand_CreateNamespace{CreateNamespace: &storepb.NamespaceRecord{Name: "x", Mode: "strong", FromDefault: true}}},
		{Cmd: &storepb.MetaCommand_SetStoreAddr{SetStoreAddr: &storepb.StoreInfo{Id: 1, Addr: "127.0.0.1:1"}}},
	} {
		b, _ := proto.Marshal(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, cmd []byte) {
		db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		table := modetable.New()
		m, err := New(Config{StoreID: 1, DB: db, Table: table})
		if err != nil {
			t.Fatal(err)
		}
		b := db.NewIndexedBatch()
		defer b.Close()
		ac := raftstore.NewApplyContext(b)
		_, err = m.StateMachine().Apply(ac, 7, cmd)
		if err == nil {
			err = b.Commit(pebble.NoSync)
		}
		ac.Done(err == nil)
		for _, r := range table.List() {
			if !api.ValidNamespaceName(r.GetName()) {
				t.Fatalf("the table took a row named %q", r.GetName())
			}
		}
	})
}
