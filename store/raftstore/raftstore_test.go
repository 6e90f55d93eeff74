package raftstore

// The engine with real pebble (in memory) and an in-process transport
// between stores whose links can be cut.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/kvread"
)

// TestMain checks every view's cached configuration against raft's: the
// conf changes, snapshots and restarts these tests make would show a
// change that does not mark it stale.
func TestMain(m *testing.M) {
	checkViews = true
	goleak.VerifyTestMain(m)
}

// kvSM is a state machine that stores each command under its index and
// fails on the command "fail".
type kvSM struct {
	group uint64
	mu    sync.Mutex
	n     int // entries applied since open
}

func (s *kvSM) Apply(ac *ApplyContext, index uint64, cmd []byte) (any, error) {
	if string(cmd) == "fail" {
		return nil, errors.New("cannot apply")
	}
	if err := ac.Batch.Set(append(keys.StatePrefix(s.group), fmt.Sprintf("%08d", index)...), cmd, nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return index, nil
}
func (s *kvSM) ApplyConfChange(*ApplyContext, *eraftpb.ConfChange) error { return nil }
func (s *kvSM) Restore(*ApplyContext) error                              { return nil }

// net connects in-process RaftStores.
type net struct {
	mu    sync.Mutex
	rs    map[uint64]*RaftStore
	cut   map[uint64]bool
	snaps sync.WaitGroup
	// tap, if set, sees every message delivered (snapshots with their
	// data), before the receiver does.
	tap func(from, to, group uint64, m *eraftpb.Message)
	// dropQuiesce, if set, drops the quiesce heartbeats to store to for
	// which it returns true.
	dropQuiesce func(to uint64) bool
	// sent, if set, sees every message sent, delivered or not (a real
	// transport queues what a cut-off store gets later).
	sent func(from, to uint64, rm *storepb.RaftMessage)
	// beforeStart, if set, runs between a store's Open and its Start.
	beforeStart func(id uint64)
}

type netEnd struct {
	n    *net
	from uint64
}

func (e netEnd) Send(to uint64, msgs []*storepb.RaftMessage) {
	e.n.mu.Lock()
	dst, down, tap, dropQ, sent := e.n.rs[to], e.n.cut[to] || e.n.cut[e.from], e.n.tap, e.n.dropQuiesce, e.n.sent
	e.n.mu.Unlock()
	if sent != nil {
		for _, rm := range msgs {
			sent(e.from, to, rm)
		}
	}
	if dst == nil || down {
		return
	}
	if dropQ != nil {
		kept := make([]*storepb.RaftMessage, 0, len(msgs))
		for _, rm := range msgs {
			if !rm.GetQuiesce() || !dropQ(to) {
				kept = append(kept, rm)
			}
		}
		msgs = kept
	}
	if tap != nil {
		for _, rm := range msgs {
			if rm.GetGroupId() == livenessGroup {
				continue
			}
			m := &eraftpb.Message{}
			if proto.Unmarshal(rm.GetData(), m) == nil {
				tap(e.from, to, rm.GetGroupId(), m)
			}
		}
	}
	dst.Step(e.from, msgs)
}

func (e netEnd) SendSnapshot(to, group uint64, m *eraftpb.Message) {
	e.n.mu.Lock()
	src, dst, tap := e.n.rs[e.from], e.n.rs[to], e.n.tap
	e.n.mu.Unlock()
	e.n.snaps.Add(1)
	go func() {
		defer e.n.snaps.Done()
		// As the transport does: the receiver stages the data as it
		// comes, and steps the message with its token.
		var st *SnapshotStage
		var err error
		if dst != nil {
			st, err = dst.StageSnapshot(group, m.GetSnapshot().GetMetadata())
		}
		if err == nil {
			err = src.StreamSnapshot(m.GetSnapshot().GetData(), func(chunk []byte) error {
				if st == nil {
					return errors.New("no receiver")
				}
				return st.Write(chunk)
			})
		} else {
			_ = src.StreamSnapshot(m.GetSnapshot().GetData(), func([]byte) error { return err })
		}
		if err == nil {
			var token []byte
			if token, err = st.Finish(); err == nil {
				m = proto.Clone(m).(*eraftpb.Message)
				m.Snapshot.Data = token
				if tap != nil {
					tap(e.from, to, group, m)
				}
				dst.StepSnapshot(e.from, group, m)
			}
		} else if st != nil {
			st.Abort()
		}
		src.ReportSnapshot(group, to, err == nil)
	}()
}

type node struct {
	rs       *RaftStore
	db       *pebble.DB
	fatal    chan error
	sms      map[uint64]*kvSM
	stopOnce sync.Once
}

func (n *net) start(t testing.TB, id uint64, fs vfs.FS, tune ...func(*Config)) *node {
	t.Helper()
	nd, err := n.open(id, fs, tune...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.stop() })
	return nd
}

