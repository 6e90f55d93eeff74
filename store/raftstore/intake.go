package raftstore

// The intake: what a Raft message from another store must satisfy before
// it reaches RawNode.Step.
//
// go.etcd.io/raft trusts its caller to deliver only what an honest peer
// sends. On anything else it may panic (a heartbeat committing past the
// end of the log: "tocommit(N) is out of range [lastIndex(M)]"), or take a
// field as local (a term of zero skips every term check). Messages come
// from the network, from whoever opens a stream, so each one is checked
// here first; one that fails a rule is dropped, counted in Stats.Dropped
// and logged at Warn (aggregated: at most one line per dropLogInterval).
// A panic inside raft is never recovered: it may leave the group half
// updated. The rules must therefore cover every panic raft can reach from
// Step; FuzzStep checks that they do.
//
// The rules (checkMessage applies 1-6 and 13 first, then those of the
// message's type). "raft" is go.etcd.io/raft/v3 v3.7.0; "panic" names what
// the rule prevents, "OnFatal" a message that raft would take and this
// store could then not persist or apply (which stops the store), "sanity"
// a message no honest peer sends whose effect is not a crash. The panics
// the rules prevent are reproduced on a bare RawNode by TestIntakeRules
// and TestCheckConfChange.
//
//	rule                                           why
//	---------------------------------------------  -----------------------------------------------
//	 1 From == the sending store, From != this     panic: raft answers a heartbeat "from" its
//	   store, To == this store                     own id to itself: "message should not be
//	                                               self-addressed" (raft.go:596); it also takes
//	                                               that id as its leader, and a MsgReadIndex from
//	                                               it as a local read (raft.go:2078). Sanity: a
//	                                               store speaks only for itself.
//	 2 a peer-to-peer type: MsgApp(Resp),          MsgHup, MsgBeat, MsgCheckQuorum, MsgSnapStatus,
//	   MsgHeartbeat(Resp), MsgVote(Resp),          MsgUnreachable, MsgStorage*, MsgForgetLeader are
//	   MsgPreVote(Resp), MsgProp, MsgReadIndex     the node's own; MsgTransferLeader is forwarded
//	   (Resp), MsgSnap, MsgTimeoutNow              by a follower with its term set: "term should
//	                                               not be set when sending" (raft.go:536).
//	 3 Term == 0 exactly for MsgProp and           raft takes term 0 as local (raft.go:1098) and
//	   MsgReadIndex                                skips the term checks: a MsgApp of term 0 is
//	                                               appended whatever the term; a MsgVote of term 0
//	                                               is answered with term 0: "term should be set
//	                                               when sending" (raft.go:532). A forwarded
//	                                               MsgProp/MsgReadIndex with a term panics as in 2.
//	 4 a snapshot only on MsgSnap; entries only    sanity: no hidden payloads (raft reads a
//	   on MsgApp, MsgProp, MsgReadIndex(Resp);     snapshot in MsgStorageAppendResp, entries in
//	   no Responses, no Vote                       MsgStorageApplyResp).
//	 5 terms and indexes below 2^62                raft computes Term+1, Index+1 and
//	                                               Index+len(Entries) without overflow checks.
//	 6 From is a voter or learner of raft's        sanity (raft answers such messages);
//	   current configuration, or added by a conf   RawNode refuses responses from them itself.
//	   change in the log not applied yet, or a     A store just added may campaign, or lead,
//	   leader's MsgApp, MsgHeartbeat or MsgSnap    before a replica applies its addition; raft
//	   of a later term (or of the replica's term   needs that replica's vote and acks then (a
//	   if it follows no other leader)              removed store stays refused, as in etcd).
//	                                               A replica whose configuration is older than
//	                                               the group's (it was cut off while the group
//	                                               removed it and added it back) must hear the
//	                                               leader it does not know of to catch up.
//	 6' a replica without configuration (empty,    it needs only these to be found by its leader
//	   waiting for a snapshot; or not created      and filled: MsgApp, MsgHeartbeat, MsgSnap,
//	   yet) accepts from any store, but only       MsgVote, MsgPreVote. A MsgApp at index 0 would
//	   those types, and MsgApp only with Index>=1  match its empty log and append entries with
//	                                               no configuration behind them.
//	 7 MsgApp: entries numbered Index+1, Index+2,  panic: maybeAppend finds a "conflict" at the
//	   ...; terms non-decreasing from LogTerm,     first mismatching entry; entries out of
//	   >= 1 and <= Term; LogTerm <= Term           sequence put it at or below the commit index,
//	                                               "entry %d conflict with committed entry"
//	                                               (log.go:121), or past the entries, "index, %d,
//	                                               is out of range" (log.go:125); the bounds
//	                                               checks behind them (log.go:138,
//	                                               log_unstable.go:247, storage.go:322) assume
//	                                               contiguous entries too. A log whose terms
//	                                               decrease is refused by loadGroup at restart.
//	 8 entries of MsgApp and MsgProp: EntryNormal  panic: a leader decodes a proposed conf change
//	   (empty, or framed and, with                 and panics if it cannot (raft.go:1315).
//	   Config.ValidateCommand, valid), or          OnFatal: applyEntry cannot unframe, decode or
//	   EntryConfChange that decodes. A MsgProp     apply anything else. raft panics on an empty
//	   carries >= 1 entry, each a command framed   MsgProp (raft.go:1296).
//	   by its sender, or a conf change
//	 9 MsgHeartbeat: Commit <= the local last      panic: handleHeartbeat commits to it:
//	   index (raft clamps what it sends: commit =  "tocommit(%d) is out of range [lastIndex(%d)]"
//	   min(progress match, committed),             (raft.go:1836, log.go:326).
//	   raft.go:702)
//	10 MsgHeartbeat(Resp) Context: empty or 8      panic: the leader reads it as a little-endian
//	   bytes; a leader takes a response's          uint64 (read_only.go:67) and confirms that
//	   context only up to the highest it sent in   many reads: a position beyond its queue
//	   this term                                   slices out of range (read_only.go:85).
//	11 MsgAppResp (to the leader, this term, not   sanity: an ack beyond the leader's log counts
//	   a rejection): Index <= the local last       toward commit entries the follower lacks.
//	   index
//	12 MsgReadIndex(Resp): exactly one entry (the  sanity: raft indexes entries[0] of a read
//	   request context)                            request (raft.go:2078; the follower checks
//	                                               the response itself).
//	13 MsgApp, MsgHeartbeat, MsgSnap of the        sanity: a term has one leader, and raft
//	   current term: from the leader this replica  takes any of these at its term as the
//	   follows, if it knows one                    leader's, switching leader to its sender.
//	   MsgTimeoutNow: from that leader, at the     It makes the replica start an election that
//	   current term; MsgVote/MsgPreVote Context:   overrides its peers' leader lease; only a
//	   empty or raft's "CampaignTransfer"          leader handing over may ask.
//	14 MsgSnap: metadata index and term >= 1,      panic: restore applies the configuration with
//	   term <= Term; a configuration raft can      confchange.Restore and panics on error
//	   restore, equivalent after restoring, with   (raft.go:1933) or if the result differs
//	   at most maxMembers members, including this  (raft.go:1936, util.go:325: duplicates, a
//	   store, not joint; data that names a         voter also a learner, id 0, AutoLeave).
//	   snapshot staged for the group at its index
//	   and term (snapstage.go: the stage parsed
//	   and wrote every record as it came)
//	                                               OnFatal: writeSnapshot decodes the data; rdb
//	                                               changes one voter at a time, and raft in a
//	                                               joint configuration proposes ConfChangeV2
//	                                               entries, which applyEntry cannot apply.
//
// Rules 9 and 11 need raft's last index, which RawNode does not expose.
// After each round the log in storage is raft's (every Ready is persisted
// and installed before Advance), and until an append or a snapshot is
// stepped raft's log only grows (proposals); so the storage's last index
// is a lower bound, and a message above it is dropped. After a MsgApp with
// entries or a MsgSnap in the same round the log may have been cut, the
// only sound bound is the commit index, and a message above it is retried
// once after the round instead.
//
// A committed conf change that raft cannot apply (for instance one that
// removes the last voter) would panic in ApplyConfChange (raft.go:1967);
// no rule at the intake can know the configuration at apply time, so
// applyEntry checks it there (checkConfChange) and applies nothing.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/confchange"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// maxRaftNumber bounds every term and index in a message (rule 5). Both grow
// by one per election or entry: no honest peer comes near it.
const maxRaftNumber uint64 = 1 << 62

