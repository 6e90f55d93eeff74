package rdbctl_test

// rdbctl's command tree, run in-process against real in-process store
// clusters (storetest): every command in both output formats, the exit
// codes, the wrong-mode and unknown-outcome errors, scans across pages,
// modes, $RDB_ENDPOINTS, TLS, and a cluster in PD mode.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/client"
	"github.com/rdb-project/rdb/store/rdbctl"
	"github.com/rdb-project/rdb/store/storetest"
)

func TestMain(m *testing.M) { pdtest.VerifyTestMain(m) }

type result struct {
	code           int
	stdout, stderr string
}

// run runs the command tree in-process. (Each request it sends is
// bounded by --request-timeout.)
func run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := rdbctl.Run(context.Background(), args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// ok runs rdbctl and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, args...)
	if r.code != rdbctl.ExitOK {
		t.Fatalf("rdbctl %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs rdbctl and fails the test unless it exits 1 with an error
// that says want.
func fails(t *testing.T, want string, args ...string) result {
	t.Helper()
	r := run(t, args...)
	if r.code != rdbctl.ExitError || !strings.Contains(r.stderr, want) {
		t.Fatalf("rdbctl %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.code, r.stderr, rdbctl.ExitError, want)
	}
	return r
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not the JSON document expected: %v\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", s)
	}
	return v
}

// The documents, as a user's program would read them.
type (
	getJSON struct {
		Namespace string `json:"namespace"`
		Mode      string `json:"mode"`
		Key       string `json:"key"`
		Found     bool   `json:"found"`
		Value     string `json:"value"`
		Version   uint64 `json:"version"`
	}
	hlcJSON struct {
		WallTime int64  `json:"wall_time"`
		Logical  uint32 `json:"logical"`
		StoreID  uint64 `json:"store_id"`
	}
	putJSON struct {
		Namespace     string   `json:"namespace"`
		Keys          []string `json:"keys"`
		Timestamp     hlcJSON  `json:"timestamp"`
		LastTimestamp hlcJSON  `json:"last_timestamp"`
	}
	casJSON struct {
		Namespace       string `json:"namespace"`
		Key             string `json:"key"`
		Succeeded       bool   `json:"succeeded"`
		ExpectedVersion uint64 `json:"expected_version"`
		Version         uint64 `json:"version"`
		Value           string `json:"value"`
	}
	delJSON struct {
		Namespace       string   `json:"namespace"`
		Mode            string   `json:"mode"`
		Key             string   `json:"key"`
		Deleted         bool     `json:"deleted"`
		Found           *bool    `json:"found"`
		ExpectedVersion uint64   `json:"expected_version"`
		Version         uint64   `json:"version"`
		Value           string   `json:"value"`
		Timestamp       *hlcJSON `json:"timestamp"`
	}
	kvJSON struct {
		Key     string `json:"key"`
		Value   string `json:"value"`
		Version uint64 `json:"version"`
	}
	scanJSON struct {
		Namespace string   `json:"namespace"`
		Mode      string   `json:"mode"`
		Start     string   `json:"start"`
		End       string   `json:"end"`
		Count     int      `json:"count"`
		More      bool     `json:"more"`
		KVs       []kvJSON `json:"kvs"`
	}
	modeJSON struct {
		Namespace   string `json:"namespace"`
		Mode        string `json:"mode"`
		State       string `json:"state"`
		Version     uint64 `json:"version"`
		FromDefault bool   `json:"from_default"`
		Leader      uint64 `json:"leader"`
	}
	modeSetJSON struct {
		Changed   bool     `json:"changed"`
		Namespace modeJSON `json:"namespace"`
	}
)

// endpoints is --endpoints naming the given stores of c (all without any).
func endpoints(c *storetest.Cluster, stores ...int) string {
	if len(stores) == 0 {
		for i := range c.N() {
			stores = append(stores, i)
		}
	}
	addrs := make([]string, len(stores))
	for i, s := range stores {
		addrs[i] = c.Addr(s)
	}
	return "--endpoints=" + strings.Join(addrs, ",")
}

// lines are the lines of a table, without the trailing newline.
func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

// fields are the columns of a table line.
func fields(line string) []string { return strings.Fields(line) }

// TestStrongNamespace: cas, get and del on a strong namespace, in both
// formats; a mismatch exits 1 with the key's current version and value.
func TestStrongNamespace(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{})
	eps := endpoints(c)

	created := decode[casJSON](t, ok(t, eps, "-o", "json", "cas", "default", "greeting", "hello", "--expect", "0"))
	if !created.Succeeded || created.Version == 0 || created.Value != "hello" || created.ExpectedVersion != 0 ||
		created.Namespace != "default" || created.Key != "greeting" {
		t.Fatalf("cas --expect 0 of a new key: %+v", created)
	}
	v1 := created.Version
	if out := ok(t, eps, "cas", "default", "other", "x", "--expect", "0"); !strings.HasPrefix(out, "wrote other in namespace default: version ") {
		t.Fatalf("cas table: %q", out)
	}

	got := decode[getJSON](t, ok(t, eps, "get", "default", "greeting", "-o", "json"))
	if got != (getJSON{Namespace: "default", Mode: "strong", Key: "greeting", Found: true, Value: "hello", Version: v1}) {
		t.Fatalf("get: %+v, want version %d", got, v1)
	}
	table := lines(ok(t, eps, "get", "default", "greeting"))
	if len(table) != 2 || !slicesEqual(fields(table[0]), "KEY", "VERSION", "VALUE") || !slicesEqual(fields(table[1]), "greeting", fmt.Sprint(v1), "hello") {
		t.Fatalf("get table:\n%s", strings.Join(table, "\n"))
	}

	// Mismatches: nothing written, exit 1, the current version and value.
	r := fails(t, fmt.Sprintf(`key "greeting" in namespace default exists, at version %d with value "hello"`, v1),
		eps, "cas", "default", "greeting", "bonjour", "--expect", "0")
	if r.stdout != "" {
		t.Errorf("a mismatch printed %q on stdout in a table", r.stdout)
	}
	r = fails(t, fmt.Sprintf("is at version %d, not %d", v1, v1+1000), eps, "-o", "json", "cas", "default", "greeting", "bonjour", "--expect", fmt.Sprint(v1+1000))
	if m := decode[casJSON](t, r.stdout); m.Succeeded || m.Version != v1 || m.Value != "hello" || m.ExpectedVersion != v1+1000 {
		t.Fatalf("cas mismatch document: %+v", m)
	}
	fails(t, `key "nobody" in namespace default does not exist (--expect 5)`, eps, "cas", "default", "nobody", "x", "--expect", "5")
	if got := decode[getJSON](t, ok(t, eps, "get", "default", "greeting", "-o", "json")); got.Value != "hello" || got.Version != v1 {
		t.Fatalf("after the mismatches: %+v", got)
	}

	swapped := decode[casJSON](t, ok(t, eps, "-o", "json", "cas", "default", "greeting", "bonjour", "--expect", fmt.Sprint(v1)))
	if !swapped.Succeeded || swapped.Version <= v1 || swapped.Value != "bonjour" {
		t.Fatalf("cas with the current version: %+v", swapped)
	}
	v2 := swapped.Version

	// del --expect with a stale version deletes nothing.
	fails(t, fmt.Sprintf("del not applied: key \"greeting\" in namespace default is at version %d, not %d (value \"bonjour\")", v2, v1),
		eps, "del", "default", "greeting", "--expect", fmt.Sprint(v1))
	del := decode[delJSON](t, ok(t, eps, "del", "default", "greeting", "--expect", fmt.Sprint(v2), "-o", "json"))
	if !del.Deleted || del.Found == nil || !*del.Found || del.Mode != "strong" || del.Timestamp != nil || del.ExpectedVersion != v2 {
		t.Fatalf("del --expect with the current version: %+v", del)
	}
	if got := decode[getJSON](t, ok(t, eps, "get", "default", "greeting", "-o", "json")); got.Found || got.Value != "" || got.Version != 0 {
		t.Fatalf("get after del: %+v", got)
	}
	if out := ok(t, eps, "get", "default", "greeting"); out != "greeting: not found in namespace default\n" {
		t.Fatalf("get table of a missing key: %q", out)
	}
	if out := ok(t, eps, "del", "default", "greeting"); out != "greeting: not found in namespace default; nothing to delete\n" {
		t.Fatalf("del table of a missing key: %q", out)
	}
	if d := decode[delJSON](t, ok(t, eps, "del", "default", "greeting", "-o", "json")); d.Deleted || d.Found == nil || *d.Found {
		t.Fatalf("del of a missing key: %+v", d)
	}
	fails(t, "does not exist (--expect 3)", eps, "del", "default", "greeting", "--expect", "3")
	if out := ok(t, eps, "del", "default", "other"); out != "deleted other from namespace default\n" {
		t.Fatalf("del table: %q", out)
	}

	// Values a table cannot show as they are are quoted; JSON has them exact.
	ok(t, eps, "cas", "default", "odd key", "a\tb\nc", "--expect", "0")
	ok(t, eps, "cas", "default", "empty", "", "--expect", "0")
	if got := decode[getJSON](t, ok(t, eps, "get", "default", "odd key", "-o", "json")); got.Value != "a\tb\nc" {
		t.Fatalf("get of a value with a tab and a newline: %+v", got)
	}
	if out := ok(t, eps, "get", "default", "odd key"); !strings.Contains(out, `odd key  `) || !strings.Contains(out, `"a\tb\nc"`) || len(lines(out)) != 2 {
		t.Fatalf("table of a value with a tab and a newline:\n%s", out)
	}
	if out := ok(t, eps, "get", "default", "empty"); !strings.HasSuffix(out, ` ""`+"\n") {
		t.Fatalf("table of an empty value:\n%s", out)
	}
}

func slicesEqual(got []string, want ...string) bool {
	return strings.Join(got, "\x00") == strings.Join(want, "\x00")
}

// TestEventualNamespace: put, get and del on an eventual namespace; the
// commands of the other mode say what to use instead.
func TestEventualNamespace(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})
	// One store: a raw read right after a raw write sees it there.
	eps := endpoints(c, 1)

	put := decode[putJSON](t, ok(t, eps, "-o", "json", "put", "logs", "line-1", "started"))
	if put.Namespace != "logs" || len(put.Keys) != 1 || put.Keys[0] != "line-1" || put.Timestamp.WallTime == 0 ||
		put.Timestamp.StoreID != 2 || put.LastTimestamp != put.Timestamp {
		t.Fatalf("put: %+v", put)
	}
	if out := ok(t, eps, "put", "logs", "line-2", "running"); !strings.HasPrefix(out, "wrote 1 key to namespace logs at ") || !strings.HasSuffix(out, " on store 2\n") {
		t.Fatalf("put table: %q", out)
	}
	got := decode[getJSON](t, ok(t, eps, "get", "logs", "line-1", "-o", "json"))
	if got != (getJSON{Namespace: "logs", Mode: "eventual", Key: "line-1", Found: true, Value: "started"}) {
		t.Fatalf("get: %+v", got)
	}
	if table := lines(ok(t, eps, "get", "logs", "line-2")); len(table) != 2 || !slicesEqual(fields(table[1]), "line-2", "-", "running") {
		t.Fatalf("get table:\n%s", strings.Join(table, "\n"))
	}
	// Replicated: every store has it soon.
	storetest.Eventually(t, 10*time.Second, func() error {
		for i := range c.N() {
			if g := decode[getJSON](t, ok(t, endpoints(c, i), "get", "logs", "line-1", "-o", "json")); !g.Found {
				return fmt.Errorf("store %d has no line-1", i+1)
			}
		}
		return nil
	}, "line-1 reaches every store")

	del := decode[delJSON](t, ok(t, eps, "del", "logs", "line-1", "-o", "json"))
	if !del.Deleted || del.Found != nil || del.Mode != "eventual" || del.Timestamp == nil || del.Timestamp.WallTime < put.Timestamp.WallTime {
		t.Fatalf("del: %+v", del)
	}
	if g := decode[getJSON](t, ok(t, eps, "get", "logs", "line-1", "-o", "json")); g.Found {
		t.Fatalf("get after del: %+v", g)
	}
	if out := ok(t, eps, "del", "logs", "line-2"); !strings.HasPrefix(out, "deleted line-2 from namespace logs at ") {
		t.Fatalf("del table: %q", out)
	}
	fails(t, "namespace logs is eventual: its keys have no versions, so --expect does not apply", eps, "del", "logs", "line-2", "--expect", "3")

	// Several pairs: one batch, from one store, so every key has a
	// timestamp of its range.
	b := decode[putJSON](t, ok(t, eps, "-o", "json", "put", "logs", "a", "1", "b", "2", "c", "3"))
	if !slicesEqual(b.Keys, "a", "b", "c") || b.Timestamp.WallTime == 0 || b.Timestamp.StoreID != 2 ||
		b.LastTimestamp.StoreID != 2 || b.LastTimestamp.WallTime < b.Timestamp.WallTime {
		t.Fatalf("batch put: %+v", b)
	}
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}} {
		if g := decode[getJSON](t, ok(t, eps, "get", "logs", kv[0], "-o", "json")); g.Value != kv[1] {
			t.Fatalf("after the batch put, %s: %+v", kv[0], g)
		}
	}
	if out := ok(t, eps, "put", "logs", "d", "4", "e", "5"); !strings.HasPrefix(out, "wrote 2 keys in one batch to namespace logs at ") {
		t.Fatalf("batch put table: %q", out)
	}
	fails(t, "namespace default is strong: put writes eventual namespaces", eps, "put", "default", "a", "1", "b", "2")

	// The other mode's commands.
	fails(t, "namespace default is strong: put writes eventual namespaces; write it with rdbctl cas (or make it eventual: rdbctl mode default eventual)",
		eps, "put", "default", "k", "v")
	fails(t, "namespace logs is eventual: cas writes strong namespaces; write it with rdbctl put (or make it strong: rdbctl mode logs strong)",
		eps, "cas", "logs", "k", "v", "--expect", "0")
}

