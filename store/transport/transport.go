// Package transport carries everything stores say to each other over gRPC:
// Raft messages (one client stream per peer, batched, each message tagged
// with its group), snapshots (a stream of chunks per snapshot) and the
// internal unary calls, all over one connection per peer.
//
// Sends never block the Raft loop: each peer has a bounded queue; when it
// is full, or the peer cannot be reached, messages are dropped and Raft is
// told the peer is unreachable (Raft retransmits).
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	eraftpb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/clusterid"
)

// Raft is the part of the Raft engine the transport talks to.
type Raft interface {
	// Step delivers the messages of a batch store from sent.
	Step(from uint64, msgs []*storepb.RaftMessage)
	// StageSnapshot starts receiving the data of a snapshot of group (the
	// MsgSnap's metadata md); the transport writes each chunk to it as it
	// arrives, then steps the MsgSnap with the token Finish returns.
	StageSnapshot(group uint64, md *eraftpb.SnapshotMetadata) (SnapshotStage, error)
	// StepSnapshot delivers a MsgSnap store from sent, whose data is the
	// token of its stage.
	StepSnapshot(from, group uint64, m *eraftpb.Message)
	StreamSnapshot(data []byte, fn func(chunk []byte) error) error
	ReportUnreachable(to uint64)
	ReportSnapshot(group, to uint64, ok bool)
}

// SnapshotStage receives one snapshot's data, chunk by chunk, without
// holding it in memory.
type SnapshotStage interface {
	Write(chunk []byte) error
	Finish() (token []byte, err error)
	Abort()
}

// SnapshotIdleTimeout is how long a snapshot stream may make no progress
// (no chunk sent or received) before it is cut: a transfer that stalls is
// retried, one that progresses slowly is never cut off.
var SnapshotIdleTimeout = 30 * time.Second

// LinkFault describes what happens to traffic on one link. The zero value
// is a healthy link. Used by fault-injection tests only.
type LinkFault struct {
	Partitioned bool          // nothing gets through
	LossRate    float64       // share of Raft batches dropped
	DupRate     float64       // share of Raft batches sent twice
	Delay       time.Duration // added to every send
}

// Faults decides the fault of the link from this store to another.
type Faults interface {
	Link(to uint64) LinkFault
}

// Config configures a Transport.
type Config struct {
	StoreID uint64
	Logger  *zap.Logger
	// Resolve returns a store's address.
	Resolve func(id uint64) (string, bool)
	// Faults, if set, injects faults on outbound links.
	Faults Faults
	// QueueSize is the number of message batches queued per peer.
	QueueSize int
	// Creds dial peers: TLS with this store's certificate, which proves to
	// a peer which store is calling (nil: plaintext).
	Creds credentials.TransportCredentials
	// ClusterID returns this store's cluster id (0: not known yet); every
	// call to a peer names it (metadata rdb-cluster-id), so a store of
	// another cluster refuses it.
	ClusterID func() uint64
}

// Transport connects this store to its peers.
type Transport struct {
	cfg  Config
	log  *zap.Logger
	raft Raft

	mu     sync.Mutex
	peers  map[uint64]*peer
	closed bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type peer struct {
	id     uint64
	addr   string
	conn   *grpc.ClientConn
	client storepb.StoreInternalClient
	queue  chan []*storepb.RaftMessage
	stopc  chan struct{}
	// mismatchLogged is when the peer's refusal of this store's cluster
	// was last logged (runPeer's goroutine only).
	mismatchLogged time.Time
}

// New creates a transport. SetRaft must be called before messages flow.
func New(cfg Config) *Transport {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 4096
	}
	if cfg.ClusterID == nil {
		cfg.ClusterID = func() uint64 { return 0 }
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Transport{cfg: cfg, log: cfg.Logger, peers: make(map[uint64]*peer), ctx: ctx, cancel: cancel}
}

// SetRaft wires the Raft engine in.
func (t *Transport) SetRaft(r Raft) { t.raft = r }

// Close stops every peer and waits for its goroutines.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	peers := t.peers
	t.peers = map[uint64]*peer{}
	t.mu.Unlock()
	t.cancel()
	for _, p := range peers {
		close(p.stopc)
	}
	t.wg.Wait()
	for _, p := range peers {
		_ = p.conn.Close()
	}
}