// maxMembers bounds a snapshot's configuration (rule 14): restoring it
// checks the whole configuration once per member.
const maxMembers = 256

// campaignTransfer is the context raft puts on the votes of a leadership
// transfer (raft.campaignTransfer, unexported).
const campaignTransfer = "CampaignTransfer"

// Why a message is dropped: every error checkMessage returns wraps one.
var (
	errSender       = errors.New("sender")                                          // rule 1
	errAddressee    = errors.New("not addressed to this store")                     // rule 1
	errType         = errors.New("not a type accepted from another store")          // rule 2
	errTerm         = errors.New("term")                                            // rule 3
	errShape        = errors.New("a field this type never carries")                 // rule 4
	errRange        = errors.New("term or index out of range")                      // rule 5
	errNotMember    = errors.New("sender is not a member of the group")             // rule 6
	errUnconfigured = errors.New("not accepted by a replica without configuration") // rule 6'
	errEntries      = errors.New("entries")                                         // rules 7, 8
	errCommit       = errors.New("commit index beyond the local log")               // rule 9
	errContext      = errors.New("heartbeat context")                               // rule 10
	errAck          = errors.New("acknowledges entries beyond the local log")       // rule 11
	errRead         = errors.New("read index request")                              // rule 12
	errLeader       = errors.New("not from the leader of the term")                 // rule 13
	errSnapshot     = errors.New("snapshot")                                        // rule 14

	// Outside checkMessage: the transport's paths and the group.
	errUndecodable   = errors.New("undecodable message")
	errSnapOffStream = errors.New("MsgSnap outside the snapshot stream")
	errNotSnap       = errors.New("snapshot stream carries no MsgSnap")
	errNoReplica     = errors.New("no replica of the group, and none wanted")

	// errLogMoved joins errCommit or errAck when the local log changed in
	// this round: the message is tried again once after the round.
	errLogMoved = errors.New("the local log changed in this round")
)

