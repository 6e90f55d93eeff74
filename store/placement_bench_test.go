package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/server"
	"github.com/rdb-project/rdb/pd/switchdriver"
	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/storetest"
)

// benchPlaced starts a PD (three replicas a namespace, a silent store down
// after downTime) and n PD-mode stores with real pebble on disk.
func benchPlaced(b *testing.B, n int, downTime time.Duration) (*storetest.Cluster, *pdclient.Client) {
	pd := pdtest.NewCluster(b, 1,
		pdtest.WithDriver(func(int) server.Driver { return switchdriver.New(nil, 50*time.Millisecond) }),
		func(_ int, cfg *server.Config) {
			cfg.ReplicationFactor = 3
			cfg.StoreDownAfter = time.Second
			cfg.MaxStoreDownTime = downTime
			cfg.ScheduleInterval = 200 * time.Millisecond
			cfg.FormSettle = 500 * time.Millisecond
		})
	c := storetest.NewCluster(b, n, storetest.Options{PD: strings.Split(pd.Endpoints(), ","), Configure: func(i int, cfg *store.Config) {
		cfg.TickInterval = 100 * time.Millisecond
	}})
	cli := pd.Client()
	b.Cleanup(func() { _ = cli.Close() })
	c.WaitReady()
	return c, cli
}

// createStrong creates strong namespaces and waits until each has a leader.
func createStrong(b *testing.B, c *storetest.Cluster, cli *pdclient.Client, names []string) {
	ctx := context.Background()
	for _, ns := range names {
		if _, err := cli.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: ns, Mode: "strong"}); err != nil {
			b.Fatal(err)
		}
	}
	for _, ns := range names {
		storetest.Eventually(b, 30*time.Second, func() error {
			_, err := c.Cas(0).Get(ctx, &kvrpc.GetRequest{Namespace: ns, Key: "x"})
			return err
		}, "%s serves", ns)
	}
}

// BenchmarkReplicaRepair measures how long PD takes to re-create a lost
// store's replicas elsewhere: four stores, 24 strong namespaces of 8 MiB
// each (64 KiB values); store 4 stops, and the clock runs from the moment
// PD declares it down until no namespace is moving or under-replicated.
// Run it once: -benchtime 1x.
func BenchmarkReplicaRepair(b *testing.B) {
	const (
		namespaces = 24
		perNS      = 128 // values of 64 KiB: 8 MiB a namespace
	)
	downTime := 2 * time.Second
	c, cli := benchPlaced(b, 4, downTime)
	var names []string
	for i := range namespaces {
		names = append(names, fmt.Sprintf("r%02d", i))
	}
	createStrong(b, c, cli, names)
	value := strings.Repeat("v", 64<<10)
	ctx := context.Background()
	for _, ns := range names {
		for k := range perNS {
			if _, err := c.Cas(k%3).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: ns, Key: fmt.Sprintf("k%d", k), Value: value}); err != nil {
				b.Fatal(err)
			}
		}
	}
	held := 0
	for _, ns := range names {
		st, err := cli.GetNamespace(ctx, ns, false)
		if err != nil {
			b.Fatal(err)
		}
		for _, id := range st.GetRecord().GetReplicas() {
			if id == 4 {
				held++
			}
		}
	}
	b.ResetTimer()
	c.Stop(3)
	stopped := time.Now()
	storetest.Eventually(b, 5*time.Minute, func() error {
		st, err := cli.GetClusterStatus(ctx)
		if err != nil {
			return err
		}
		if len(st.GetMoving())+len(st.GetUnderReplicated()) > 0 {
			return fmt.Errorf("%d moving, %d under-replicated", len(st.GetMoving()), len(st.GetUnderReplicated()))
		}
		for _, ns := range names {
			s, err := cli.GetNamespace(ctx, ns, false)
			if err != nil {
				return err
			}
			for _, id := range s.GetRecord().GetReplicas() {
				if id == 4 {
					return fmt.Errorf("%s still on store 4", ns)
				}
			}
		}
		return nil
	}, "every namespace back to three replicas")
	repair := time.Since(stopped) - downTime
	b.StopTimer()
	gib := float64(held*perNS*(64<<10)) / float64(1<<30)
	b.ReportMetric(float64(held), "replicas-moved")
	b.ReportMetric(repair.Seconds(), "s-repair")
	b.ReportMetric(repair.Seconds()/float64(max(held, 1)), "s/namespace")
	b.ReportMetric(repair.Seconds()/gib, "s/GiB")
}

// BenchmarkCASPlaced3 and BenchmarkCASPlaced6 measure aggregate CAS
// throughput over 24 namespaces (three replicas each) with 64 clients,
// on three stores and on six: with placement each write touches three
// stores, whatever their number.
func BenchmarkCASPlaced3(b *testing.B) { benchCASPlaced(b, 3) }
func BenchmarkCASPlaced6(b *testing.B) { benchCASPlaced(b, 6) }

func benchCASPlaced(b *testing.B, stores int) {
	c, cli := benchPlaced(b, stores, time.Minute)
	var names []string
	for i := range 24 {
		names = append(names, fmt.Sprintf("t%02d", i))
	}
	createStrong(b, c, cli, names)
	// Each client sends to the leader of its namespace, as a client that
	// knows it would.
	ctx := context.Background()
	leader := map[string]int{}
	for _, ns := range names {
		storetest.Eventually(b, 30*time.Second, func() error {
			st, err := cli.GetNamespace(ctx, ns, false)
			if err != nil {
				return err
			}
			if st.GetLeader() == 0 {
				return fmt.Errorf("%s: no leader known", ns)
			}
			leader[ns] = int(st.GetLeader()) - 1
			return nil
		}, "leader of %s", ns)
	}
	storetest.RunClients(b, 64, func(client, n int) error {
		ns := names[client%len(names)]
		r, err := c.Cas(leader[ns]).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: ns, Key: fmt.Sprintf("c%d-%d", client, n), Value: "0123456789abcdef0123456789abcdef"})
		if err == nil && !r.GetSuccess() {
			err = fmt.Errorf("CAS refused: %v", r)
		}
		return err
	})
}