// open starts store id on fs; the caller stops it.
func (n *net) open(id uint64, fs vfs.FS, tune ...func(*Config)) (*node, error) {
	db, err := pebble.Open("", &pebble.Options{FS: fs})
	if err != nil {
		return nil, err
	}
	nd := &node{db: db, fatal: make(chan error, 1), sms: map[uint64]*kvSM{}}
	cfg := Config{
		StoreID: id, DB: db, Transport: netEnd{n: n, from: id}, FS: fs, StagingDir: "staging",
		NewStateMachine: func(g uint64) (StateMachine, error) { sm := &kvSM{group: g}; nd.sms[g] = sm; return sm, nil },
		WantReplica:     func(uint64) bool { return true },
		OnFatal: func(err error) {
			select {
			case nd.fatal <- err:
			default:
			}
		},
		TickInterval: 10 * time.Millisecond,
	}
	for _, f := range tune {
		f(&cfg)
	}
	rs, err := Open(cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	nd.rs = rs
	n.mu.Lock()
	n.rs[id] = rs
	before := n.beforeStart
	n.mu.Unlock()
	if before != nil {
		before(id)
	}
	rs.Start()
	return nd, nil
}

func (nd *node) stop() {
	nd.stopOnce.Do(func() {
		nd.rs.Stop()
		_ = nd.db.Close()
	})
}

func newNet() *net { return &net{rs: map[uint64]*RaftStore{}, cut: map[uint64]bool{}} }

func eventually(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// threeStores starts stores 1-3 with group 7 bootstrapped on each and
// returns them once group 7 has a leader.
func threeStores(t testing.TB, tune ...func(*Config)) (*net, []*node, int) {
	t.Helper()
	n := newNet()
	var nodes []*node
	for id := uint64(1); id <= 3; id++ {
		nd := n.start(t, id, vfs.NewMem(), tune...)
		if err := nd.rs.CreateGroup(ctxT(t, 5*time.Second), 7, []uint64{1, 2, 3}, nil, id == 1); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	leader := -1
	eventually(t, 10*time.Second, func() error {
		for i, nd := range nodes {
			if st, _ := nd.rs.Status(7); st.IsLeader {
				leader = i
				return nil
			}
		}
		return errors.New("no leader")
	})
	return n, nodes, leader
}

func TestProposeApplyAndRead(t *testing.T) {
	_, nodes, leader := threeStores(t)
	for i := range nodes {
		// Any replica takes proposals and reads: Raft forwards them.
		v, err := nodes[i].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte(fmt.Sprintf("cmd-%d", i)))
		if err != nil {
			t.Fatalf("propose on store %d: %v", i+1, err)
		}
		idx := v.(uint64)
		for j := range nodes {
			if err := nodes[j].rs.ReadIndexRetrying(ctxT(t, 5*time.Second), 7); err != nil {
				t.Fatal(err)
			}
			if st, _ := nodes[j].rs.Status(7); st.Applied < idx {
				t.Fatalf("store %d applied %d after ReadIndex, below the write at %d", j+1, st.Applied, idx)
			}
		}
	}
	_ = leader
}

// A command built after FrameSize free bytes is proposed as it is, from any
// replica, and every replica applies exactly the command.
func TestProposeFramed(t *testing.T) {
	_, nodes, _ := threeStores(t)
	for i := range nodes {
		cmd := bytes.Repeat([]byte{byte('a' + i)}, 1<<20)
		buf := append(make([]byte, FrameSize), cmd...)
		v, err := nodes[i].rs.ProposeFramedRetrying(ctxT(t, 10*time.Second), 7, buf)
		if err != nil {
			t.Fatalf("propose on store %d: %v", i+1, err)
		}
		idx := v.(uint64)
		for j := range nodes {
			if err := nodes[j].rs.ReadIndexRetrying(ctxT(t, 5*time.Second), 7); err != nil {
				t.Fatal(err)
			}
			got, ok, err := kvread.Get(nodes[j].db, append(keys.StatePrefix(7), fmt.Sprintf("%08d", idx)...))
			if err != nil || !ok || !bytes.Equal(got, cmd) {
				t.Fatalf("store %d applied %d bytes at %d (%v %v), want the %d proposed", j+1, len(got), idx, ok, err, len(cmd))
			}
		}
	}
	if _, err := nodes[0].rs.ProposeFramedRetrying(ctxT(t, time.Second), 7, make([]byte, FrameSize-1)); err == nil {
		t.Fatal("a buffer with no room for the frame was proposed")
	}
}

func TestProposalOutcome(t *testing.T) {
	n, nodes, leader := threeStores(t)
	l := nodes[leader]
	// Cut off, the leader still takes the proposal; it never commits.
	n.mu.Lock()
	n.cut[uint64(leader+1)] = true
	n.mu.Unlock()
	_, err := l.rs.Propose(ctxT(t, 100*time.Millisecond), 7, []byte("lost"))
	if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("proposal on an isolated leader: %v, want ErrOutcomeUnknown", err)
	}
	// Once it steps down (CheckQuorum), nothing is proposed.
	eventually(t, 10*time.Second, func() error {
		if st, _ := l.rs.Status(7); st.Leader != 0 {
			return fmt.Errorf("still sees leader %d", st.Leader)
		}
		return nil
	})
	_, err = l.rs.Propose(ctxT(t, time.Second), 7, []byte("refused"))
	if !errors.Is(err, ErrNoLeader) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("proposal with no leader: %v, want ErrNoLeader", err)
	}
	if _, err := l.rs.Propose(ctxT(t, time.Second), 99, []byte("x")); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("proposal to an unknown group: %v", err)
	}
	if err := WriteError(fmt.Errorf("%w: %w", ErrOutcomeUnknown, context.DeadlineExceeded), "g"); err == nil {
		t.Fatal("no client error")
	}
}