func reject(rule error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{rule}, args...)...)
}

// peerTypes are the message types a store sends to another (rule 2).
var peerTypes = map[eraftpb.MessageType]bool{
	eraftpb.MsgApp: true, eraftpb.MsgAppResp: true,
	eraftpb.MsgHeartbeat: true, eraftpb.MsgHeartbeatResp: true,
	eraftpb.MsgVote: true, eraftpb.MsgVoteResp: true,
	eraftpb.MsgPreVote: true, eraftpb.MsgPreVoteResp: true,
	eraftpb.MsgProp: true, eraftpb.MsgReadIndex: true, eraftpb.MsgReadIndexResp: true,
	eraftpb.MsgSnap: true, eraftpb.MsgTimeoutNow: true,
}

// unconfiguredTypes are what a replica without configuration takes (6').
var unconfiguredTypes = map[eraftpb.MessageType]bool{
	eraftpb.MsgApp: true, eraftpb.MsgHeartbeat: true, eraftpb.MsgSnap: true,
	eraftpb.MsgVote: true, eraftpb.MsgPreVote: true,
}

// view is what the rules know of a replica, taken just before the message
// is stepped.
type view struct {
	self, group uint64
	// members are the voters (incoming and outgoing) and learners of raft's
	// configuration; none: the replica has no configuration yet.
	members []uint64
	term    uint64
	commit  uint64
	lead    uint64
	leader  bool
	// last is a lower bound of raft's last index; settled: no append or
	// snapshot was stepped this round, so it is the log end in storage.
	last    uint64
	settled bool
	// hbTerm, hbCtx: the highest heartbeat context this store sent for the
	// group, and in which term.
	hbTerm, hbCtx uint64
	// validate is Config.ValidateCommand for the group, if set.
	validate func(cmd []byte) error
	// joining, if set, reports whether a conf change in the log, not
	// applied yet, adds store id.
	joining func(id uint64) bool
	// staged reports whether a MsgSnap's data names a snapshot staged for
	// the group at index and term (snapstage.go); nil: none is.
	staged func(data []byte, index, term uint64) bool
}

