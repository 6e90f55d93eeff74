package tests

// The demo cluster of deploy/ (README: "Demo cluster (Docker)"), brought up
// with the real compose file and image and driven from the host as a user
// would: pdctl, the stores' gRPC API, stopping and starting containers.
//
// The test runs only when a Docker engine answers and a compose tool
// (`docker compose` or the older `docker-compose`) is installed; otherwise it
// skips and says why. It uses a compose project and an image of its own
// (rdbtest<random>) and free host ports, so it never touches a demo cluster
// someone is running, and it removes its containers, network, volumes and
// image even when it fails.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
)

// demoCluster is one compose project of deploy/docker-compose.yml.
type demoCluster struct {
	t       *testing.T
	compose []string // "docker", "compose" or "docker-compose"
	project string
	env     []string // the compose file's variables: image, host ports
	pdctl   string
	pdAddrs []string // PD client ports on the host
	stores  []string // store gRPC ports on the host, store i+1 at [i]
}

// TestDemoCluster brings the demo cluster up and checks what the README
// shows: it becomes healthy; pdctl sets a namespace eventual; a RawPut on
// store 1 is read on stores 2 and 3 (and by the image's rdbctl); CAS and
// Get work on every store;
// stopping the store that leads a strong namespace leaves strong writes
// working through the others, and once started again it catches up;
// stopping the PD leader leaves pdctl working; a restart of the whole
// project keeps the data.
func TestDemoCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the Docker demo cluster")
	}
	compose := composeTool(t)
	bins := binaries(t)
	project := "rdbtest" + randomHex(t, 4)
	image := project + ":latest"
	buildDemoImage(t, bins, image)

	c := &demoCluster{t: t, compose: compose, project: project, pdctl: filepath.Join(bins, "pdctl")}
	c.env = []string{"RDB_IMAGE=" + image, "RDB_BIND=127.0.0.1", "RDB_LOG_LEVEL=info"}
	for i := range 3 {
		c.pdAddrs = append(c.pdAddrs, freePort(t))
		c.stores = append(c.stores, freePort(t))
		c.env = append(c.env,
			fmt.Sprintf("RDB_PD%d_PORT=%s", i+1, portOf(c.pdAddrs[i])),
			fmt.Sprintf("RDB_STORE%d_PORT=%s", i+1, portOf(c.stores[i])))
	}
	t.Cleanup(c.down)

	start := time.Now()
	c.run(3*time.Minute, "up", "-d", "--no-build")
	c.waitHealthy(2*time.Minute, "pd1", "pd2", "pd3", "store1", "store2", "store3")
	t.Logf("project %s: all six containers healthy %v after `up`", project, time.Since(start).Round(time.Millisecond))
	eventually(t, time.Minute, func() error {
		out, err := c.pdctlTry("store", "list", "-o", "json")
		if err != nil {
			return err
		}
		if n := strings.Count(strings.ReplaceAll(out, " ", ""), `"up":true`); n != 3 {
			return fmt.Errorf("%d stores up:\n%s", n, out)
		}
		return nil
	}, "three stores registered and up")

	// The quickstart, from the host.
	c.pdctl1("namespace", "set", "logs", "eventual", "--wait", "--timeout", "1m")
	cs := []clients{clientsOf(t, c.stores[0]), clientsOf(t, c.stores[1]), clientsOf(t, c.stores[2])}
	ctx := ctxT(t, 10*time.Minute)
	if _, err := cs[0].raw.RawPut(ctx, &kvrpc.RawPutRequest{Namespace: "logs", Key: "a", Value: "b"}); err != nil {
		t.Fatalf("RawPut on store 1: %v", err)
	}
	for i := 1; i < 3; i++ {
		eventually(t, 10*time.Second, func() error {
			g, err := cs[i].raw.RawGet(ctxT(t, 2*time.Second), &kvrpc.RawGetRequest{Namespace: "logs", Key: "a"})
			if err != nil || g.GetValue() != "b" {
				return fmt.Errorf("RawGet = %v, %v", g, err)
			}
			return nil
		}, "RawGet logs/a on store %d", i+1)
	}
	for i := range 3 {
		key := fmt.Sprintf("cas-%d", i+1)
		casOn(t, cs[i], key, "v", 30*time.Second)
		for j := range 3 {
			eventually(t, 10*time.Second, func() error {
				if g, err := cs[j].cas.Get(ctxT(t, 3*time.Second), &kvrpc.GetRequest{Namespace: "default", Key: key}); err != nil || g.GetValue() != "v" {
					return fmt.Errorf("Get %s on store %d = %v, %v", key, j+1, g, err)
				}
				return nil
			}, "Get %s on store %d", key, j+1)
		}
	}
	c.grpcurlQuickstart()
	// rdbctl is in the image: in a store's container it finds the store
	// on its default endpoint.
	if out := c.run(time.Minute, "exec", "-T", "store1", "/rdbctl", "get", "logs", "a", "-o", "json"); !strings.Contains(out, `"value": "b"`) {
		t.Fatalf("rdbctl get logs a in store1's container:\n%s", out)
	}

	// Stop the store that leads "default": strong writes go on through the
	// other two; started again, it catches up.
	leader := leaderOf(t, cs)
	stopped := fmt.Sprintf("store%d", leader+1)
	c.run(time.Minute, "stop", stopped)
	stoppedAt := time.Now()
	var during []string
	for i := range 3 {
		if i == leader {
			continue
		}
		key := fmt.Sprintf("during-%d", i+1)
		casOn(t, cs[i], key, "w", 30*time.Second)
		during = append(during, key)
	}
	t.Logf("stopped %s (leader of default); strong writes through the other two succeeded within %v",
		stopped, time.Since(stoppedAt).Round(time.Millisecond))
	c.run(time.Minute, "start", stopped)
	startedAt := time.Now()
	c.waitHealthy(time.Minute, stopped)
	eventually(t, 30*time.Second, func() error {
		for _, key := range during {
			// RawGet on a strong namespace reads the store's own replica.
			g, err := cs[leader].raw.RawGet(ctxT(t, 2*time.Second), &kvrpc.RawGetRequest{Namespace: "default", Key: key})
			if err != nil || g.GetValue() != "w" {
				return fmt.Errorf("%s: %v, %v", key, g, err)
			}
		}
		return nil
	}, "%s's own replica holds the writes made while it was stopped", stopped)
	t.Logf("%s caught up %v after `start`", stopped, time.Since(startedAt).Round(time.Millisecond))
	casOn(t, cs[leader], "after-restart", "x", 30*time.Second)

	// Stop the PD leader: pdctl, given every member, goes on working.
	var members struct {
		Leader string `json:"leader"`
	}
	if err := json.Unmarshal([]byte(c.pdctl1("member", "list", "-o", "json")), &members); err != nil || members.Leader == "" {
		t.Fatalf("member list: %+v, %v", members, err)
	}
	c.run(time.Minute, "stop", members.Leader)
	pdStoppedAt := time.Now()
	eventually(t, 30*time.Second, func() error {
		_, err := c.pdctlTry("namespace", "set", "orders", "eventual", "--wait", "--timeout", "20s")
		if err != nil {
			t.Logf("%v after the stop: %v", time.Since(pdStoppedAt).Round(time.Millisecond), err)
		}
		return err
	}, "pdctl sets a namespace with PD leader %s stopped", members.Leader)
	t.Logf("PD leader %s stopped; pdctl namespace set --wait succeeded %v later", members.Leader,
		time.Since(pdStoppedAt).Round(time.Millisecond))
	c.pdctl1("store", "list")
	c.run(time.Minute, "start", members.Leader)
	c.waitHealthy(time.Minute, members.Leader)

	// Restart everything: the data is on named volumes.
	c.run(3*time.Minute, "restart")
	c.waitHealthy(2*time.Minute, "pd1", "pd2", "pd3", "store1", "store2", "store3")
	for i := range 3 {
		eventually(t, 30*time.Second, func() error {
			g, err := cs[i].cas.Get(ctxT(t, 5*time.Second), &kvrpc.GetRequest{Namespace: "default", Key: "cas-1"})
			if err != nil || g.GetValue() != "v" {
				return fmt.Errorf("Get default/cas-1 = %v, %v", g, err)
			}
			r, err := cs[i].raw.RawGet(ctxT(t, 2*time.Second), &kvrpc.RawGetRequest{Namespace: "logs", Key: "a"})
			if err != nil || r.GetValue() != "b" {
				return fmt.Errorf("RawGet logs/a = %v, %v", r, err)
			}
			return nil
		}, "store %d serves its data after `restart`", i+1)
	}
	mode, err := cs[2].modes.GetMode(ctx, &raftpb.GetModeRequest{Namespace: "orders"})
	if err != nil || mode.GetMode() != "eventual" {
		t.Fatalf("GetMode(orders) after restart = %v, %v", mode, err)
	}
}

