package raftstore

import (
	"testing"

	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// sentMessages are messages of the kinds stores send each other, as
// decodeMessageFast must decode them itself.
func sentMessages() []*eraftpb.Message {
	u := proto.Uint64
	entry := func(term, index uint64, typ eraftpb.EntryType, data []byte) *eraftpb.Entry {
		return &eraftpb.Entry{Term: u(term), Index: u(index), Type: typ.Enum(), Data: data}
	}
	return []*eraftpb.Message{
		{Type: eraftpb.MsgApp.Enum(), To: u(2), From: u(1), Term: u(7), LogTerm: u(7), Index: u(41), Commit: u(40),
			Entries: []*eraftpb.Entry{entry(7, 42, eraftpb.EntryNormal, []byte("cas k v")), entry(7, 43, eraftpb.EntryNormal, []byte{})}},
		{Type: eraftpb.MsgApp.Enum(), To: u(3), From: u(1), Term: u(7), LogTerm: u(6), Index: u(40), Commit: u(40),
			Entries: []*eraftpb.Entry{entry(7, 41, eraftpb.EntryConfChangeV2, []byte{1, 2, 3}), {Term: u(7), Index: u(42)}}},
		{Type: eraftpb.MsgAppResp.Enum(), To: u(1), From: u(2), Term: u(7), Index: u(43), Commit: u(40)},
		{Type: eraftpb.MsgAppResp.Enum(), To: u(1), From: u(3), Term: u(7), Index: u(40), Reject: proto.Bool(true), RejectHint: u(38), LogTerm: u(6)},
		{Type: eraftpb.MsgHeartbeat.Enum(), To: u(2), From: u(1), Term: u(7), Commit: u(43), Context: []byte("read-ctx")},
		{Type: eraftpb.MsgHeartbeatResp.Enum(), To: u(1), From: u(2), Term: u(7), Context: []byte{}},
		{Type: eraftpb.MsgPreVote.Enum(), To: u(2), From: u(3), Term: u(8), LogTerm: u(7), Index: u(43)},
		{Type: eraftpb.MsgVoteResp.Enum(), To: u(3), From: u(2), Term: u(8), Reject: proto.Bool(false)},
		{Type: eraftpb.MsgReadIndex.Enum(), To: u(1), From: u(2), Term: u(7), Entries: []*eraftpb.Entry{{Data: []byte("ctx")}}},
		{Type: eraftpb.MsgProp.Enum(), To: u(1), From: u(2), Entries: []*eraftpb.Entry{{Data: []byte("proposal")}}},
		{Type: eraftpb.MsgHup.Enum()},
		{},
	}
}

// TestDecodeMessageFast: the messages stores send are decoded without
// proto.Unmarshal, to the same message, in three heap objects or fewer
// (one for proto.Unmarshal's many per field and entry).
func TestDecodeMessageFast(t *testing.T) {
	for _, want := range sentMessages() {
		b, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeMessageFast(b)
		if !ok {
			t.Errorf("%v: left to proto.Unmarshal", want)
			continue
		}
		if !proto.Equal(got, want) {
			t.Errorf("decoded %v, want %v", got, want)
		}
		allocs := testing.AllocsPerRun(20, func() { decodeMessageFast(b) })
		slow := testing.AllocsPerRun(20, func() { _ = proto.Unmarshal(b, &eraftpb.Message{}) })
		if limit := 3.0; allocs > limit || (len(want.GetEntries()) > 0 && allocs >= slow) {
			t.Errorf("%v: %v allocations (proto.Unmarshal %v), want at most %v", want.GetType(), allocs, slow, limit)
		}
	}
	// What it leaves to proto.Unmarshal.
	snap := &eraftpb.Message{Type: eraftpb.MsgSnap.Enum(), Snapshot: &eraftpb.Snapshot{Data: []byte("s")}}
	resp := &eraftpb.Message{Type: eraftpb.MsgStorageAppend.Enum(), Responses: []*eraftpb.Message{{}}}
	for _, m := range []*eraftpb.Message{snap, resp} {
		b, _ := proto.Marshal(m)
		if _, ok := decodeMessageFast(b); ok {
			t.Errorf("%v decoded by the fast path", m)
		}
		if got, err := decodeMessage(b); err != nil || !proto.Equal(got, m) {
			t.Errorf("decodeMessage(%v) = %v, %v", m, got, err)
		}
	}
	for _, bad := range [][]byte{{0x08}, {0x3a, 0x05, 0x10}, {0x08, 0xff, 0xff, 0xff, 0xff, 0x0f}, {0x3a, 0x02, 0x08, 0x63}} {
		if m, ok := decodeMessageFast(bad); ok {
			t.Errorf("%x decoded as %v", bad, m)
		}
	}
}

// FuzzDecodeMessage: whatever bytes arrive, decodeMessageFast either
// leaves them to proto.Unmarshal or decodes them to exactly the message
// proto.Unmarshal does.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sentMessages() {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x08, 0x63})                         // an unknown message type
	f.Add([]byte{0x3a, 0x02, 0x08, 0x63})             // an entry of an unknown type
	f.Add([]byte{0x10, 0x01, 0x10, 0x02})             // a field given twice
	f.Add([]byte{0x62, 0x00, 0x3a, 0x02, 0x22, 0x00}) // empty context and data
	f.Add([]byte{0xa0, 0x01, 0x01})                   // an unknown field
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeMessageFast(b)
		if !ok {
			return
		}
		want := &eraftpb.Message{}
		if err := proto.Unmarshal(b, want); err != nil {
			t.Fatalf("fast path decoded %x, which proto.Unmarshal refuses: %v", b, err)
		}
		if !proto.Equal(fast, want) {
			t.Fatalf("%x: fast path %v, proto.Unmarshal %v", b, fast, want)
		}
		// decodeMessage, which Step calls, gives the same message.
		again, _ := decodeMessage(b)
		if !proto.Equal(again, want) {
			t.Fatalf("%x: decodeMessage %v, want %v", b, again, want)
		}
	})
}