// view returns the group's view, good until the next call of view. Loop
// only. Every message from another store is checked against it, so it is
// the store's one view (rs.v) filled in place, with callbacks made once
// that act on the group viewed (rs.viewing); raft's configuration is read
// again only after what may change it (g.membersKnown).
func (g *group) view() *view {
	rs := g.rs
	v := &rs.v
	if v.staged == nil {
		if f := rs.cfg.ValidateCommand; f != nil {
			v.validate = func(cmd []byte) error { return f(rs.viewing.id, cmd) }
		}
		v.joining = func(id uint64) bool {
			return addedInLog(rs.viewing.storage, rs.viewing.applied.index+1, id)
		}
		v.staged = func(data []byte, index, term uint64) bool {
			return rs.hasStaged(data, rs.viewing.id, index, term)
		}
	}
	rs.viewing = g
	v.self, v.group = rs.cfg.StoreID, g.id
	if !g.membersKnown {
		g.raftMembers = appendMembers(g.raftMembers[:0], g.rn)
		g.membersKnown = true
	} else if checkViews {
		if fresh := appendMembers(nil, g.rn); !slices.Equal(fresh, g.raftMembers) {
			panic(fmt.Sprintf("raftstore: group %d: cached members %v, raft has %v", g.id, g.raftMembers, fresh))
		}
	}
	v.members = g.raftMembers
	fillStatus(v, g.rn)
	if !g.logMoved {
		if li, err := g.storage.LastIndex(); err == nil {
			v.last, v.settled = max(li, v.commit), true
		}
	}
	v.hbTerm, v.hbCtx = g.hbTerm, g.hbCtx
	return v
}

// checkViews makes view compare its cached configuration with raft's at
// every call (tests set it).
var checkViews = false

// addedInLog reports whether an entry of s from index lo on is a conf
// change that adds store id (as a voter or a learner).
func addedInLog(s raft.Storage, lo, id uint64) bool {
	last, err := s.LastIndex()
	if err != nil || lo > last {
		return false
	}
	ents, err := s.Entries(lo, last+1, 64<<20)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.GetType() != eraftpb.EntryConfChange {
			continue
		}
		cc := &eraftpb.ConfChange{}
		if proto.Unmarshal(e.GetData(), cc) == nil && cc.GetNodeId() == id &&
			(cc.GetType() == eraftpb.ConfChangeAddNode || cc.GetType() == eraftpb.ConfChangeAddLearnerNode) {
			return true
		}
	}
	return false
}

// rawNodeView is what a RawNode tells of itself; last is its commit index
// (always at or below its last index), not settled.
func rawNodeView(rn *raft.RawNode, self, group uint64) *view {
	v := &view{self: self, group: group, members: appendMembers(nil, rn)}
	fillStatus(v, rn)
	return v
}

// fillStatus sets what raft's status tells of v; last is its commit index
// until the caller knows better.
func fillStatus(v *view, rn *raft.RawNode) {
	st := rn.BasicStatus()
	v.term, v.commit, v.lead, v.leader = st.GetTerm(), st.GetCommit(), st.Lead, st.RaftState == raft.StateLeader
	v.last, v.settled = st.GetCommit(), false
}

// appendMembers appends the voters and learners of rn's configuration.
func appendMembers(dst []uint64, rn *raft.RawNode) []uint64 {
	rn.WithProgress(func(id uint64, _ raft.ProgressType, _ tracker.Progress) { dst = append(dst, id) })
	return dst
}

// emptyView is the view of a replica not created yet: no configuration,
// no log.
func (rs *RaftStore) emptyView(group uint64) *view {
	v := &view{self: rs.cfg.StoreID, group: group, settled: true}
	if f := rs.cfg.ValidateCommand; f != nil {
		v.validate = func(cmd []byte) error { return f(group, cmd) }
	}
	v.staged = func(data []byte, index, term uint64) bool { return rs.hasStaged(data, group, index, term) }
	return v
}

// laterLeader reports whether m may come from a leader this replica's
// configuration does not name (rule 6): a replica that was cut off, or
// down, while the group changed its members (a store removed and added
// back) holds a configuration older than the group's, and hears from a
// leader it does not know of. Only a leader's messages to a follower
// (MsgApp, MsgHeartbeat, MsgSnap), of a later term, or of its term if it
// follows no other leader; raft then follows that leader, which brings the
// replica's log and configuration up to date.
func laterLeader(v *view, from uint64, m *eraftpb.Message) bool {
	switch m.GetType() {
	case eraftpb.MsgApp, eraftpb.MsgHeartbeat, eraftpb.MsgSnap:
	default:
		return false
	}
	return m.GetTerm() > v.term || (m.GetTerm() == v.term && (v.lead == 0 || v.lead == from))
}

