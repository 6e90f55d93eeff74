package keys

import (
	"bytes"
	"sort"
	"testing"
)

func TestLogKeysSortByIndex(t *testing.T) {
	var ks [][]byte
	for _, i := range []uint64{300, 2, 1 << 40, 9, 256} {
		ks = append(ks, LogEntry(7, i))
	}
	sort.Slice(ks, func(a, b int) bool { return bytes.Compare(ks[a], ks[b]) < 0 })
	var got []uint64
	for _, k := range ks {
		i, err := LogIndex(k)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, i)
	}
	want := []uint64{2, 9, 256, 300, 1 << 40}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sorted indexes = %v, want %v", got, want)
		}
	}
}

func TestGroupsDoNotOverlap(t *testing.T) {
	// Every key of group 1 sorts before every key of group 2, and the raft
	// prefix of a group covers its hard state, applied state and log.
	for _, k := range [][]byte{HardState(1), Applied(1), Truncated(1), LogEntry(1, 1<<63)} {
		if !bytes.HasPrefix(k, RaftPrefix(1)) {
			t.Fatalf("%q is not under %q", k, RaftPrefix(1))
		}
		if bytes.Compare(k, RaftPrefix(2)) >= 0 {
			t.Fatalf("%q sorts after group 2", k)
		}
		if g, ok := GroupOfRaftKey(k); !ok || g != 1 {
			t.Fatalf("GroupOfRaftKey(%q) = %d, %v", k, g, ok)
		}
		if bytes.Compare(k, RaftGroupsStart()) < 0 || bytes.Compare(k, RaftGroupsEnd()) >= 0 {
			t.Fatalf("%q outside the raft range", k)
		}
	}
	if !bytes.HasPrefix(StrongKey(3, []byte("a")), StatePrefix(3)) || !bytes.HasPrefix(GroupState(3), StatePrefix(3)) {
		t.Fatal("a group's state keys are not under its state prefix")
	}
	if bytes.HasPrefix(StrongKey(3, []byte("state")), GroupState(3)) {
		t.Fatal("a user key can collide with the group state key")
	}
}

func TestLWWKeys(t *testing.T) {
	k := LWWKey("logs", []byte("a/b"))
	ns, key, ok := SplitLWWKey(k)
	if !ok || ns != "logs" || string(key) != "a/b" {
		t.Fatalf("SplitLWWKey(%q) = %q, %q, %v", k, ns, key, ok)
	}
	// The prefix of "log" does not cover "logs".
	if bytes.HasPrefix(LWWKey("logs", []byte("x")), LWWPrefix("log")) {
		t.Fatal("namespace prefixes overlap")
	}
	for _, bad := range [][]byte{nil, []byte("e/"), []byte("e//x"), []byte("r/abc")} {
		if _, _, ok := SplitLWWKey(bad); ok {
			t.Fatalf("SplitLWWKey(%q) accepted a malformed key", bad)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte("a"), []byte("b")},
		{[]byte{'a', 0xff}, []byte("b")},
		{[]byte{0xff, 0xff}, nil},
	} {
		if got := PrefixEnd(tc.in); !bytes.Equal(got, tc.want) {
			t.Fatalf("PrefixEnd(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	p := LWWPrefix("ns")
	if bytes.Compare(LWWKey("ns", []byte{0xff, 0xff}), PrefixEnd(p)) >= 0 {
		t.Fatal("a key of the namespace sorts after its prefix end")
	}
}

func FuzzLogIndex(f *testing.F) {
	f.Add([]byte{})
	f.Add(LogEntry(1, 5))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := LogIndex(b); err != nil && len(b) >= 8 {
			t.Fatalf("LogIndex rejected %d bytes", len(b))
		}
	})
}