// casOn creates key in the strong namespace "default" through c, retrying
// while the group elects a leader. A retry after a timed-out attempt may
// find the key already written by that attempt, which counts as done.
func casOn(t *testing.T, c clients, key, value string, within time.Duration) {
	t.Helper()
	eventually(t, within, func() error {
		r, err := c.cas.CompareAndSwap(ctxT(t, 3*time.Second), &kvrpc.CasRequest{Namespace: "default", Key: key, Value: value})
		if err != nil {
			return err
		}
		if !r.GetSuccess() && r.GetValue() != value {
			return fmt.Errorf("CAS %s: %v", key, r)
		}
		return nil
	}, "CAS default/%s", key)
}

// composeTool returns the compose command, or skips the test when there is
// no Docker engine or no compose tool.
func composeTool(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker is not installed: skipping the demo cluster test (deploy/)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info").CombinedOutput(); err != nil {
		t.Skipf("no Docker engine answers (docker info: %v: %s): skipping the demo cluster test (deploy/)",
			err, lastLine(out))
	}
	if exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if path, err := exec.LookPath("docker-compose"); err == nil && exec.CommandContext(ctx, path, "version").Run() == nil {
		return []string{path}
	}
	t.Skip("neither `docker compose` nor `docker-compose` is installed: skipping the demo cluster test (deploy/)")
	return nil
}