// checkMessage returns nil if m, received from store from, may be stepped
// into the replica v describes, or why not (the rules above).
func checkMessage(v *view, from uint64, m *eraftpb.Message) error {
	t := m.GetType()
	// 1. Who speaks, to whom.
	if from == 0 || from == v.self {
		return reject(errSender, "from store %d", from)
	}
	if m.GetFrom() != from {
		return reject(errSender, "From %d, sent by store %d", m.GetFrom(), from)
	}
	if m.GetTo() != v.self {
		return reject(errAddressee, "To %d", m.GetTo())
	}
	// 2-4. The type and its shape.
	if !peerTypes[t] {
		return reject(errType, "%v", t)
	}
	if local := t == eraftpb.MsgProp || t == eraftpb.MsgReadIndex; local != (m.GetTerm() == 0) {
		return reject(errTerm, "%v with term %d", t, m.GetTerm())
	}
	if m.Snapshot != nil && t != eraftpb.MsgSnap {
		return reject(errShape, "%v with a snapshot", t)
	}
	if len(m.GetEntries()) > 0 && t != eraftpb.MsgApp && t != eraftpb.MsgProp && t != eraftpb.MsgReadIndex && t != eraftpb.MsgReadIndexResp {
		return reject(errShape, "%v with entries", t)
	}
	if len(m.GetResponses()) > 0 || m.GetVote() != 0 {
		return reject(errShape, "%v with responses or a vote", t)
	}
	// 5. Numbers raft adds to.
	for _, n := range [...]uint64{m.GetTerm(), m.GetLogTerm(), m.GetIndex(), m.GetCommit(), m.GetRejectHint()} {
		if n >= maxRaftNumber {
			return reject(errRange, "%v carries %d", t, n)
		}
	}
	// 6. Membership.
	if len(v.members) == 0 {
		if !unconfiguredTypes[t] {
			return reject(errUnconfigured, "%v", t)
		}
		if t == eraftpb.MsgApp && m.GetIndex() == 0 {
			return reject(errUnconfigured, "MsgApp at index 0")
		}
	} else if !slices.Contains(v.members, from) && (v.joining == nil || !v.joining(from)) && !laterLeader(v, from, m) {
		return reject(errNotMember, "store %d", from)
	}
	// 7-14. Per type.
	if (t == eraftpb.MsgApp || t == eraftpb.MsgHeartbeat || t == eraftpb.MsgSnap) && m.GetTerm() == v.term && v.lead != 0 && from != v.lead {
		return reject(errLeader, "%v from store %d at term %d, led by store %d", t, from, v.term, v.lead)
	}
	switch t {
	case eraftpb.MsgApp:
		return checkAppend(v, m)
	case eraftpb.MsgProp:
		if len(m.GetEntries()) == 0 {
			return reject(errEntries, "empty MsgProp")
		}
		for _, e := range m.GetEntries() {
			if err := checkEntry(v, e, from); err != nil {
				return err
			}
		}
	case eraftpb.MsgHeartbeat:
		if n := len(m.GetContext()); n != 0 && n != 8 {
			return reject(errContext, "%d bytes", n)
		}
		if c := m.GetCommit(); c > v.last {
			return beyondLog(v, errCommit, "commit %d, local log ends at or after %d", c, v.last)
		}
	case eraftpb.MsgHeartbeatResp:
		ctx := m.GetContext()
		if n := len(ctx); n != 0 && n != 8 {
			return reject(errContext, "%d bytes", n)
		}
		if len(ctx) == 8 && v.leader && m.GetTerm() == v.term {
			if pos := binary.LittleEndian.Uint64(ctx); v.hbTerm != v.term || pos > v.hbCtx {
				return reject(errContext, "read position %d, sent at most %d in term %d", pos, v.hbCtx, v.term)
			}
		}
	case eraftpb.MsgAppResp:
		if !m.GetReject() && v.leader && m.GetTerm() == v.term && m.GetIndex() > v.last {
			return beyondLog(v, errAck, "index %d, local log ends at or after %d", m.GetIndex(), v.last)
		}
	case eraftpb.MsgReadIndex, eraftpb.MsgReadIndexResp:
		if len(m.GetEntries()) != 1 {
			return reject(errRead, "%v with %d entries", t, len(m.GetEntries()))
		}
	case eraftpb.MsgTimeoutNow:
		if m.GetTerm() != v.term || from != v.lead {
			return reject(errLeader, "from store %d at term %d; leader %d at term %d", from, m.GetTerm(), v.lead, v.term)
		}
	case eraftpb.MsgVote, eraftpb.MsgPreVote:
		if c := m.GetContext(); len(c) != 0 && string(c) != campaignTransfer {
			return reject(errLeader, "vote context of %d bytes", len(c))
		}
	case eraftpb.MsgSnap:
		return checkSnapshot(v, m)
	}
	return nil
}