func TestApplyErrorStopsTheLoop(t *testing.T) {
	n := newNet()
	nd := n.start(t, 1, vfs.NewMem())
	if err := nd.rs.CreateGroup(ctxT(t, 5*time.Second), 7, []uint64{1}, nil, true); err != nil {
		t.Fatal(err)
	}
	v, err := nd.rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte("ok"))
	if err != nil {
		t.Fatal(err)
	}
	good := v.(uint64)
	_, err = nd.rs.Propose(ctxT(t, 5*time.Second), 7, []byte("fail"))
	if err == nil {
		t.Fatal("a failed apply answered its proposer")
	}
	select {
	case ferr := <-nd.fatal:
		t.Logf("fatal: %v", ferr)
	case <-time.After(5 * time.Second):
		t.Fatal("OnFatal not called after an apply error")
	}
	if st, _ := nd.rs.Status(7); st.Applied != good {
		t.Fatalf("applied index %d: the failed entry counted as applied (last good %d)", st.Applied, good)
	}
	// On disk too: the applied index is the last good entry's.
	nd.rs.Stop()
	lg, err := loadGroup(nd.db, 7)
	if err != nil {
		t.Fatal(err)
	}
	if lg.applied.index != good {
		t.Fatalf("durable applied index %d, want %d", lg.applied.index, good)
	}
}

