package raftstore

// FuzzStep: whatever another store sends, through the real intake (Step and
// StepSnapshot) into a running store's group, never panics, never stops a
// store, and leaves the group committing proposals.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
)

type recorded struct {
	from, to, group uint64
	m               *eraftpb.Message
}

// recordExchange runs stores 1 and 2 with group 7, then lets store 3 join
// it (by snapshot), with proposals and reads made on a follower, and
// returns what the stores sent each other: elections, appends, heartbeats
// with read contexts, forwarded proposals and reads, probes of an empty
// replica and a snapshot with its data.
func recordExchange(tb testing.TB) []recorded {
	var mu sync.Mutex
	var out []recorded
	n := newNet()
	n.tap = func(from, to, group uint64, m *eraftpb.Message) {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, recorded{from, to, group, proto.Clone(m).(*eraftpb.Message)})
	}
	var nodes []*node
	for id := uint64(1); id <= 2; id++ {
		nd := n.start(tb, id, vfs.NewMem())
		if err := nd.rs.CreateGroup(ctxT(tb, 5*time.Second), 7, []uint64{1, 2}, nil, id == 1); err != nil {
			tb.Fatal(err)
		}
		nodes = append(nodes, nd)
	}
	for i := range 3 {
		if _, err := nodes[i%2].rs.ProposeRetrying(ctxT(tb, 5*time.Second), 7, []byte(fmt.Sprintf("c%d", i))); err != nil {
			tb.Fatal(err)
		}
		if err := nodes[1-i%2].rs.ReadIndexRetrying(ctxT(tb, 5*time.Second), 7); err != nil {
			tb.Fatal(err)
		}
	}
	nd3 := n.start(tb, 3, vfs.NewMem())
	if err := nd3.rs.CreateGroup(ctxT(tb, 5*time.Second), 7, nil, nil, false); err != nil {
		tb.Fatal(err)
	}
	cc := &eraftpb.ConfChange{Type: eraftpb.ConfChangeAddNode.Enum(), NodeId: new(uint64(3))}
	eventually(tb, 10*time.Second, func() error { return nodes[0].rs.ProposeConfChange(ctxT(tb, time.Second), 7, cc) })
	eventually(tb, 10*time.Second, func() error {
		if st, _ := nd3.rs.Status(7); st.SnapshotsApplied == 0 {
			return errors.New("store 3 has no snapshot")
		}
		return nil
	})
	if _, err := nd3.rs.ProposeRetrying(ctxT(tb, 5*time.Second), 7, []byte("from 3")); err != nil {
		tb.Fatal(err)
	}
	n.snaps.Wait()
	for i, nd := range append(nodes, nd3) {
		// Honest stores: the intake drops nothing of what they say.
		if d := nd.rs.Stats().Dropped; d != 0 {
			tb.Errorf("store %d dropped %d messages of an honest exchange", i+1, d)
		}
		nd.stop()
	}
	mu.Lock()
	defer mu.Unlock()
	return out
}

// Fuzz input: a mode byte and data.
const (
	fuzzBatch    = 1 << 0 // data is a storepb.RaftBatch; else one message of group 7
	fuzzSnapshot = 1 << 1 // deliver through StepSnapshot; else Step
	fuzzLeader   = 1 << 2 // a message addressed to no store goes to the leader; else a follower
	// The sender of a single message is mode>>4.
)

