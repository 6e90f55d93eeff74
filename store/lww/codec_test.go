package lww

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/hlc"
)

func TestCodecRoundTrip(t *testing.T) {
	tests := []record{
		{ts: hlc.Timestamp{Wall: 1, Logical: 0, StoreID: 1}, value: []byte("v")},
		{ts: hlc.Timestamp{Wall: 1 << 62, Logical: 1<<32 - 1, StoreID: 1<<64 - 1}, value: bytes.Repeat([]byte{0xff}, api.MaxValueBytes)},
		{ts: hlc.Timestamp{Wall: 5, Logical: 2, StoreID: 3}},
		{ts: hlc.Timestamp{Wall: 5, Logical: 2, StoreID: 3}, tombstone: true},
		{ts: hlc.Timestamp{Wall: -7, StoreID: 3}, value: []byte{0}},
	}
	for _, r := range tests {
		b := encodeValue(r)
		got, err := decodeValue(b)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", r.ts, err)
		}
		if got.ts != r.ts || got.tombstone != r.tombstone || !bytes.Equal(got.value, r.value) {
			t.Fatalf("round trip: got %+v, want %+v", got.ts, r.ts)
		}
		if !bytes.Equal(encodeValue(got), b) {
			t.Fatalf("re-encoding differs")
		}
	}
}

func TestDecodeValueErrors(t *testing.T) {
	good := encodeValue(record{ts: hlc.Timestamp{Wall: 1, StoreID: 1}, value: []byte("x")})
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := map[string][]byte{
		"empty":               nil,
		"short header":        good[:headerLen-1],
		"unknown version":     with(func(b []byte) []byte { b[0] = 2; return b }),
		"unknown flag":        with(func(b []byte) []byte { b[1] = 0x82; return b }),
		"tombstone has value": with(func(b []byte) []byte { b[1] = flagTombstone; return b }),
		"zero timestamp":      encodeValue(record{value: []byte("x")}),
		"oversize value":      append(bytes.Clone(good[:headerLen]), make([]byte, api.MaxValueBytes+1)...),
	}
	for name, b := range tests {
		if _, err := decodeValue(b); err == nil || !errors.Is(err, errCorrupt) {
			t.Errorf("%s: decodeValue = %v, want a corruption error", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeValue(f *testing.F) {
	f.Add(encodeValue(record{ts: hlc.Timestamp{Wall: 1, StoreID: 1}, value: []byte("hello")}))
	f.Add(encodeValue(record{ts: hlc.Timestamp{Wall: 99, Logical: 3, StoreID: 2}, tombstone: true}))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeValue(b)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v does not wrap errCorrupt", err)
			}
			return
		}
		// The encoding is canonical: what decodes re-encodes to itself.
		if got := encodeValue(r); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, want %x", got, b)
		}
	})
}

func rec(key, value string, wall int64, logical uint32, store uint64) *storepb.LWWRecord {
	r := &storepb.LWWRecord{Key: []byte(key), Ts: &storepb.Timestamp{WallTime: wall, Logical: logical, StoreId: store}}
	if value != "" {
		r.Value = []byte(value)
	}
	return r
}

func tomb(key string, wall int64, logical uint32, store uint64) *storepb.LWWRecord {
	r := rec(key, "", wall, logical, store)
	r.Tombstone = true
	return r
}

func TestNewer(t *testing.T) {
	tests := []struct {
		name string
		a, b *storepb.LWWRecord
		want bool // Newer(a, b); Newer(b, a) must then be false
	}{
		{"greater wall", rec("k", "a", 2, 0, 1), rec("k", "b", 1, 9, 9), true},
		{"greater logical", rec("k", "a", 2, 1, 1), rec("k", "b", 2, 0, 9), true},
		{"store id breaks a tie", rec("k", "a", 2, 1, 3), rec("k", "b", 2, 1, 2), true},
		{"tombstone wins an exact tie", tomb("k", 2, 1, 3), rec("k", "b", 2, 1, 3), true},
		{"older tombstone loses", tomb("k", 2, 1, 2), rec("k", "b", 2, 1, 3), false},
		{"greater value wins an exact value tie", rec("k", "b", 2, 1, 3), rec("k", "a", 2, 1, 3), true},
		{"anything wins over nil", rec("k", "a", 1, 0, 1), nil, true},
		{"nil never wins", nil, rec("k", "a", 1, 0, 1), false},
	}
	for _, tt := range tests {
		if got := Newer(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: Newer(a, b) = %v, want %v", tt.name, got, tt.want)
		}
		if tt.want && Newer(tt.b, tt.a) {
			t.Errorf("%s: Newer(b, a) is true as well", tt.name)
		}
	}
	same := rec("k", "v", 5, 5, 5)
	if Newer(same, rec("k", "v", 5, 5, 5)) {
		t.Error("identical records: one is newer")
	}
	if Newer(tomb("k", 5, 5, 5), tomb("k", 5, 5, 5)) {
		t.Error("identical tombstones: one is newer")
	}
}

