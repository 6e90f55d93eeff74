package store

// Metrics and profiling: a Prometheus registry per store, exposed with
// pprof on --metrics-addr (off by default: then no call is measured).

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/store/lww"
	"github.com/rdb-project/rdb/store/namespace"
	"github.com/rdb-project/rdb/store/raftstore"
)

type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(s *Store) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rdb_grpc_requests_total", Help: "gRPC requests served, by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rdb_grpc_request_seconds", Help: "gRPC request latency, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"method"}),
	}
	m.reg.MustRegister(
		m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		storeCollector{s},
	)
	return m
}

// storeCounters are the engines' cumulative counters, each read from one
// Stats snapshot per scrape.
var storeCounters = []struct {
	desc *prometheus.Desc
	get  func(raftstore.Stats, lww.Stats) uint64
}{
	{counterDesc("rdb_raft_rounds_total", "Raft loop rounds that had work."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.Rounds }},
	{counterDesc("rdb_raft_synced_batches_total", "Raft persist batches committed with an fsync."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.SyncedBatches }},
	{counterDesc("rdb_raft_entries_written_total", "Raft log entries persisted."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.EntriesWritten }},
	{counterDesc("rdb_raft_entries_applied_total", "Raft entries applied."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.EntriesApplied }},
	{counterDesc("rdb_raft_snapshots_sent_total", "Raft snapshots sent to catching-up stores."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.SnapshotsSent }},
	{counterDesc("rdb_raft_read_index_total", "ReadIndex requests issued (each serves a batch of reads)."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.ReadIndexes }},
	{counterDesc("rdb_raft_reads_total", "Linearizable reads served through ReadIndex."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.Reads }},
	{counterDesc("rdb_raft_messages_dropped_total", "Raft messages from the network dropped by the intake checks."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.Dropped }},
	{counterDesc("rdb_raft_wakeups_total", "Sleeping Raft groups woken (by a call, a message, or a failed leader store)."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.Wakeups }},
	{counterDesc("rdb_raft_quiesced_total", "Raft groups put to sleep (idle, fully replicated)."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.Quiesced }},
	{counterDesc("rdb_raft_stores_down_total", "Times another store was taken for down (not heard from for an election timeout), which wakes the sleeping groups it led."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.StoresDown }},
	{counterDesc("rdb_raft_heartbeats_total", "Heartbeats (and responses) of awake Raft groups sent, coalesced into one batch per store pair per round."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.Heartbeats }},
	{counterDesc("rdb_raft_log_cache_hits_total", "Raft log lookups answered by the cache of each group's newest entries."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.LogCacheHits }},
	{counterDesc("rdb_raft_log_reads_total", "Raft log lookups read from the DB."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.LogReads }},
	{counterDesc("rdb_raft_snapshot_bytes_received_total", "Snapshot data received and staged on disk."), func(r raftstore.Stats, _ lww.Stats) uint64 { return r.SnapshotBytesReceived }},
	{counterDesc("rdb_lww_pushed_total", "Eventual records pushed to peers."), func(_ raftstore.Stats, l lww.Stats) uint64 { return l.Pushed }},
	{counterDesc("rdb_lww_dropped_total", "Eventual records not pushed (left to anti-entropy)."), func(_ raftstore.Stats, l lww.Stats) uint64 { return l.Dropped }},
	{counterDesc("rdb_lww_received_total", "Eventual records received from peers."), func(_ raftstore.Stats, l lww.Stats) uint64 { return l.Received }},
	{counterDesc("rdb_lww_refused_total", "Eventual records refused: timestamp too far ahead."), func(_ raftstore.Stats, l lww.Stats) uint64 { return l.Refused }},
	{counterDesc("rdb_lww_repaired_total", "Eventual records repaired by anti-entropy."), func(_ raftstore.Stats, l lww.Stats) uint64 { return l.Repaired }},
	{counterDesc("rdb_lww_repair_sent_total", "Eventual records sent to peers by anti-entropy."), func(_ raftstore.Stats, l lww.Stats) uint64 { return l.RepairSent }},
	{counterDesc("rdb_lww_anti_entropy_rounds_total", "Anti-entropy rounds completed with a peer."), func(_ raftstore.Stats, l lww.Stats) uint64 { return l.AntiEntropyRounds }},
	{counterDesc("rdb_lww_tombstones_collected_total", "Eventual tombstones collected after the grace period."), func(_ raftstore.Stats, l lww.Stats) uint64 { return l.Collected }},
}

var (
	namespacesDesc = prometheus.NewDesc("rdb_namespaces", "Namespaces in the mode table.", nil, nil)
	switchingDesc  = prometheus.NewDesc("rdb_namespaces_switching", "Namespaces whose mode switch is under way on this store.", nil, nil)
	groupsDesc     = prometheus.NewDesc("rdb_raft_groups", "Raft group replicas on this store: awake (ticking) or asleep (quiesced).", []string{"state"}, nil)
	snapsInDesc    = prometheus.NewDesc("rdb_raft_snapshots_receiving", "Snapshot streams being received (staged) now.", nil, nil)
	forwardedDesc  = prometheus.NewDesc("rdb_forwarded_requests_total",
		"Client calls this store sent on to another store, by method: to a store that holds the namespace (PD mode), "+
			"or, for a strong call answered by a follower replica, through the namespace's Raft leader.", []string{"method"}, nil)
)

func counterDesc(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }

// storeCollector exports the store's counters and namespace gauges.
type storeCollector struct{ s *Store }

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, sc := range storeCounters {
		ch <- sc.desc
	}
	ch <- namespacesDesc
	ch <- switchingDesc
	ch <- groupsDesc
	ch <- snapsInDesc
	ch <- forwardedDesc
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	r, l := c.s.raft.Stats(), c.s.lww.Stats()
	for _, sc := range storeCounters {
		ch <- prometheus.MustNewConstMetric(sc.desc, prometheus.CounterValue, float64(sc.get(r, l)))
	}
	rows := c.s.table.Rows() // counted, not listed: no need to sort 100,000 rows a scrape
	switching := 0
	for _, rec := range rows {
		if c.s.namespaceState(rec) == namespace.Switching {
			switching++
		}
	}
	ch <- prometheus.MustNewConstMetric(namespacesDesc, prometheus.GaugeValue, float64(len(rows)))
	ch <- prometheus.MustNewConstMetric(switchingDesc, prometheus.GaugeValue, float64(switching))
	ch <- prometheus.MustNewConstMetric(groupsDesc, prometheus.GaugeValue, float64(r.Awake), "awake")
	ch <- prometheus.MustNewConstMetric(groupsDesc, prometheus.GaugeValue, float64(r.Groups-min(r.Awake, r.Groups)), "asleep")
	ch <- prometheus.MustNewConstMetric(snapsInDesc, prometheus.GaugeValue, float64(r.SnapshotsReceiving))
	for method, n := range c.s.fwd.forwarded() {
		ch <- prometheus.MustNewConstMetric(forwardedDesc, prometheus.CounterValue, float64(n), method)
	}
}

// unary records every client call's outcome and latency.
func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.latency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

// serveDebug serves /metrics and /debug/pprof on addr until the store
// stops.
func (s *Store) serveDebug(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("metrics server", zap.Error(err))
		}
	}()
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		_ = srv.Close()
	}()
	s.log.Info("serving metrics and pprof", zap.String("addr", lis.Addr().String()))
	return nil
}
