package transport_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"slices"
	"sync"
	"testing"

	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/transport"
)

// snapRecorder is a transport.Raft that records the snapshots stepped.
type snapRecorder struct {
	mu    sync.Mutex
	steps []recordedSnap
}

type recordedSnap struct {
	from, group uint64
	m           *eraftpb.Message
}

func (r *snapRecorder) Step(uint64, []*storepb.RaftMessage) {}
func (r *snapRecorder) StepSnapshot(from, group uint64, m *eraftpb.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, recordedSnap{from, group, m})
}
func (r *snapRecorder) StreamSnapshot([]byte, func([]byte) error) error { return nil }
func (r *snapRecorder) StageSnapshot(uint64, *eraftpb.SnapshotMetadata) (transport.SnapshotStage, error) {
	return &memStage{}, nil
}
func (r *snapRecorder) ReportUnreachable(uint64)            {}
func (r *snapRecorder) ReportSnapshot(uint64, uint64, bool) {}

func (r *snapRecorder) take() []recordedSnap {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.steps
	r.steps = nil
	return s
}

// chunkStream is the server side of a Snapshot stream that receives the
// given chunks, then EOF (or err).
type chunkStream struct {
	grpc.ServerStream
	chunks []*storepb.SnapshotChunk
	err    error
	closed int
}

func (s *chunkStream) Context() context.Context { return context.Background() }

func (s *chunkStream) Recv() (*storepb.SnapshotChunk, error) {
	if len(s.chunks) == 0 {
		if s.err != nil {
			return nil, s.err
		}
		return nil, io.EOF
	}
	c := s.chunks[0]
	s.chunks = s.chunks[1:]
	return c, nil
}

func (s *chunkStream) SendAndClose(*storepb.SnapshotDone) error { s.closed++; return nil }

// encodeChunks is the fuzz input format: each chunk as a uvarint length
// and its protobuf encoding.
func encodeChunks(cs ...*storepb.SnapshotChunk) []byte {
	var out []byte
	for _, c := range cs {
		b, err := proto.Marshal(c)
		if err != nil {
			panic(err)
		}
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out
}

// decodeChunks parses the fuzz input; what does not parse ends the stream
// with an error, as a broken stream would.
func decodeChunks(data []byte) (cs []*storepb.SnapshotChunk, err error) {
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return cs, status.Error(codes.Internal, "broken stream")
		}
		c := &storepb.SnapshotChunk{}
		if proto.Unmarshal(data[k:k+int(n)], c) != nil {
			return cs, status.Error(codes.Internal, "broken stream")
		}
		cs = append(cs, c)
		data = data[k+int(n):]
	}
	return cs, nil
}

// FuzzHandleSnapshot: any sequence of chunks on a Snapshot stream; the
// transport never panics and steps at most one well-formed MsgSnap: the
// header's, from the sender the header names, with the chunks' data.
func FuzzHandleSnapshot(f *testing.F) {
	header := func(m *eraftpb.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	snap := header(snapMsg(2, 1, nil))
	hb := header(&eraftpb.Message{Type: eraftpb.MessageType_MsgHeartbeat.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Snapshot: &eraftpb.Snapshot{}})
	f.Add(encodeChunks(
		&storepb.SnapshotChunk{FromStore: 1, ToStore: 2, Message: &storepb.RaftMessage{GroupId: 7, Data: snap}, Data: []byte("abc")},
		&storepb.SnapshotChunk{FromStore: 1, ToStore: 2, Data: []byte("def")},
	))
	f.Add(encodeChunks(&storepb.SnapshotChunk{FromStore: 1, ToStore: 2, Message: &storepb.RaftMessage{GroupId: 7, Data: snap}}))
	f.Add(encodeChunks(&storepb.SnapshotChunk{FromStore: 1, ToStore: 2, Message: &storepb.RaftMessage{GroupId: 7, Data: hb}}))
	f.Add(encodeChunks(&storepb.SnapshotChunk{FromStore: 1, ToStore: 3, Message: &storepb.RaftMessage{GroupId: 7, Data: snap}}))
	f.Add(encodeChunks(&storepb.SnapshotChunk{FromStore: 1, ToStore: 2, Data: []byte("abc")}))
	f.Add([]byte{})
	f.Add([]byte{0xff})

	raft := &snapRecorder{}
	tr := transport.New(transport.Config{StoreID: 2})
	tr.SetRaft(raft)
	f.Cleanup(tr.Close)
	f.Fuzz(func(t *testing.T, data []byte) {
		chunks, streamErr := decodeChunks(data)
		stream := &chunkStream{chunks: slices.Clone(chunks), err: streamErr}
		err := tr.HandleSnapshot(stream)
		steps := raft.take()
		if len(steps) > 1 {
			t.Fatalf("stepped %d snapshots from one stream", len(steps))
		}
		if len(steps) == 0 {
			if err == nil {
				t.Fatal("stream accepted, nothing stepped")
			}
			return
		}
		if err != nil || stream.closed != 1 {
			t.Fatalf("stepped a snapshot, then answered %v (closed %d times)", err, stream.closed)
		}
		var first *storepb.SnapshotChunk
		var want []byte
		for _, c := range chunks {
			if c.GetToStore() != 2 {
				t.Fatalf("stepped a stream with a chunk for store %d", c.GetToStore())
			}
			if first == nil && c.GetMessage() != nil {
				first = c
			}
			want = append(want, c.GetData()...)
		}
		s := steps[0]
		if first == nil || s.from != first.GetFromStore() || s.group != first.GetMessage().GetGroupId() {
			t.Fatalf("stepped group %d from %d, not what the header chunk says", s.group, s.from)
		}
		if s.m.GetType() != eraftpb.MessageType_MsgSnap || s.m.GetSnapshot() == nil {
			t.Fatalf("stepped a %v", s.m.GetType())
		}
		if !bytes.Equal(s.m.GetSnapshot().GetData(), want) {
			t.Fatalf("stepped %d bytes of data, the chunks hold %d", len(s.m.GetSnapshot().GetData()), len(want))
		}
	})
}