// getPeer returns the peer for a store, (re)connecting if its address
// changed.
func (t *Transport) getPeer(id uint64) (*peer, error) {
	addr, ok := t.cfg.Resolve(id)
	if !ok {
		return nil, fmt.Errorf("transport: address of store %d is unknown", id)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("transport: closed")
	}
	if p := t.peers[id]; p != nil {
		if p.addr == addr {
			return p, nil
		}
		close(p.stopc)
		go func(c *grpc.ClientConn) { _ = c.Close() }(p.conn)
		delete(t.peers, id)
	}
	creds := t.cfg.Creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(t.unaryFaults(id), clusterid.UnaryClientInterceptor(t.cfg.ClusterID)),
		grpc.WithChainStreamInterceptor(t.streamFaults(id), clusterid.StreamClientInterceptor(t.cfg.ClusterID)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		// A peer that restarts should be reached again within a second, not
		// after gRPC's default backoff (up to two minutes).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("transport: dial store %d at %s: %w", id, addr, err)
	}
	p := &peer{
		id: id, addr: addr, conn: conn,
		client: storepb.NewStoreInternalClient(conn),
		queue:  make(chan []*storepb.RaftMessage, t.cfg.QueueSize),
		stopc:  make(chan struct{}),
	}
	t.peers[id] = p
	t.wg.Add(1)
	go t.runPeer(p)
	return p, nil
}

// Client returns the internal client of a store.
func (t *Transport) Client(id uint64) (storepb.StoreInternalClient, error) {
	p, err := t.getPeer(id)
	if err != nil {
		return nil, err
	}
	return p.client, nil
}

// Conn returns the connection to a store, for the client APIs a store
// forwards to another (the namespaces it does not hold).
func (t *Transport) Conn(id uint64) (grpc.ClientConnInterface, error) {
	p, err := t.getPeer(id)
	if err != nil {
		return nil, err
	}
	return p.conn, nil
}

// Send queues Raft messages for a store. It never blocks.
func (t *Transport) Send(to uint64, msgs []*storepb.RaftMessage) {
	p, err := t.getPeer(to)
	if err != nil {
		t.log.Debug("send", zap.Uint64("to", to), zap.Error(err))
		t.raft.ReportUnreachable(to)
		return
	}
	select {
	case p.queue <- msgs:
	default:
		t.raft.ReportUnreachable(to)
	}
}

// Limits of one RaftBatch: gRPC refuses a message above 64 MiB, and a
// follower catching up receives bursts of 1 MiB entries.
const (
	maxBatchMsgs  = 4096
	maxBatchBytes = 32 << 20
)

// runPeer drains a peer's queue into its Raft stream, batching whatever
// has accumulated (within maxBatchMsgs and maxBatchBytes), and reconnects
// after errors.
func (t *Transport) runPeer(p *peer) {
	defer t.wg.Done()
	var stream storepb.StoreInternal_RaftClient
	var cancel context.CancelFunc = func() {}
	defer func() { cancel() }()
	backoff := 50 * time.Millisecond
	// pending holds messages taken from the queue and not sent yet; it is
	// the transport's own slice (callers' slices are never appended to).
	var pending []*storepb.RaftMessage
	pendingBytes := 0
	take := func(msgs []*storepb.RaftMessage) {
		pending = append(pending, msgs...)
		for _, m := range msgs {
			pendingBytes += len(m.GetData())
		}
	}
	for {
		if len(pending) == 0 {
			select {
			case <-p.stopc:
				return
			case msgs := <-p.queue:
				take(msgs)
			}
		}
	drain:
		for len(pending) < maxBatchMsgs && pendingBytes < maxBatchBytes {
			select {
			case more := <-p.queue:
				take(more)
			default:
				break drain
			}
		}
		n, size := 0, 0
		for n < len(pending) && n < maxBatchMsgs && (n == 0 || size+len(pending[n].GetData()) <= maxBatchBytes) {
			size += len(pending[n].GetData())
			n++
		}
		batch := pending[:n:n]
		pending, pendingBytes = pending[n:], pendingBytes-size
		if len(pending) == 0 {
			pending = nil // let the backing array go
		}
		fault := t.link(p.id)
		if fault.Partitioned || (fault.LossRate > 0 && rand.Float64() < fault.LossRate) {
			continue
		}
		// A delay is applied by the stream itself (faultStream).
		if stream == nil {
			s, c, err := t.openRaftStream(p)
			if err != nil {
				t.unreachable(p, err)
				if !t.sleep(p, &backoff) {
					return
				}
				continue
			}
			stream, cancel = s, c
		}
		msg := &storepb.RaftBatch{FromStore: t.cfg.StoreID, ToStore: p.id, Messages: batch}
		err := stream.Send(msg)
		if err == nil && fault.DupRate > 0 && rand.Float64() < fault.DupRate {
			err = stream.Send(msg)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The peer ended the stream: its status says why.
				if _, rerr := stream.CloseAndRecv(); rerr != nil {
					err = rerr
				}
			}
			cancel()
			stream = nil
			t.unreachable(p, err)
			if !t.sleep(p, &backoff) {
				return
			}
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

func (t *Transport) openRaftStream(p *peer) (storepb.StoreInternal_RaftClient, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(t.ctx)
	s, err := p.client.Raft(ctx)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return s, cancel, nil
}

func (t *Transport) unreachable(p *peer, err error) {
	if clusterid.IsMismatch(err) && time.Since(p.mismatchLogged) >= 30*time.Second {
		// The store at that address is not of this cluster: an address
		// that now belongs to another cluster's store, or a wiped store.
		p.mismatchLogged = time.Now()
		t.log.Error("the store at this peer's address belongs to another cluster: it refuses this store's traffic",
			zap.Uint64("store", p.id), zap.String("addr", p.addr), zap.Error(err))
	}
	t.log.Debug("store unreachable", zap.Uint64("store", p.id), zap.String("addr", p.addr), zap.Error(err))
	t.raft.ReportUnreachable(p.id)
}

func (t *Transport) sleep(p *peer, backoff *time.Duration) bool {
	select {
	case <-time.After(*backoff):
	case <-p.stopc:
		return false
	}
	*backoff = min(*backoff*2, time.Second)
	return true
}

// SendSnapshot streams a MsgSnap and its data to a store, then reports
// the outcome to Raft. After Close it fails at once, in the caller (still
// releasing the snapshot through StreamSnapshot).
func (t *Transport) SendSnapshot(to, group uint64, m *eraftpb.Message) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		err := errors.New("transport: closed")
		_ = t.raft.StreamSnapshot(m.GetSnapshot().GetData(), func([]byte) error { return err })
		t.raft.ReportSnapshot(group, to, false)
		return
	}
	// Added under mu before Close sets closed, so Close's Wait covers it.
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		err := t.sendSnapshot(to, group, m)
		if err != nil {
			t.log.Warn("snapshot not sent", zap.Uint64("to", to), zap.Uint64("group", group), zap.Error(err))
		} else {
			t.log.Info("snapshot sent", zap.Uint64("to", to), zap.Uint64("group", group),
				zap.Uint64("index", m.GetSnapshot().GetMetadata().GetIndex()))
		}
		t.raft.ReportSnapshot(group, to, err == nil)
	}()
}

