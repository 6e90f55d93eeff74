package pdctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rdb-project/rdb/pd/pdctl"
	"github.com/rdb-project/rdb/pd/pdtest"
)

func TestMain(m *testing.M) {
	pdtest.VerifyTestMain(m)
}

type result struct {
	code           int
	stdout, stderr string
}

// pdctlRun runs the command tree in-process.
func pdctlRun(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := pdctl.Run(ctx, args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// ok runs pdctl and fails the test unless it succeeds.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := pdctlRun(t, args...)
	if r.code != 0 {
		t.Fatalf("pdctl %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

type nsJSON struct {
	Name          string   `json:"name"`
	Mode          string   `json:"mode"`
	FromDefault   bool     `json:"from_default"`
	Version       uint64   `json:"version"`
	Epoch         uint64   `json:"epoch"`
	GroupID       uint64   `json:"group_id"`
	GroupPeers    []uint64 `json:"group_peers"`
	State         string   `json:"state"`
	AppliedStores uint32   `json:"applied_stores"`
	UpStores      uint32   `json:"up_stores"`
}

type setJSON struct {
	Changed   bool   `json:"changed"`
	Namespace nsJSON `json:"namespace"`
}

func TestCommandsJSONAndTable(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	pd := "--pd=" + c.Endpoints()
	pdtest.StartFakeStore(t, c.Endpoints(), 1)

	set := decode[setJSON](t, ok(t, pd, "-o", "json", "namespace", "set", "logs", "eventual"))
	if !set.Changed || set.Namespace.Name != "logs" || set.Namespace.Mode != "eventual" || set.Namespace.Version == 0 {
		t.Fatalf("set: %+v", set)
	}
	again := decode[setJSON](t, ok(t, pd, "-o", "json", "namespace", "set", "logs", "eventual"))
	if again.Changed || again.Namespace.Version != set.Namespace.Version {
		t.Fatalf("set again: %+v", again)
	}
	table := ok(t, pd, "namespace", "set", "users", "strong")
	if !strings.Contains(table, "NAMESPACE") || !strings.Contains(table, "users") || !strings.Contains(table, "true") {
		t.Fatalf("set table:\n%s", table)
	}

	get := decode[nsJSON](t, ok(t, pd, "namespace", "get", "users", "-o", "json"))
	if get.Mode != "strong" || get.GroupID != 2 || len(get.GroupPeers) != 1 || get.Epoch != 1 {
		t.Fatalf("get: %+v", get)
	}
	if table := ok(t, pd, "namespace", "get", "users"); !strings.Contains(table, "FROM_DEFAULT") || !strings.Contains(table, "strong") {
		t.Fatalf("get table:\n%s", table)
	}

	list := decode[struct {
		Revision   uint64   `json:"revision"`
		Namespaces []nsJSON `json:"namespaces"`
	}](t, ok(t, pd, "namespace", "list", "-o", "json"))
	if len(list.Namespaces) != 2 || list.Namespaces[0].Name != "logs" || list.Revision < get.Version {
		t.Fatalf("list: %+v", list)
	}
	lines := strings.Split(strings.TrimSpace(ok(t, pd, "namespace", "list")), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAMESPACE") || !strings.HasPrefix(lines[1], "logs") {
		t.Fatalf("list table:\n%s", strings.Join(lines, "\n"))
	}

	stores := decode[struct {
		Stores []struct {
			ID              uint64 `json:"id"`
			Addr            string `json:"addr"`
			Up              bool   `json:"up"`
			State           string `json:"state"`
			LastHeartbeat   string `json:"last_heartbeat"`
			AppliedRevision uint64 `json:"applied_revision"`
		} `json:"stores"`
	}](t, ok(t, pd, "store", "list", "-o", "json"))
	if len(stores.Stores) != 1 || stores.Stores[0].ID != 1 || !stores.Stores[0].Up || stores.Stores[0].State != "up" ||
		stores.Stores[0].LastHeartbeat == "" {
		t.Fatalf("stores: %+v", stores)
	}
	if table := ok(t, pd, "store", "list"); !strings.Contains(table, "LAST_HEARTBEAT") || !strings.Contains(table, " up ") {
		t.Fatalf("store table:\n%s", table)
	}

	members := decode[struct {
		Leader  string `json:"leader"`
		Members []struct {
			Name       string   `json:"name"`
			ID         string   `json:"id"`
			ClientURLs []string `json:"client_urls"`
			IsLeader   bool     `json:"is_leader"`
		} `json:"members"`
	}](t, ok(t, pd, "member", "list", "-o", "json"))
	if members.Leader != "pd1" || len(members.Members) != 1 || !members.Members[0].IsLeader || members.Members[0].ID == "" {
		t.Fatalf("members: %+v", members)
	}
	if table := ok(t, pd, "member", "list"); !strings.Contains(table, "pd1") || !strings.Contains(table, "CLIENT_URLS") {
		t.Fatalf("member table:\n%s", table)
	}

	// The fake store applies what it watches: everything is rolled out.
	pdtest.Eventually(t, 10*time.Second, func() error {
		st := decode[struct {
			Leader      string   `json:"leader"`
			Members     int      `json:"members"`
			StoresUp    int      `json:"stores_up"`
			StoresTotal int      `json:"stores_total"`
			Namespaces  int      `json:"namespaces"`
			AllApplied  bool     `json:"all_applied"`
			NotApplied  []string `json:"not_applied"`
		}](t, ok(t, pd, "cluster", "status", "-o", "json"))
		if st.Leader != "pd1" || st.Members != 1 || st.StoresUp != 1 || st.StoresTotal != 1 || st.Namespaces != 2 || !st.AllApplied {
			return fmt.Errorf("cluster status: %+v", st)
		}
		return nil
	})
	if table := ok(t, pd, "cluster", "status"); !strings.Contains(table, "1/1 up") || !strings.Contains(table, "all applied") {
		t.Fatalf("cluster status table:\n%s", table)
	}
}

func TestExitCodes(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	pd := "--pd=" + c.Endpoints()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad mode", []string{pd, "namespace", "set", "logs", "weak"}, pdctl.ExitError, `unknown mode "weak"`},
		{"bad name", []string{pd, "namespace", "set", "Logs", "strong"}, pdctl.ExitError, "invalid namespace name"},
		{"missing namespace", []string{pd, "namespace", "get", "nope"}, pdctl.ExitError, `namespace "nope" does not exist`},
		{"unreachable PD", []string{"--pd=127.0.0.1:1", "--request-timeout=300ms", "namespace", "list"}, pdctl.ExitError, "no PD member at 127.0.0.1:1"},
		{"bad endpoint", []string{"--pd=ftp://x:1", "namespace", "list"}, pdctl.ExitError, "only host:port, http://host:port or https://host:port"},
		{"unknown command", []string{pd, "bogus"}, pdctl.ExitUsage, `unknown command "bogus"`},
		{"unknown subcommand", []string{pd, "namespace", "bogus"}, pdctl.ExitUsage, `unknown command "bogus"`},
		{"missing argument", []string{pd, "namespace", "set", "logs"}, pdctl.ExitUsage, "accepts 2 arg(s)"},
		{"extra argument", []string{pd, "namespace", "list", "x"}, pdctl.ExitUsage, "unknown command"},
		{"bad output", []string{pd, "-o", "yaml", "namespace", "list"}, pdctl.ExitUsage, "-o must be json or table"},
		{"bad flag", []string{pd, "namespace", "list", "--nope"}, pdctl.ExitUsage, "unknown flag: --nope"},
		{"help", []string{"namespace", "--help"}, pdctl.ExitOK, ""},
		{"noun alone", []string{"store"}, pdctl.ExitOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := pdctlRun(t, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tc.code, tc.msg)
			}
			if tc.code != pdctl.ExitOK && !strings.HasPrefix(r.stderr, "Error: ") {
				t.Fatalf("stderr %q does not start with Error:", r.stderr)
			}
		})
	}
}

func TestSetWait(t *testing.T) {
	c := pdtest.NewCluster(t, 1)
	pd := "--pd=" + c.Endpoints()
	s1 := pdtest.StartFakeStore(t, c.Endpoints(), 1)
	pdtest.StartFakeStore(t, c.Endpoints(), 2)

	r := pdctlRun(t, pd, "-o", "json", "namespace", "set", "logs", "eventual", "--wait", "--timeout=20s")
	if r.code != 0 {
		t.Fatalf("set --wait: exit %d: %s", r.code, r.stderr)
	}
	done := decode[setJSON](t, r.stdout)
	if done.Namespace.AppliedStores != 2 || done.Namespace.UpStores != 2 {
		t.Fatalf("set --wait returned before every store applied: %+v", done)
	}

	// A store that does not apply makes --wait fail, saying which.
	s1.Freeze()
	start := time.Now()
	r = pdctlRun(t, pd, "namespace", "set", "logs", "strong", "--wait", "--timeout=1s")
	if r.code != pdctl.ExitError || !strings.Contains(r.stderr, "timed out after 1s") ||
		!strings.Contains(r.stderr, "1 of 2 up stores have") || !strings.Contains(r.stderr, "store 1 at revision") {
		t.Fatalf("set --wait with a lagging store: exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "waiting for every up store") {
		t.Fatalf("no progress shown: %q", r.stderr)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("--timeout=1s took %v", took)
	}
	// The change itself was made; once the store catches up, waiting succeeds.
	s1.Unfreeze()
	r = pdctlRun(t, pd, "namespace", "set", "logs", "strong", "--wait", "--timeout=20s")
	if r.code != 0 || !strings.Contains(r.stdout, "2/2") || !strings.Contains(r.stdout, "false") {
		t.Fatalf("set --wait after catching up: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// Three members: the leader crashes; pdctl works again within a few seconds
// (the lease TTL, 2s here) through the members left, and no change is lost.
func TestFailover(t *testing.T) {
	c := pdtest.NewCluster(t, 3)
	pd := "--pd=" + c.Endpoints()
	var want []setJSON
	for i := range 6 {
		mode := []string{"strong", "eventual"}[i%2]
		want = append(want, decode[setJSON](t, ok(t, pd, "-o", "json", "namespace", "set", fmt.Sprintf("ns%d", i), mode)))
	}

	leader := c.WaitLeader()
	start := time.Now()
	c.Kill(leader)
	var after setJSON
	pdtest.Eventually(t, 10*time.Second, func() error {
		r := pdctlRun(t, pd, "--request-timeout=2s", "-o", "json", "namespace", "set", "after", "eventual")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		after = decode[setJSON](t, r.stdout)
		return nil
	})
	t.Logf("pdctl namespace set succeeded %v after the leader crashed", time.Since(start))
	if after.Namespace.Version <= want[len(want)-1].Namespace.Version {
		t.Fatalf("version went back: %d", after.Namespace.Version)
	}

	list := decode[struct {
		Namespaces []nsJSON `json:"namespaces"`
	}](t, ok(t, pd, "-o", "json", "namespace", "list"))
	got := map[string]nsJSON{}
	for _, ns := range list.Namespaces {
		got[ns.Name] = ns
	}
	for _, w := range want {
		if g := got[w.Namespace.Name]; g.Mode != w.Namespace.Mode || g.Version != w.Namespace.Version {
			t.Fatalf("%s after failover = %+v, want %+v", w.Namespace.Name, g, w.Namespace)
		}
	}
	members := decode[struct {
		Leader string `json:"leader"`
	}](t, ok(t, pd, "-o", "json", "member", "list"))
	if members.Leader == "" || members.Leader == c.Config(leader).Name {
		t.Fatalf("leader after failover: %q (stopped %s)", members.Leader, c.Config(leader).Name)
	}
}