// TestScan: scans by prefix, by range and with a limit, across many pages
// of both modes.
func TestScan(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})
	cl, err := client.New([]string{c.Addr(0)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	versions := map[string]uint64{}
	for _, k := range []string{"team/x", "user", "users"} {
		if _, err := cl.CompareAndSwap(ctx, "default", k, "other", 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 250 {
		k := fmt.Sprintf("user/%03d", i)
		res, err := cl.CompareAndSwap(ctx, "default", k, fmt.Sprintf("v%d", i), 0)
		if err != nil || !res.Success {
			t.Fatalf("CAS %s: %+v, %v", k, res, err)
		}
		versions[k] = res.Version
	}
	eps := endpoints(c)

	all := decode[scanJSON](t, ok(t, eps, "scan", "default", "--prefix", "user/", "--page-size", "7", "-o", "json"))
	if all.Count != 250 || len(all.KVs) != 250 || all.More || all.Mode != "strong" || all.Start != "user/" || all.End != "user0" {
		t.Fatalf("scan --prefix user/: count %d, more %v, mode %s, range [%q, %q)", all.Count, all.More, all.Mode, all.Start, all.End)
	}
	for i, kv := range all.KVs {
		k := fmt.Sprintf("user/%03d", i)
		if kv.Key != k || kv.Value != fmt.Sprintf("v%d", i) || kv.Version != versions[k] {
			t.Fatalf("key %d of the scan: %+v, want %s at version %d", i, kv, k, versions[k])
		}
	}

	// --limit across pages: the first keys, and "more".
	r := run(t, eps, "scan", "default", "--prefix", "user/", "--limit", "10", "--page-size", "3")
	table := lines(r.stdout)
	if r.code != 0 || len(table) != 11 || !slicesEqual(fields(table[0]), "KEY", "VERSION", "VALUE") ||
		!slicesEqual(fields(table[10]), "user/009", fmt.Sprint(versions["user/009"]), "v9") ||
		!strings.Contains(r.stderr, "more keys follow the first 10: raise --limit") {
		t.Fatalf("scan --limit 10 table (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	limited := decode[scanJSON](t, ok(t, eps, "scan", "default", "--prefix", "user/", "--limit", "10", "-o", "json"))
	if limited.Count != 10 || !limited.More || limited.KVs[9].Key != "user/009" {
		t.Fatalf("scan --limit 10: %+v", limited)
	}
	exact := decode[scanJSON](t, ok(t, eps, "scan", "default", "--prefix", "user/", "--limit", "250", "--page-size", "100", "-o", "json"))
	if exact.Count != 250 || exact.More {
		t.Fatalf("scan --limit 250 of 250 keys: count %d, more %v", exact.Count, exact.More)
	}

	// START END, START alone, everything.
	rng := decode[scanJSON](t, ok(t, eps, "scan", "default", "user/100", "user/110", "-o", "json"))
	if rng.Count != 10 || rng.KVs[0].Key != "user/100" || rng.KVs[9].Key != "user/109" {
		t.Fatalf("scan user/100 user/110: %+v", rng.KVs)
	}
	tail := decode[scanJSON](t, ok(t, eps, "scan", "default", "user/245", "-o", "json"))
	if tail.Count != 6 || tail.KVs[4].Key != "user/249" || tail.KVs[5].Key != "users" || tail.End != "" {
		t.Fatalf("scan user/245: %+v", tail.KVs)
	}
	if whole := decode[scanJSON](t, ok(t, eps, "scan", "default", "-o", "json", "--page-size", "64")); whole.Count != 253 || whole.KVs[0].Key != "team/x" {
		t.Fatalf("scan of the whole namespace: %d keys, first %+v", whole.Count, whole.KVs[0])
	}
	if empty := decode[scanJSON](t, ok(t, eps, "scan", "default", "--prefix", "nothing/", "-o", "json")); empty.Count != 0 || empty.KVs == nil {
		t.Fatalf("scan of no keys: %+v", empty)
	}

	// An eventual namespace, from one store's replica.
	for i := range 120 {
		if _, err := cl.RawPut(ctx, "logs", fmt.Sprintf("ev/%03d", i), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.RawPut(ctx, "logs", "ex", "after"); err != nil {
		t.Fatal(err)
	}
	ev := decode[scanJSON](t, ok(t, endpoints(c, 0), "scan", "logs", "--prefix", "ev/", "--page-size", "11", "-o", "json"))
	if ev.Count != 120 || ev.Mode != "eventual" || ev.KVs[0].Key != "ev/000" || ev.KVs[119].Key != "ev/119" || ev.KVs[119].Version != 0 {
		t.Fatalf("scan of an eventual namespace: count %d, mode %s", ev.Count, ev.Mode)
	}
	evTable := lines(ok(t, endpoints(c, 0), "scan", "logs", "ev/118"))
	if len(evTable) != 4 || !slicesEqual(fields(evTable[1]), "ev/118", "-", "118") || !slicesEqual(fields(evTable[3]), "ex", "-", "after") {
		t.Fatalf("scan table of an eventual namespace:\n%s", strings.Join(evTable, "\n"))
	}
}

// TestMode: show, list and set modes; --wait returns once every store
// serves the new mode, and the data written under one mode is there under
// the other.
func TestMode(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{NamespaceModes: map[string]string{"logs": "eventual"}})
	eps := endpoints(c)

	fresh := decode[modeJSON](t, ok(t, eps, "mode", "fresh", "-o", "json"))
	if fresh.Namespace != "fresh" || fresh.Mode != "strong" || !fresh.FromDefault || fresh.State != "active" || fresh.Version == 0 {
		t.Fatalf("mode of a new namespace: %+v", fresh)
	}
	if table := lines(ok(t, eps, "mode", "logs")); len(table) != 2 || !slicesEqual(fields(table[0]), "NAMESPACE", "MODE", "STATE", "VERSION", "FROM_DEFAULT", "LEADER") ||
		!slicesEqual(fields(table[1])[:3], "logs", "eventual", "active") {
		t.Fatalf("mode table:\n%s", strings.Join(table, "\n"))
	}
	ok(t, eps, "cas", "fresh", "k", "strong-value", "--expect", "0")

	set := decode[modeSetJSON](t, ok(t, eps, "mode", "fresh", "eventual", "--wait", "--timeout", "30s", "-o", "json"))
	if !set.Changed || set.Namespace.Mode != "eventual" || set.Namespace.State != "active" || set.Namespace.Version <= fresh.Version || set.Namespace.FromDefault {
		t.Fatalf("mode fresh eventual --wait: %+v", set)
	}
	for i := range c.N() {
		if m := decode[modeJSON](t, ok(t, endpoints(c, i), "mode", "fresh", "-o", "json")); m.Mode != "eventual" || m.State != "active" {
			t.Fatalf("after --wait, store %d has %+v", i+1, m)
		}
		ok(t, endpoints(c, i), "put", "fresh", fmt.Sprintf("from-%d", i), "eventual-value")
	}
	if g := decode[getJSON](t, ok(t, endpoints(c, 2), "get", "fresh", "k", "-o", "json")); g.Value != "strong-value" || g.Mode != "eventual" {
		t.Fatalf("the strong write after the switch to eventual: %+v", g)
	}
	again := decode[modeSetJSON](t, ok(t, eps, "mode", "fresh", "eventual", "-o", "json"))
	if again.Changed || again.Namespace.Version != set.Namespace.Version {
		t.Fatalf("setting the mode a namespace has: %+v", again)
	}

	table := lines(ok(t, eps, "mode", "fresh", "strong", "--wait", "--timeout", "30s"))
	if len(table) != 2 || fields(table[0])[6] != "CHANGED" || !slicesEqual(fields(table[1])[:3], "fresh", "strong", "active") || fields(table[1])[6] != "true" {
		t.Fatalf("mode set table:\n%s", strings.Join(table, "\n"))
	}
	// Every write of both modes is there, with versions now.
	scan := decode[scanJSON](t, ok(t, eps, "scan", "fresh", "-o", "json"))
	if scan.Mode != "strong" || scan.Count != 4 || scan.KVs[0].Key != "from-0" || scan.KVs[3].Key != "k" || scan.KVs[3].Value != "strong-value" || scan.KVs[3].Version == 0 {
		t.Fatalf("scan after the switches: %+v", scan)
	}

	list := decode[struct {
		Namespaces []modeJSON `json:"namespaces"`
	}](t, ok(t, eps, "mode", "-o", "json"))
	modes := map[string]string{}
	for _, m := range list.Namespaces {
		modes[m.Namespace] = m.Mode
	}
	if modes["fresh"] != "strong" || modes["logs"] != "eventual" || modes["default"] != "strong" {
		t.Fatalf("mode list: %+v", list.Namespaces)
	}
	if table := lines(ok(t, eps, "mode")); len(table) != len(list.Namespaces)+1 || fields(table[0])[0] != "NAMESPACE" {
		t.Fatalf("mode list table:\n%s", strings.Join(table, "\n"))
	}
}

// TestCommandLine: wrong command lines exit 2 with the reason, before
// anything is sent; $RDB_ENDPOINTS is --endpoints' default.
func TestCommandLine(t *testing.T) {
	t.Setenv(rdbctl.EndpointsEnv, "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "ns"}, "accepts 2 arg(s), received 1"},
		{[]string{"get"}, "accepts 2 arg(s), received 0"},
		{[]string{"put", "ns", "k"}, "want a namespace and KEY VALUE pairs, got 2 arguments"},
		{[]string{"put", "ns", "k", "v", "k2"}, "want a namespace and KEY VALUE pairs, got 4 arguments"},
		{[]string{"cas", "ns", "k", "v"}, `required flag(s) "expect" not set`},
		{[]string{"cas", "ns", "k", "v", "--expect", "-1"}, "invalid argument"},
		{[]string{"del", "ns", "k", "--expect", "0"}, "--expect must be a version, 1 or more"},
		{[]string{"scan", "ns", "a", "--prefix", "p"}, "give --prefix or START [END], not both"},
		{[]string{"scan", "ns", "--limit", "-1"}, "--limit must be 0"},
		{[]string{"scan", "ns", "--page-size", "0"}, "--page-size must be 1 to 10000"},
		{[]string{"scan", "ns", "a", "b", "c"}, "accepts between 1 and 3 arg(s)"},
		{[]string{"mode", "ns", "weak"}, `mode must be strong or eventual, not "weak"`},
		{[]string{"mode", "ns", "--wait"}, "--wait goes with a mode to set"},
		{[]string{"mode", "ns", "strong", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"-o", "yaml", "get", "ns", "k"}, `-o must be json or table, not "yaml"`},
		{[]string{"--endpoints", "http://127.0.0.1:1", "get", "ns", "k"}, `--endpoints: store endpoint "http://127.0.0.1:1": want host:port`},
		{[]string{"--endpoints", " , ", "get", "ns", "k"}, "no store endpoint given"},
		{[]string{"--cert", "c.pem", "get", "ns", "k"}, "--cacert, --cert and --key go together"},
		{[]string{"--request-timeout", "0s", "get", "ns", "k"}, "--request-timeout must be positive"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
	} {
		r := run(t, tc.args...)
		if r.code != rdbctl.ExitUsage || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "rdbctl --help") || r.stdout != "" {
			t.Errorf("rdbctl %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, rdbctl.ExitUsage, tc.want)
		}
	}
	if out := ok(t, "--help"); !strings.Contains(out, "$"+rdbctl.EndpointsEnv) || !strings.Contains(out, `(default "`+rdbctl.DefaultEndpoint+`")`) {
		t.Fatalf("--help does not name $%s and the default %s:\n%s", rdbctl.EndpointsEnv, rdbctl.DefaultEndpoint, out)
	}

	c := storetest.NewCluster(t, 1, storetest.Options{})
	// A dead first endpoint, then the store: the list is used as --endpoints' is.
	t.Setenv(rdbctl.EndpointsEnv, "127.0.0.1:1,"+c.Addr(0))
	ok(t, "cas", "default", "k", "v", "--expect", "0")
	if g := decode[getJSON](t, ok(t, "get", "default", "k", "-o", "json")); g.Value != "v" {
		t.Fatalf("get through $%s: %+v", rdbctl.EndpointsEnv, g)
	}
	t.Setenv(rdbctl.EndpointsEnv, "127.0.0.1:1")
	ok(t, "--endpoints", c.Addr(0), "get", "default", "k")
	// Nothing to reach: the request fails, bounded, and says nothing was applied.
	start := time.Now()
	fails(t, "unavailable: not applied", "--request-timeout", "2s", "cas", "default", "k2", "v", "--expect", "0")
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a cas with --request-timeout 2s against nothing took %v", d)
	}
}

// TestOutcomeUnknown: a cas whose outcome the store cannot know (its
// leader was cut off after proposing it) says it may have been applied.
func TestOutcomeUnknown(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{Configure: func(i int, cfg *store.Config) {
		cfg.RequestTimeout = time.Second
	}})
	leader := -1
	storetest.Eventually(t, 10*time.Second, func() error {
		for i := range c.N() {
			if st, ok := c.Store(i).GroupStatus("default"); ok && st.IsLeader {
				leader = i
				return nil
			}
		}
		return fmt.Errorf("default has no leader")
	}, "default has a leader")
	c.Links.Isolate(uint64(leader+1), c.N())
	t.Cleanup(c.Links.Heal)

	// (A key that starts with "-" goes after "--", and so does the hint's.)
	start := time.Now()
	r := fails(t, "outcome unknown: the write may have been applied", endpoints(c, leader), "--request-timeout", "3s", "cas", "--expect", "0", "default", "--", "-job", "mine")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a cas with --request-timeout 3s took %v", d)
	}
	if want := "read the key (rdbctl get default -- -job) before writing it again"; !strings.Contains(r.stderr, want) || r.stdout != "" {
		t.Fatalf("an unknown outcome: stdout %q, stderr %q; want %q", r.stdout, r.stderr, want)
	}
}

// TestTLS: with the cluster's CA and a certificate every command works; a
// mode change needs an admin's; without certificates nothing is sent.
func TestTLS(t *testing.T) {
	certs := storetest.NewCerts(t, 2)
	c := storetest.NewCluster(t, 2, storetest.Options{Certs: certs})
	as := func(name string) []string {
		f := certs.Client(name)
		return []string{endpoints(c), "--cacert", f.TrustedCAFile, "--cert", f.CertFile, "--key", f.KeyFile}
	}
	app := func(args ...string) []string { return append(as("app"), args...) }

	ok(t, app("cas", "default", "k", "v", "--expect", "0")...)
	if g := decode[getJSON](t, ok(t, app("get", "default", "k", "-o", "json")...)); g.Value != "v" || g.Version == 0 {
		t.Fatalf("get over TLS: %+v", g)
	}
	if s := decode[scanJSON](t, ok(t, app("scan", "default", "-o", "json")...)); s.Count != 1 {
		t.Fatalf("scan over TLS: %+v", s)
	}
	fails(t, "PermissionDenied", app("mode", "logs", "eventual")...)
	ok(t, append(as("admin"), "mode", "logs", "eventual", "--wait", "--timeout", "30s")...)
	ok(t, app("put", "logs", "a", "b")...)

	fails(t, "unavailable", endpoints(c), "--request-timeout", "3s", "get", "default", "k")
	f := certs.Client("app")
	fails(t, "missing.crt", endpoints(c), "--cacert", f.TrustedCAFile, "--cert", certs.Dir+"/missing.crt", "--key", f.KeyFile, "get", "default", "k")
}

// TestPDMode: the commands against stores that follow a PD, which holds
// the modes: a mode set through a store is PD's, and any store answers
// for any namespace.
func TestPDMode(t *testing.T) {
	pd := pdtest.NewCluster(t, 1)
	c := storetest.NewCluster(t, 3, storetest.Options{PD: strings.Split(pd.Endpoints(), ",")})
	eps := endpoints(c)

	set := decode[modeSetJSON](t, ok(t, eps, "mode", "events", "eventual", "--wait", "--timeout", "30s", "-o", "json"))
	if !set.Changed || set.Namespace.Mode != "eventual" || set.Namespace.State != "active" {
		t.Fatalf("mode events eventual --wait: %+v", set)
	}
	ok(t, endpoints(c, 0), "put", "events", "e1", "one")
	storetest.Eventually(t, 10*time.Second, func() error {
		if g := decode[getJSON](t, ok(t, endpoints(c, 2), "get", "events", "e1", "-o", "json")); !g.Found {
			return fmt.Errorf("store 3 does not have e1")
		}
		return nil
	}, "e1 can be read through store 3")

	created := decode[casJSON](t, ok(t, endpoints(c, 1), "cas", "orders", "o1", "new", "--expect", "0", "-o", "json"))
	for i := range c.N() {
		g := decode[getJSON](t, ok(t, endpoints(c, i), "get", "orders", "o1", "-o", "json"))
		if g.Value != "new" || g.Version != created.Version || g.Mode != "strong" {
			t.Fatalf("get through store %d: %+v, want version %d", i+1, g, created.Version)
		}
	}
	if s := decode[scanJSON](t, ok(t, eps, "scan", "orders", "-o", "json")); s.Count != 1 || s.KVs[0].Version != created.Version {
		t.Fatalf("scan: %+v", s)
	}
}