func FuzzStep(f *testing.F) {
	// Seeds: what real stores said, each message alone (from its sender, to
	// its addressee) and a batch of each sender's first messages.
	seen := map[eraftpb.MessageType]int{}
	batches := map[uint64]*storepb.RaftBatch{}
	for _, r := range recordExchange(f) {
		t := r.m.GetType()
		if seen[t] >= 3 || r.group != 7 || r.from > 15 {
			continue
		}
		seen[t]++
		mode := byte(r.from << 4)
		if t == eraftpb.MsgSnap {
			mode |= fuzzSnapshot
		}
		f.Add(mode, mustMarshal(r.m))
		if t != eraftpb.MsgSnap {
			b := batches[r.from]
			if b == nil {
				b = &storepb.RaftBatch{FromStore: r.from, ToStore: r.to}
				batches[r.from] = b
			}
			if len(b.Messages) < 8 {
				b.Messages = append(b.Messages, &storepb.RaftMessage{GroupId: 7, Data: mustMarshal(r.m)})
			}
		}
	}
	for _, b := range batches {
		f.Add(byte(fuzzBatch), mustMarshal(b))
		f.Add(byte(fuzzBatch|fuzzLeader), mustMarshal(b))
	}
	f.Add(byte(1<<4|fuzzLeader), []byte{0xff})
	// Found by the fuzzer: store 1 forwards to store 2 a proposal of a conf
	// change adding store 55. Three such cost the group its quorum: a
	// tampered cluster, started again.
	f.Add(byte(1<<4|fuzzLeader), []byte("\b\x02\x10\x02\x18\x01:\x12\b\x01\"\x0e\b\x9e\x97\xd6\xa8\xd7\xee8\x108\x10\x00\x187"))

	// One cluster per fuzz process, started again only when a well-formed
	// message changed what raft cannot undo (see fuzzCluster.tampered).
	c, err := newFuzzCluster()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.close() })
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		leader, follower, err := c.roles()
		if err != nil {
			t.Fatal(err)
		}
		from := uint64(mode >> 4)
		var msgs []*storepb.RaftMessage
		if mode&fuzzBatch != 0 {
			b := &storepb.RaftBatch{}
			if proto.Unmarshal(data, b) != nil {
				return
			}
			from, msgs = b.GetFromStore(), b.GetMessages()
		} else {
			msgs = []*storepb.RaftMessage{{GroupId: 7, Data: data}}
		}
		// The store it is addressed to (that of the first message), or the
		// leader or a follower as the mode says.
		target := follower
		if mode&fuzzLeader != 0 {
			target = leader
		}
		if len(msgs) > 0 {
			m := &eraftpb.Message{}
			if proto.Unmarshal(msgs[0].GetData(), m) == nil && m.GetTo() >= 1 && m.GetTo() <= 3 {
				target = int(m.GetTo() - 1)
			}
		}
		rs := c.nodes[target].rs
		if mode&fuzzSnapshot != 0 {
			for _, rm := range msgs {
				m := &eraftpb.Message{}
				if proto.Unmarshal(rm.GetData(), m) == nil {
					rs.StepSnapshot(from, rm.GetGroupId(), m)
				}
			}
		} else {
			rs.Step(from, msgs)
		}
		if err := c.fatal(); err != nil {
			t.Fatal(err)
		}
		err = c.live(target)
		if why := c.tampered(); why != "" {
			// Not the intake's to refuse: start afresh.
			t.Logf("cluster started again: %s", why)
			c.close()
			if c, err = newFuzzCluster(); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	})
}

// fuzzCluster is stores 1-3 with group 7 of voters {1, 2, 3}; group 8 is
// the one a message may create an empty replica of.
type fuzzCluster struct {
	n     *net
	nodes []*node
}

func newFuzzCluster() (*fuzzCluster, error) {
	c := &fuzzCluster{n: newNet()}
	for id := uint64(1); id <= 3; id++ {
		nd, err := c.n.open(id, vfs.NewMem(), func(cfg *Config) { cfg.WantReplica = func(g uint64) bool { return g == 8 } })
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, nd)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = nd.rs.CreateGroup(ctx, 7, []uint64{1, 2, 3}, nil, id == 1)
		cancel()
		if err != nil {
			c.close()
			return nil, err
		}
	}
	if _, _, err := c.roles(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *fuzzCluster) close() {
	c.n.snaps.Wait() // before the stores stop
	for _, nd := range c.nodes {
		nd.stop()
	}
}

// roles waits (bounded) for group 7 to have a leader and returns it and a
// follower.
func (c *fuzzCluster) roles() (leader, follower int, err error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		for i, nd := range c.nodes {
			if st, _ := nd.rs.Status(7); st.IsLeader {
				return i, (i + 1) % len(c.nodes), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("group 7 has had no leader for 3s: %s", c.status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// live checks, within a bound, that a proposal made on nodes[target]
// commits (it is applied there). The bounds here and in roles stay under
// the 10s after which the fuzzer takes an input for a hang (and reports no
// more than that).
func (c *fuzzCluster) live(target int) error {
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		// A proposal handed to a leader that then lost its term is lost:
		// try again.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err = c.nodes[target].rs.Propose(ctx, 7, []byte("live"))
		cancel()
		if err == nil {
			return c.fatal()
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ferr := c.fatal(); ferr != nil {
		return ferr
	}
	return fmt.Errorf("store %d: no proposal committed for 5s (%v): %s", target+1, err, c.status())
}

// fatal reports a store that stopped.
func (c *fuzzCluster) fatal() error {
	for i, nd := range c.nodes {
		select {
		case err := <-nd.fatal:
			return fmt.Errorf("store %d stopped: %w", i+1, err)
		default:
		}
	}
	return nil
}

// tampered says what a well-formed message from a member changed that
// raft, which trusts its members, cannot undo: the membership (a conf
// change proposed from another store is legitimate; one adding stores that
// do not exist costs the group its quorum), or a replica's state (a
// snapshot from its leader; none is needed here, the log is never
// truncated behind a follower). Whether such a message is authentic is
// for the transport's authentication, not the intake.
func (c *fuzzCluster) tampered() string {
	for i, nd := range c.nodes {
		st, _ := nd.rs.Status(7)
		if !slices.Equal(st.Voters, []uint64{1, 2, 3}) {
			return fmt.Sprintf("store %d: voters %v", i+1, st.Voters)
		}
		if st.SnapshotsApplied > 0 {
			return fmt.Sprintf("store %d installed a snapshot", i+1)
		}
	}
	return ""
}

func (c *fuzzCluster) status() string {
	var s []string
	for i, nd := range c.nodes {
		st, _ := nd.rs.Status(7)
		s = append(s, fmt.Sprintf("store %d: %+v", i+1, st))
	}
	return strings.Join(s, "; ")
}
