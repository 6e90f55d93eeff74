package lww

// FuzzHandleRepair and FuzzHandleDigest: the anti-entropy calls another
// store (or anyone) makes, with arbitrary requests. The engine never
// panics; a malformed request is answered InvalidArgument and changes
// nothing; a well-formed one succeeds.

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
)

// fuzzEngine is one engine over an in-memory DB, not started (no peers,
// no background loops), for the whole fuzz process.
func fuzzEngine(f *testing.F) *Engine {
	opts := &pebble.Options{FS: vfs.NewMem(), Logger: quietPebble{}}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open("", opts)
	if err != nil {
		f.Fatal(err)
	}
	clock, err := hlc.New(hlc.Config{StoreID: 1, Physical: func() int64 { return time.Now().UnixNano() }, Persist: persistClockBound(db)})
	if err != nil {
		f.Fatal(err)
	}
	eng, err := New(Config{StoreID: 1, DB: db, Clock: clock, Logger: zap.NewNop()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		_ = eng.Close()
		_ = db.Close()
	})
	return eng
}

func wire(f *testing.F, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func FuzzHandleRepair(f *testing.F) {
	now := time.Now().UnixNano()
	for _, req := range []*storepb.RepairRequest{
		{FromStore: 2, Namespace: "ns", Buckets: []uint32{0, 1, NumBuckets - 1}, Records: []*storepb.LWWRecord{rec("a", "v", now, 0, 2), tomb("b", now, 1, 2)}},
		{FromStore: 2, Namespace: "ns", Records: []*storepb.LWWRecord{rec("c", "v", now-int64(time.Hour), 0, 2)}},
		{FromStore: 2, Namespace: "ns", Buckets: []uint32{NumBuckets}},
		{FromStore: 2, Namespace: "NS!"},
		{FromStore: 2, Namespace: "ns", Records: []*storepb.LWWRecord{{Key: []byte("nots")}}},
		{FromStore: 2, Namespace: "ns", Records: []*storepb.LWWRecord{rec("ahead", "v", now+int64(time.Hour), 0, 2)}},
		{FromStore: 2, Namespace: "ns", Records: []*storepb.LWWRecord{rec("max", "v", 1<<63-1, 1<<32-1, 1<<64-1)}},
		{},
	} {
		f.Add(wire(f, req))
	}
	eng := fuzzEngine(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &storepb.RepairRequest{}
		if proto.Unmarshal(data, req) != nil {
			return // gRPC refuses it before the engine sees it
		}
		malformed := validRecords(req.GetNamespace(), req.GetRecords()) != nil
		for _, b := range req.GetBuckets() {
			malformed = malformed || b >= NumBuckets
		}
		before := eng.Stats().Received
		resp, err := eng.HandleRepair(context.Background(), req)
		switch {
		case malformed && status.Code(err) != codes.InvalidArgument:
			t.Fatalf("malformed request answered %v", err)
		case malformed && eng.Stats().Received != before:
			t.Fatal("records of a malformed request were taken")
		case !malformed && err != nil:
			t.Fatalf("well-formed request answered %v", err)
		}
		for _, r := range resp.GetRecords() {
			if err := validRecord(r); err != nil {
				t.Fatalf("answered an invalid record: %v", err)
			}
		}
	})
}

func FuzzHandleDigest(f *testing.F) {
	for _, req := range []*storepb.DigestRequest{
		{Namespace: "ns"},
		{Namespace: "ns", BeforeWall: time.Now().UnixNano()},
		{Namespace: "ns", BeforeWall: -1},
		{Namespace: "ns", BeforeWall: 1<<63 - 1},
		{Namespace: "NS!"},
		{},
	} {
		f.Add(wire(f, req))
	}
	eng := fuzzEngine(f)
	// Records in a few epochs, so that digests have something to fold.
	now := time.Now().UnixNano()
	for i := range 4 {
		if _, err := eng.Merge("ns", []*storepb.LWWRecord{rec("k"+string(rune('a'+i)), "v", now-int64(i)*int64(time.Minute), 0, 2)}, true); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &storepb.DigestRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		malformed := validNamespace(req.GetNamespace()) != nil
		resp, err := eng.HandleDigest(context.Background(), req)
		switch {
		case malformed && status.Code(err) != codes.InvalidArgument:
			t.Fatalf("malformed request answered %v", err)
		case !malformed && err != nil:
			t.Fatalf("well-formed request answered %v", err)
		case !malformed && (!resp.GetServing() || len(resp.GetBuckets()) != NumBuckets):
			t.Fatalf("answered %d buckets, serving %v", len(resp.GetBuckets()), resp.GetServing())
		}
	})
}