func (t *Transport) sendSnapshot(to, group uint64, m *eraftpb.Message) error {
	token := m.GetSnapshot().GetData()
	fail := func(err error) error {
		_ = t.raft.StreamSnapshot(token, func([]byte) error { return err })
		return err
	}
	if t.link(to).Partitioned {
		return fail(errors.New("link partitioned"))
	}
	p, err := t.getPeer(to)
	if err != nil {
		return fail(err)
	}
	header := proto.Clone(m).(*eraftpb.Message)
	header.Snapshot.Data = nil
	hb, err := proto.Marshal(header)
	if err != nil {
		return fail(err)
	}
	// No fixed deadline: the stream is cut only when a chunk makes no
	// progress for SnapshotIdleTimeout.
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	watchdog := time.AfterFunc(SnapshotIdleTimeout, cancel)
	defer watchdog.Stop()
	stream, err := p.client.Snapshot(ctx)
	if err != nil {
		return fail(err)
	}
	first := &storepb.SnapshotChunk{FromStore: t.cfg.StoreID, ToStore: to, Message: &storepb.RaftMessage{GroupId: group, Data: hb}}
	if err := t.raft.StreamSnapshot(token, func(chunk []byte) error {
		c := first
		if c == nil {
			c = &storepb.SnapshotChunk{FromStore: t.cfg.StoreID, ToStore: to}
		}
		first = nil
		c.Data = chunk
		if err := stream.Send(c); err != nil {
			return err
		}
		watchdog.Reset(SnapshotIdleTimeout)
		return nil
	}); err != nil {
		return err
	}
	_, err = stream.CloseAndRecv()
	return err
}

func (t *Transport) link(to uint64) LinkFault {
	if t.cfg.Faults == nil {
		return LinkFault{}
	}
	return t.cfg.Faults.Link(to)
}

