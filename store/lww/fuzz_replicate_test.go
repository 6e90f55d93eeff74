package lww

// FuzzApplyReplicateBatch: the intake of a pushed ReplicateBatch, any
// batch gRPC decodes. HandleReplicate checks it (ValidateReplicateBatch)
// and hands it to applyReplicateBatch. The engine never panics; a
// malformed batch is answered InvalidArgument and takes none of its
// records, not even those of its well-formed namespaces; a well-formed one
// is taken: every record is applied by the merge rule, except those whose
// timestamp is too far ahead of the local clock (refused one by one and
// counted, the batch still succeeds) and tombstones older than the grace
// (ignored); a unit (a batch write) is taken whole, or refused whole when
// one of its records is too far ahead. Applying the same batch again
// changes nothing.

import (
	"context"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/keys"
)

// batchStream is a Replicate stream that delivers its batches, then EOF.
// Only the methods HandleReplicate calls are implemented.
type batchStream struct {
	storepb.StoreInternal_ReplicateServer
	batches []*storepb.ReplicateBatch
	closed  int
}

func (s *batchStream) Context() context.Context { return context.Background() }

func (s *batchStream) Recv() (*storepb.ReplicateBatch, error) {
	if len(s.batches) == 0 {
		return nil, io.EOF
	}
	b := s.batches[0]
	s.batches = s.batches[1:]
	return b, nil
}

func (s *batchStream) SendAndClose(*storepb.ReplicateDone) error { s.closed++; return nil }

