package server

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
)

func TestNamespaceRowRoundTrip(t *testing.T) {
	rec := &storepb.NamespaceRecord{Name: "logs", Mode: ModeStrong, Version: 99, Epoch: 3, GroupId: 2, GroupPeers: []uint64{1, 2}, Force: true}
	val, err := encodeNamespace(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeNamespace(NamespaceKey("logs"), []byte(val), 42)
	if err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(rec).(*storepb.NamespaceRecord)
	want.Version = 42 // the revision, not what was encoded
	if !proto.Equal(got, want) {
		t.Fatalf("decoded %v, want %v", got, want)
	}
	for _, tc := range []struct {
		key string
		val []byte
		rev int64
	}{
		{NamespaceKey("other"), []byte(val), 42},  // row of another name
		{"/rdb/stores/1", []byte(val), 42},        // not a namespace key
		{NamespaceKey(""), []byte(val), 42},       // no name
		{NamespaceKey("logs"), []byte{0xff}, 42},  // not a record
		{NamespaceKey("logs"), []byte(val), 0},    // no revision
		{NamespaceKey("Logs"), []byte(val), 42},   // invalid name
		{NamespaceKey("logs/x"), []byte(val), 42}, // invalid name
	} {
		if _, err := decodeNamespace(tc.key, tc.val, tc.rev); err == nil {
			t.Errorf("decodeNamespace(%q, %x, %d) succeeded", tc.key, tc.val, tc.rev)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "logs": true, "a_b-c9": true, strings.Repeat("z", 64): true,
		"": false, strings.Repeat("z", 65): false, "A": false, "a.b": false, "a b": false, "a/b": false, "ü": false,
	} {
		if validName(name) != want {
			t.Errorf("validName(%q) = %v", name, !want)
		}
	}
}

// FuzzDecodeNamespace: any bytes from etcd decode to a record of the key's
// namespace at the key's revision, or to an error; never a panic.
func FuzzDecodeNamespace(f *testing.F) {
	val, _ := encodeNamespace(&storepb.NamespaceRecord{Name: "logs", Mode: ModeEventual, Epoch: 1})
	f.Add("logs", []byte(val), int64(7))
	f.Add("", []byte{}, int64(0))
	f.Add("a/b", []byte{0x0a, 0x01, 'x'}, int64(-1))
	f.Fuzz(func(t *testing.T, name string, value []byte, rev int64) {
		rec, err := decodeNamespace(NamespaceKey(name), value, rev)
		if err != nil {
			return
		}
		if rec.GetName() != name || !validName(name) || rec.GetVersion() != uint64(rev) || rev <= 0 {
			t.Fatalf("decoded %v from %q at %d", rec, name, rev)
		}
	})
}

// FuzzDecodeStore: a store row decodes only under its own key.
func FuzzDecodeStore(f *testing.F) {
	val, _ := proto.Marshal(&storepb.StoreInfo{Id: 3, Addr: "127.0.0.1:1"})
	f.Add(uint64(3), val)
	f.Add(uint64(0), []byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, id uint64, value []byte) {
		info, err := decodeStore(storeKey(id), value)
		if err == nil && info.GetId() != id {
			t.Fatalf("row of store %d decoded as store %d", id, info.GetId())
		}
	})
}