func validBatch() *storepb.ReplicateBatch {
	return &storepb.ReplicateBatch{
		FromStore: 2,
		Namespaces: []*storepb.NamespaceRecords{
			{Namespace: "logs", Records: []*storepb.LWWRecord{rec("a", "1", 10, 0, 2), tomb("b", 11, 0, 2)}},
			{Namespace: "my-ns_2", Records: []*storepb.LWWRecord{rec("c", "", 12, 1, 2)}},
		},
	}
}

func TestValidateReplicateBatch(t *testing.T) {
	if err := ValidateReplicateBatch(validBatch()); err != nil {
		t.Fatalf("valid batch refused: %v", err)
	}
	bad := map[string]func(b *storepb.ReplicateBatch){
		"empty namespace":      func(b *storepb.ReplicateBatch) { b.Namespaces[0].Namespace = "" },
		"upper-case namespace": func(b *storepb.ReplicateBatch) { b.Namespaces[0].Namespace = "Logs" },
		"slash in namespace":   func(b *storepb.ReplicateBatch) { b.Namespaces[0].Namespace = "a/b" },
		"long namespace":       func(b *storepb.ReplicateBatch) { b.Namespaces[0].Namespace = strings.Repeat("a", 65) },
		"empty key":            func(b *storepb.ReplicateBatch) { b.Namespaces[0].Records[0].Key = nil },
		"long key":             func(b *storepb.ReplicateBatch) { b.Namespaces[0].Records[0].Key = make([]byte, api.MaxKeyBytes+1) },
		"oversize value":       func(b *storepb.ReplicateBatch) { b.Namespaces[0].Records[0].Value = make([]byte, api.MaxValueBytes+1) },
		"no timestamp":         func(b *storepb.ReplicateBatch) { b.Namespaces[0].Records[0].Ts = nil },
		"zero timestamp":       func(b *storepb.ReplicateBatch) { b.Namespaces[0].Records[0].Ts = &storepb.Timestamp{} },
		"tombstone with value": func(b *storepb.ReplicateBatch) { b.Namespaces[0].Records[1].Value = []byte("x") },
		"nil record":           func(b *storepb.ReplicateBatch) { b.Namespaces[1].Records[0] = nil },
		"nil group":            func(b *storepb.ReplicateBatch) { b.Namespaces[1] = nil },
	}
	for name, mutate := range bad {
		b := validBatch()
		mutate(b)
		if err := ValidateReplicateBatch(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: ValidateReplicateBatch = %v, want ErrInvalid", name, err)
		}
	}
	// Limits themselves are fine.
	b := validBatch()
	b.Namespaces[0].Namespace = strings.Repeat("z", 64)
	b.Namespaces[0].Records[0].Key = make([]byte, api.MaxKeyBytes)
	b.Namespaces[0].Records[0].Value = make([]byte, api.MaxValueBytes)
	if err := ValidateReplicateBatch(b); err != nil {
		t.Fatalf("batch at the limits refused: %v", err)
	}
}

func TestDecodeReplicateBatch(t *testing.T) {
	wire, err := proto.Marshal(validBatch())
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeReplicateBatch(wire)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, validBatch()) {
		t.Fatalf("decoded %v", got)
	}
	if _, err := DecodeReplicateBatch([]byte{0xff, 0xff}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("garbage: %v", err)
	}
}

func FuzzDecodeReplicateBatch(f *testing.F) {
	for _, b := range []*storepb.ReplicateBatch{validBatch(), {}, {FromStore: 1, Namespaces: []*storepb.NamespaceRecords{{Namespace: "x"}}}} {
		wire, err := proto.Marshal(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
	}
	bad := validBatch()
	bad.Namespaces[0].Records[0].Ts = nil
	wire, _ := proto.Marshal(bad)
	f.Add(wire)
	f.Add([]byte{0x12, 0x03, 0x0a, 0x01, 'A'})
	f.Fuzz(func(t *testing.T, b []byte) {
		batch, err := DecodeReplicateBatch(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, nr := range batch.Namespaces {
			if validNamespace(nr.Namespace) != nil {
				t.Fatalf("accepted namespace %q", nr.Namespace)
			}
			for _, r := range nr.Records {
				if validRecord(r) != nil || len(r.Key) == 0 || r.Ts == nil {
					t.Fatalf("accepted record %v", r)
				}
				// Every accepted record can be stored and read back.
				got, err := decodeValue(encodeValue(fromProto(r)))
				if err != nil {
					t.Fatalf("accepted record does not round-trip: %v", err)
				}
				if !bytes.Equal(got.value, r.Value) {
					t.Fatalf("value changed in the round trip")
				}
			}
		}
	})
}