// A bootstrapped replica is opened from bootstrapState, not read back:
// it must be what loadGroup reads from what writeBootstrap wrote.
func TestBootstrapStateIsWhatLoadReads(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	voters := []uint64{1, 2, 3}
	b := db.NewBatch()
	if err := writeBootstrap(b, 7, voters, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	got, err := loadGroup(db, 7)
	if err != nil {
		t.Fatal(err)
	}
	want := bootstrapState(voters)
	if !proto.Equal(got.applied.conf, want.applied.conf) || !proto.Equal(got.hs, want.hs) {
		t.Fatalf("loaded conf %v, hard state %v; bootstrapState has %v, %v", got.applied.conf, got.hs, want.applied.conf, want.hs)
	}
	got.applied.conf, got.hs, want.applied.conf, want.hs = nil, nil, nil, nil
	if *got != *want {
		t.Fatalf("loaded %+v, bootstrapState is %+v", *got, *want)
	}
}

func TestLoadRefusesDecreasingTerms(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	if err := writeBootstrap(b, 7, []uint64{1}, nil); err != nil {
		t.Fatal(err)
	}
	for i, term := range []uint64{6, 7, 6} {
		e, _ := proto.Marshal(&eraftpb.Entry{Index: new(initIndex + 1 + uint64(i)), Term: new(term)})
		_ = b.Set(keys.LogEntry(7, initIndex+1+uint64(i)), e, nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := loadGroup(db, 7); err == nil {
		t.Fatal("a log whose terms decrease loaded")
	}
}

func TestRestartReappliesFromTheLog(t *testing.T) {
	n := newNet()
	fs := vfs.NewCrashableMem()
	nd := n.start(t, 1, fs)
	if err := nd.rs.CreateGroup(ctxT(t, 5*time.Second), 7, []uint64{1}, nil, true); err != nil {
		t.Fatal(err)
	}
	var written []uint64
	for i := range 20 {
		v, err := nd.rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte(fmt.Sprintf("c%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, v.(uint64))
	}
	last := written[len(written)-1]
	// A crash keeps the synced log; applies may be lost.
	image := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	nd.stop()
	n2 := newNet()
	nd2 := n2.start(t, 1, image)
	eventually(t, 10*time.Second, func() error {
		if st, _ := nd2.rs.Status(7); st.Applied < last {
			return fmt.Errorf("applied %d of %d", st.Applied, last)
		}
		return nil
	})
	for _, i := range written {
		if _, closer, err := nd2.db.Get(append(keys.StatePrefix(7), fmt.Sprintf("%08d", i)...)); err != nil {
			t.Fatalf("entry %d not in the state after the restart: %v", i, err)
		} else {
			_ = closer.Close()
		}
	}
}

func TestSnapshotCatchUp(t *testing.T) {
	n := newNet()
	var nodes []*node
	for id := uint64(1); id <= 2; id++ {
		nd := n.start(t, id, vfs.NewMem())
		if err := nd.rs.CreateGroup(ctxT(t, 5*time.Second), 7, []uint64{1, 2}, nil, id == 1); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	for i := range 5 {
		if _, err := nodes[0].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, []byte(fmt.Sprintf("c%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// A third store joins empty: it can only catch up by snapshot (the
	// bootstrapped log starts past index 1).
	nd3 := n.start(t, 3, vfs.NewMem())
	if err := nd3.rs.CreateGroup(ctxT(t, 5*time.Second), 7, nil, nil, false); err != nil {
		t.Fatal(err)
	}
	cc := &eraftpb.ConfChange{Type: eraftpb.ConfChangeAddNode.Enum(), NodeId: new(uint64(3))}
	eventually(t, 10*time.Second, func() error {
		return nodes[0].rs.ProposeConfChange(ctxT(t, time.Second), 7, cc)
	})
	st1, _ := nodes[0].rs.Status(7)
	eventually(t, 10*time.Second, func() error {
		if st, _ := nd3.rs.Status(7); st.Applied < st1.Applied || st.SnapshotsApplied == 0 {
			return fmt.Errorf("store 3: %+v", st)
		}
		return nil
	})
	n.snaps.Wait()
}