func FuzzApplyReplicateBatch(f *testing.F) {
	now := time.Now().UnixNano()
	hour, day := int64(time.Hour), int64(24*time.Hour)
	group := func(ns string, recs ...*storepb.LWWRecord) *storepb.NamespaceRecords {
		return &storepb.NamespaceRecords{Namespace: ns, Records: recs}
	}
	unit := func(ns string, recs ...*storepb.LWWRecord) *storepb.NamespaceRecords {
		return &storepb.NamespaceRecords{Namespace: ns, Records: recs, Unit: true}
	}
	batch := func(groups ...*storepb.NamespaceRecords) *storepb.ReplicateBatch {
		return &storepb.ReplicateBatch{FromStore: 2, Namespaces: groups}
	}
	for _, b := range []*storepb.ReplicateBatch{
		// Well-formed.
		batch(group("logs", rec("a", "1", now, 0, 2), tomb("b", now, 1, 2)),
			group("my-ns_2", rec("c", "", now, 2, 2)), group("z", rec("a", "other", now-hour, 0, 3))),
		batch(group("logs", tomb("a", now+1, 0, 2), tomb("gone", now-2*day, 0, 2), tomb("gone2", now-hour, 0, 2))),
		batch(group("logs", rec("dup", "old", now-hour, 0, 2), rec("dup", "new", now, 0, 3), tomb("dup", now, 0, 3))),
		batch(group("logs", rec("soon", "v", now+int64(100*time.Millisecond), 0, 2), rec("ahead", "v", now+hour, 0, 2),
			rec("mixed", "v", now+hour, 0, 2), rec("mixed", "w", now, 0, 2))),
		batch(group("logs", rec("max", "v", math.MaxInt64, math.MaxUint32, math.MaxUint64), tomb("maxt", math.MaxInt64, 0, 1))),
		batch(group("logs", rec("early", "v", 1, 0, 0), rec("neg", "v", -1, 0, 2), rec("logical", "v", 0, 1, 0))),
		batch(group(strings.Repeat("n", api.MaxNamespaceLen), rec(strings.Repeat("k", api.MaxKeyBytes), strings.Repeat("v", 1024), now, math.MaxUint32, 2))),
		batch(group("empty")),
		// Units: taken whole, or refused whole.
		batch(unit("logs", rec("u1", "1", now, 0, 2), rec("u2", "2", now, 1, 2), tomb("u3", now, 2, 2)), group("logs", rec("single", "s", now, 3, 2))),
		batch(unit("logs", rec("u1", "late", now, 5, 2), rec("u4", "ahead", now+hour, 0, 2))),
		batch(unit("logs", rec("dup", "a", now, 0, 2), rec("dup", "b", now, 1, 2)), unit("other")),
		batch(unit("logs", rec("bad", "v", now, 0, 2), rec("", "v", now, 1, 2))),
		{FromStore: 2},
		{},
		// Malformed: refused whole, the valid group before the bad one too.
		batch(group("logs", rec("taken?", "v", now, 0, 2)), group("NS!", rec("a", "v", now, 0, 2))),
		batch(group("logs", rec("taken?", "v", now, 0, 2)), group("logs", &storepb.LWWRecord{Key: []byte("nots")})),
		batch(group("logs", rec("zero", "v", 0, 0, 0))),
		batch(group("logs", &storepb.LWWRecord{Key: []byte("t"), Value: []byte("x"), Tombstone: true, Ts: &storepb.Timestamp{WallTime: now}})),
		batch(group("logs", rec("", "v", now, 0, 2))),
		batch(group("logs", rec(strings.Repeat("k", api.MaxKeyBytes+1), "v", now, 0, 2))),
		batch(group("", rec("a", "v", now, 0, 2))),
		batch(group(strings.Repeat("n", api.MaxNamespaceLen+1), rec("a", "v", now, 0, 2))),
	} {
		f.Add(wire(f, b))
	}
	eng := fuzzEngine(f)
	maxOffset := int64(eng.clock.MaxOffset())
	grace := int64(eng.cfg.TombstoneGrace)
	f.Fuzz(func(t *testing.T, data []byte) {
		b := &storepb.ReplicateBatch{}
		if proto.Unmarshal(data, b) != nil {
			return // gRPC refuses it before the engine sees it
		}
		malformed := ValidateReplicateBatch(b) != nil
		// The digests of every namespace the batch names that could hold
		// records.
		digests := func() map[string][]uint64 {
			out := map[string][]uint64{}
			for _, nr := range b.GetNamespaces() {
				if validNamespace(nr.GetNamespace()) == nil {
					out[nr.GetNamespace()] = eng.Digests(nr.GetNamespace())
				}
			}
			return out
		}
		before, digBefore := eng.Stats(), digests()
		t0 := time.Now().UnixNano()
		stream := &batchStream{batches: []*storepb.ReplicateBatch{b}}
		err := eng.HandleReplicate(stream)
		t1 := time.Now().UnixNano()
		after := eng.Stats()
		if malformed {
			switch {
			case status.Code(err) != codes.InvalidArgument:
				t.Fatalf("malformed batch answered %v", err)
			case stream.closed != 0:
				t.Fatal("malformed batch answered with success")
			case after.Received != before.Received || after.Refused != before.Refused:
				t.Fatalf("malformed batch counted: received %d -> %d, refused %d -> %d",
					before.Received, after.Received, before.Refused, after.Refused)
			}
			for ns, d := range digests() {
				if !slices.Equal(d, digBefore[ns]) {
					t.Fatalf("malformed batch changed namespace %q", ns)
				}
			}
			return
		}
		if err != nil || stream.closed != 1 {
			t.Fatalf("well-formed batch answered %v (closed %d times)", err, stream.closed)
		}

		// The clock reads physical time once per record during the call,
		// somewhere in [t0, t1]: a record is surely refused above
		// t1+maxOffset, surely taken at or below t0+maxOffset.
		var total, refused, unsure uint64
		maybeRefusedUnit := map[*storepb.NamespaceRecords]bool{}
		for _, nr := range b.GetNamespaces() {
			var groupRefused, groupUnsure uint64
			for _, r := range nr.GetRecords() {
				switch w := r.GetTs().GetWallTime(); {
				case w > t1 && uint64(w-t1) > uint64(maxOffset):
					groupRefused++
				case w > t0 && uint64(w-t0) > uint64(maxOffset):
					groupUnsure++
				}
			}
			n := uint64(len(nr.GetRecords()))
			total += n
			if nr.GetUnit() && groupRefused+groupUnsure > 0 {
				// Refused whole: surely if one record surely is.
				maybeRefusedUnit[nr] = true
				if groupRefused > 0 {
					refused += n
				} else {
					unsure += n
				}
				continue
			}
			refused += groupRefused
			unsure += groupUnsure
		}
		if got := after.Received - before.Received; got != total {
			t.Fatalf("received %d records of %d", got, total)
		}
		if got := after.Refused - before.Refused; got < refused || got > refused+unsure {
			t.Fatalf("refused %d records, want %d to %d", got, refused, refused+unsure)
		}
		for _, nr := range b.GetNamespaces() {
			ns := nr.GetNamespace()
			for _, r := range nr.GetRecords() {
				if maybeRefusedUnit[nr] {
					break // maybe none of it was taken
				}
				s, err := eng.readRecord(keys.LWWKey(ns, r.GetKey()))
				if err != nil {
					t.Fatal(err)
				}
				// Nothing too far ahead of the clock is ever stored.
				if s != nil && s.ts.Wall > time.Now().UnixNano()+maxOffset {
					t.Fatalf("%s/%q holds %v, too far ahead of the clock", ns, r.GetKey(), s.ts)
				}
				w := r.GetTs().GetWallTime()
				taken := w <= t0 || uint64(w-t0) <= uint64(maxOffset)
				ignored := r.GetTombstone() && w < t1-grace // maybe ignored, as older than the grace
				if !taken || ignored {
					continue
				}
				if s == nil {
					t.Fatalf("%s/%q: record %v not applied", ns, r.GetKey(), r)
				}
				if got := s.toProto(r.GetKey()); Newer(r, got) {
					t.Fatalf("%s/%q holds %v, older than the received %v", ns, r.GetKey(), got, r)
				}
			}
		}

		// Again, as a retried push or a repair would bring it: nothing
		// changes, unless a record refused the first time is now within
		// the offset.
		digAfter := digests()
		if err := eng.applyReplicateBatch(b); err != nil {
			t.Fatalf("second apply: %v", err)
		}
		t2 := time.Now().UnixNano()
		for _, nr := range b.GetNamespaces() {
			for _, r := range nr.GetRecords() {
				if w := r.GetTs().GetWallTime(); w > t0 && uint64(w-t0) > uint64(maxOffset) && (w <= t2 || uint64(w-t2) <= uint64(maxOffset)) {
					return
				}
			}
		}
		for ns, d := range digests() {
			if !slices.Equal(d, digAfter[ns]) {
				t.Fatalf("applying the batch again changed namespace %q", ns)
			}
		}
	})
}