// beyondLog rejects a message whose index is above v.last: for good if
// the bound is settled, else to be tried again after the round.
func beyondLog(v *view, rule error, format string, args ...any) error {
	if v.settled {
		return reject(rule, format, args...)
	}
	return fmt.Errorf("%w: %w: "+format, append([]any{rule, errLogMoved}, args...)...)
}

// checkAppend is rule 7 (and 8 for each entry).
func checkAppend(v *view, m *eraftpb.Message) error {
	ents := m.GetEntries()
	prev := m.GetIndex()
	if uint64(len(ents)) >= maxRaftNumber-prev {
		return reject(errRange, "%d entries after index %d", len(ents), prev)
	}
	term := m.GetLogTerm()
	if term > m.GetTerm() {
		return reject(errEntries, "previous entry of term %d in a message of term %d", term, m.GetTerm())
	}
	for i, e := range ents {
		if want := prev + 1 + uint64(i); e.GetIndex() != want {
			return reject(errEntries, "entry %d has index %d, want %d", i, e.GetIndex(), want)
		}
		if e.GetTerm() == 0 || e.GetTerm() < term || e.GetTerm() > m.GetTerm() {
			return reject(errEntries, "entry %d has term %d after term %d, in a message of term %d", e.GetIndex(), e.GetTerm(), term, m.GetTerm())
		}
		term = e.GetTerm()
		if err := checkEntry(v, e, 0); err != nil {
			return err
		}
	}
	return nil
}

// checkEntry is rule 8. proposer is the sender of a MsgProp (whose
// commands it frames itself), 0 for a MsgApp.
func checkEntry(v *view, e *eraftpb.Entry, proposer uint64) error {
	switch e.GetType() {
	case eraftpb.EntryNormal:
		if len(e.GetData()) == 0 {
			if proposer != 0 {
				return reject(errEntries, "empty proposal")
			}
			return nil // a new leader's empty entry
		}
		origin, _, cmd, err := unframe(e.GetData())
		if err != nil {
			return reject(errEntries, "%v", err)
		}
		if proposer != 0 && origin != proposer {
			return reject(errEntries, "store %d proposes a command framed by store %d", proposer, origin)
		}
		if v.validate != nil {
			if err := v.validate(cmd); err != nil {
				return reject(errEntries, "command: %v", err)
			}
		}
	case eraftpb.EntryConfChange:
		cc := &eraftpb.ConfChange{}
		if err := proto.Unmarshal(e.GetData(), cc); err != nil {
			return reject(errEntries, "conf change: %v", err)
		}
		switch cc.GetType() {
		case eraftpb.ConfChangeAddNode, eraftpb.ConfChangeRemoveNode, eraftpb.ConfChangeUpdateNode, eraftpb.ConfChangeAddLearnerNode:
		default:
			return reject(errEntries, "conf change of type %v", cc.GetType())
		}
	default:
		return reject(errEntries, "entry of type %v", e.GetType())
	}
	return nil
}