func (t *Transport) checkLink(ctx context.Context, to uint64) error {
	f := t.link(to)
	if f.Partitioned {
		return status.Errorf(codes.Unavailable, "link to store %d is partitioned", to)
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (t *Transport) unaryFaults(to uint64) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if err := t.checkLink(ctx, to); err != nil {
			return err
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

func (t *Transport) streamFaults(to uint64) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if err := t.checkLink(ctx, to); err != nil {
			return nil, err
		}
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || t.cfg.Faults == nil {
			return cs, err
		}
		return &faultStream{ClientStream: cs, t: t, to: to}, nil
	}
}

// faultStream applies link faults to every message of a stream opened
// before the link went bad.
type faultStream struct {
	grpc.ClientStream
	t  *Transport
	to uint64
}

func (f *faultStream) SendMsg(m any) error {
	if err := f.t.checkLink(f.Context(), f.to); err != nil {
		return err
	}
	return f.ClientStream.SendMsg(m)
}

func (f *faultStream) RecvMsg(m any) error {
	if err := f.ClientStream.RecvMsg(m); err != nil {
		return err
	}
	return f.t.checkLink(f.Context(), f.to)
}

// HandleRaft serves the Raft stream of one peer.
func (t *Transport) HandleRaft(stream storepb.StoreInternal_RaftServer) error {
	for {
		b, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&storepb.RaftDone{})
		}
		if err != nil {
			return err
		}
		if b.GetToStore() != t.cfg.StoreID {
			return status.Errorf(codes.FailedPrecondition, "this is store %d, not store %d: check --store-id and addresses", t.cfg.StoreID, b.GetToStore())
		}
		t.raft.Step(b.GetFromStore(), b.GetMessages())
	}
}

// MaxSnapshotBytes bounds the data of one snapshot stream (the whole state
// of one namespace's group). It is staged on disk as it arrives, never
// held in memory.
const MaxSnapshotBytes = 64 << 30

// HandleSnapshot receives one snapshot: the first chunk carries the
// MsgSnap, whose stage takes every chunk's data as it arrives; the message
// is stepped once the stream ends. A stream that makes no progress for
// SnapshotIdleTimeout is cut.
func (t *Transport) HandleSnapshot(stream storepb.StoreInternal_SnapshotServer) error {
	var header *storepb.RaftMessage
	var m *eraftpb.Message
	var from, total uint64
	var stage SnapshotStage
	defer func() {
		if stage != nil {
			stage.Abort()
		}
	}()
	recv := idleRecv(stream.Context(), SnapshotIdleTimeout, stream.Recv)
	for {
		c, err := recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if c.GetToStore() != t.cfg.StoreID {
			return status.Errorf(codes.FailedPrecondition, "this is store %d, not store %d", t.cfg.StoreID, c.GetToStore())
		}
		if header == nil {
			header, from = c.GetMessage(), c.GetFromStore()
			m = &eraftpb.Message{}
			if err := proto.Unmarshal(header.GetData(), m); err != nil {
				return status.Errorf(codes.InvalidArgument, "snapshot message: %v", err)
			}
			if m.GetType() != eraftpb.MsgSnap || m.GetSnapshot() == nil {
				return status.Errorf(codes.InvalidArgument, "snapshot stream carries a %v, not a MsgSnap", m.GetType())
			}
			if stage, err = t.raft.StageSnapshot(header.GetGroupId(), m.GetSnapshot().GetMetadata()); err != nil {
				return status.Errorf(codes.Internal, "stage snapshot: %v", err)
			}
		} else if c.GetFromStore() != from || c.GetMessage() != nil {
			return status.Error(codes.InvalidArgument, "a snapshot stream carries one message, from one store")
		}
		if total += uint64(len(c.GetData())); total > MaxSnapshotBytes {
			return status.Errorf(codes.ResourceExhausted, "snapshot of more than %d bytes", uint64(MaxSnapshotBytes))
		}
		if err := stage.Write(c.GetData()); err != nil {
			return status.Errorf(codes.InvalidArgument, "snapshot data: %v", err)
		}
	}
	if header == nil {
		return status.Error(codes.InvalidArgument, "snapshot stream without a message")
	}
	token, err := stage.Finish()
	stage = nil
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "snapshot data: %v", err)
	}
	m.Snapshot.Data = token
	t.raft.StepSnapshot(from, header.GetGroupId(), m)
	return stream.SendAndClose(&storepb.SnapshotDone{})
}

// idleRecv wraps a stream's Recv so that a wait longer than idle for the
// next message fails it (the stream is then cut by its handler returning).
func idleRecv[T any](ctx context.Context, idle time.Duration, recv func() (T, error)) func() (T, error) {
	type res struct {
		v   T
		err error
	}
	return func() (T, error) {
		ch := make(chan res, 1)
		go func() {
			v, err := recv()
			ch <- res{v, err}
		}()
		t := time.NewTimer(idle)
		defer t.Stop()
		select {
		case r := <-ch:
			return r.v, r.err
		case <-t.C:
			var zero T
			return zero, status.Errorf(codes.DeadlineExceeded, "no progress for %v", idle)
		case <-ctx.Done():
			var zero T
			return zero, status.FromContextError(ctx.Err()).Err()
		}
	}
}