// buildDemoImage builds deploy/Dockerfile into image from the binaries in
// bins (a build context holding only bin/), and removes it at cleanup.
func buildDemoImage(t *testing.T, bins, image string) {
	t.Helper()
	buildCtx := t.TempDir()
	if err := os.Mkdir(filepath.Join(buildCtx, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"rdb-server", "pd-server", "pdctl", "rdbctl"} {
		data, err := os.ReadFile(filepath.Join(bins, b))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(buildCtx, "bin", b), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dockerfile, err := filepath.Abs("../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "docker", "rmi", image).CombinedOutput(); err != nil {
			t.Logf("docker rmi %s: %v: %s", image, err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	if out, err := exec.CommandContext(ctx, "docker", "build", "-q", "-f", dockerfile, "-t", image, buildCtx).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Logf("built image %s in %v", image, time.Since(start).Round(time.Millisecond))
}

// run runs a compose command on the project, bounded by d, and fails the
// test if it fails.
func (c *demoCluster) run(d time.Duration, args ...string) string {
	c.t.Helper()
	out, err := c.try(d, args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", strings.Join(c.compose, " "), strings.Join(args, " "), err, out)
	}
	return out
}

func (c *demoCluster) try(d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	full := append(append([]string{}, c.compose[1:]...), "-p", c.project, "-f", "docker-compose.yml")
	cmd := exec.CommandContext(ctx, c.compose[0], append(full, args...)...)
	cmd.Dir = "../deploy"
	cmd.Env = append(os.Environ(), c.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// down prints the containers' logs if the test failed, then removes the
// project's containers, network and volumes.
func (c *demoCluster) down() {
	if c.t.Failed() {
		out, _ := c.try(time.Minute, "logs", "--no-color", "--tail", "100")
		c.t.Logf("--- logs of project %s ---\n%s", c.project, out)
	}
	start := time.Now()
	if out, err := c.try(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "20"); err != nil {
		c.t.Errorf("tearing down project %s: %v\n%s", c.project, err, out)
		return
	}
	c.t.Logf("project %s torn down in %v", c.project, time.Since(start).Round(time.Millisecond))
}

// waitHealthy waits until the services' containers report healthy.
func (c *demoCluster) waitHealthy(d time.Duration, services ...string) {
	c.t.Helper()
	eventually(c.t, d, func() error {
		var notYet []string
		for _, s := range services {
			id, err := c.try(30*time.Second, "ps", "-q", s)
			id = strings.TrimSpace(id)
			if err != nil || id == "" {
				return fmt.Errorf("no container for %s: %v %s", s, err, id)
			}
			state, err := docker(30*time.Second, "inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}", id)
			if err != nil {
				return err
			}
			if state = strings.TrimSpace(state); state != "healthy" {
				notYet = append(notYet, s+" "+state)
			}
		}
		if len(notYet) > 0 {
			return fmt.Errorf("not healthy: %s", strings.Join(notYet, ", "))
		}
		return nil
	}, "%s healthy", strings.Join(services, ", "))
}

func docker(d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// pdctlTry runs the host's pdctl with every PD member in $RDB_PD, as the
// README does.
func (c *demoCluster) pdctlTry(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.pdctl, args...)
	cmd.Env = append(os.Environ(), "RDB_PD="+strings.Join(c.pdAddrs, ","))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("pdctl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (c *demoCluster) pdctl1(args ...string) string {
	c.t.Helper()
	out, err := c.pdctlTry(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// grpcurlQuickstart runs the README's grpcurl commands against the stores
// when grpcurl is installed.
func (c *demoCluster) grpcurlQuickstart() {
	t := c.t
	t.Helper()
	grpcurl, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Log("grpcurl is not installed: the README's grpcurl commands are not run")
		return
	}
	// run runs one grpcurl command and decodes what it printed. A client
	// retries Unavailable (a leader being elected): so does the caller,
	// within a bound.
	run := func(args ...string) (map[string]any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, grpcurl, args...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("grpcurl %v: %v\n%s", args, err, out)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			return nil, fmt.Errorf("grpcurl %v printed %s", args, out)
		}
		return m, nil
	}
	expect := func(what string, check func(m map[string]any) bool, args ...string) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			m, err := run(args...)
			if err != nil {
				return err
			}
			if !check(m) {
				return fmt.Errorf("%s: %v", what, m)
			}
			return nil
		}, "grpcurl %s", what)
	}
	s := c.stores
	expect("RawPut", func(map[string]any) bool { return true },
		"-plaintext", "-d", `{"namespace":"logs","key":"g","value":"h"}`, s[0], "kvrpc.KvRaw/RawPut")
	for _, a := range s[1:] {
		expect("RawGet on "+a, func(m map[string]any) bool { return m["value"] == "h" },
			"-plaintext", "-d", `{"namespace":"logs","key":"g"}`, a, "kvrpc.KvRaw/RawGet")
	}
	// A retried CAS may find its own earlier write: "h" either way.
	expect("CAS", func(m map[string]any) bool { return m["success"] == true || m["value"] == "h" },
		"-plaintext", "-d", `{"namespace":"default","key":"g","value":"h","expected_version":0}`, s[0], "kvrpc.KvCas/CompareAndSwap")
	for _, a := range s {
		expect("Get on "+a, func(m map[string]any) bool { return m["value"] == "h" },
			"-plaintext", "-d", `{"namespace":"default","key":"g"}`, a, "kvrpc.KvCas/Get")
	}
	expect("GetMode(default)", func(m map[string]any) bool { return m["mode"] == "strong" && m["leader"] != nil },
		"-plaintext", "-d", `{"namespace":"default"}`, s[1], "raftpb.RaftService/GetMode")
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