// checkSnapshot is rule 14.
func checkSnapshot(v *view, m *eraftpb.Message) error {
	s := m.GetSnapshot()
	md := s.GetMetadata()
	if md == nil {
		return reject(errSnapshot, "no metadata")
	}
	if md.GetIndex() == 0 || md.GetTerm() == 0 || md.GetIndex() >= maxRaftNumber || md.GetTerm() > m.GetTerm() {
		return reject(errSnapshot, "index %d term %d in a message of term %d", md.GetIndex(), md.GetTerm(), m.GetTerm())
	}
	if err := checkConfState(md.GetConfState(), v.self); err != nil {
		return reject(errSnapshot, "%v", err)
	}
	if v.staged == nil || !v.staged(s.GetData(), md.GetIndex(), md.GetTerm()) {
		return reject(errSnapshot, "data is not a snapshot staged for this group at %d", md.GetIndex())
	}
	return nil
}

// checkConfState does what raft does with a snapshot's configuration
// (raft.restore: confchange.Restore, then the result must be equivalent),
// returning the error raft would panic with, and checks it includes self.
func checkConfState(cs *eraftpb.ConfState, self uint64) error {
	if cs == nil {
		return errors.New("no configuration")
	}
	if n := len(cs.GetVoters()) + len(cs.GetLearners()) + len(cs.GetVotersOutgoing()) + len(cs.GetLearnersNext()); n > maxMembers {
		return fmt.Errorf("configuration of %d members", n)
	}
	if len(cs.GetVotersOutgoing()) > 0 || len(cs.GetLearnersNext()) > 0 || cs.GetAutoLeave() {
		return errors.New("joint configuration")
	}
	if !slices.Contains(cs.GetVoters(), self) && !slices.Contains(cs.GetLearners(), self) {
		return fmt.Errorf("configuration without store %d", self)
	}
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: 1}
	cfg, prs, err := confchange.Restore(chg, cs)
	if err != nil {
		return fmt.Errorf("configuration raft cannot restore: %w", err)
	}
	trk := chg.Tracker
	trk.Config, trk.Progress = cfg, prs
	if err := cs.Equivalent(trk.ConfState()); err != nil {
		return fmt.Errorf("configuration raft cannot restore as is: %w", err)
	}
	return nil
}

// checkConfChange returns the error raft's ApplyConfChange would panic with
// (raft.applyConfChange) for cc at configuration cs.
func checkConfChange(cs *eraftpb.ConfState, cc eraftpb.ConfChangeI) error {
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: 1}
	cfg, prs, err := confchange.Restore(chg, cs)
	if err != nil {
		return err
	}
	chg.Tracker.Config, chg.Tracker.Progress = cfg, prs
	v2 := cc.AsV2()
	if v2.LeaveJoint() {
		_, _, err = chg.LeaveJoint()
	} else if auto, ok := v2.EnterJoint(); ok {
		_, _, err = chg.EnterJoint(auto, v2.GetChanges()...)
	} else {
		_, _, err = chg.Simple(v2.GetChanges()...)
	}
	return err
}

// dropLogInterval is how often at most a line about dropped messages is
// logged: a flood of bad messages must not flood the log.
const dropLogInterval = time.Second

// dropLog aggregates the Warn lines about dropped messages: the first drop
// is logged at once, later ones at most once per dropLogInterval, each
// line naming the last drop and how many there were since the line before.
// Loop only.
type dropLog struct {
	last    time.Time // of the last line
	pending uint64    // drops since the last line
	sample  []zap.Field
}

// drop counts and logs a message dropped at the intake; m may be nil.
func (rs *RaftStore) drop(from, group uint64, m *eraftpb.Message, err error) {
	rs.stats.dropped.Add(1)
	d := &rs.drops
	d.pending++
	d.sample = []zap.Field{zap.Uint64("from", from), zap.Uint64("group", group)}
	if m != nil {
		d.sample = append(d.sample, zap.Stringer("type", m.GetType()), zap.Uint64("term", m.GetTerm()),
			zap.Uint64("index", m.GetIndex()), zap.Uint64("commit", m.GetCommit()))
	}
	d.sample = append(d.sample, zap.Error(err))
	d.flush(rs.log, time.Now())
}

// flush logs the drops not logged yet, if the last line is old enough.
func (d *dropLog) flush(log *zap.Logger, now time.Time) {
	if d.pending == 0 || now.Sub(d.last) < dropLogInterval {
		return
	}
	log.Warn("dropped raft messages from other stores", append([]zap.Field{zap.Uint64("dropped", d.pending)}, d.sample...)...)
	d.last, d.pending, d.sample = now, 0, nil
}
