package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/namespace"
)

// The mode table: one etcd key per namespace, versioned by etcd revisions.
// Every write goes through updateNamespace, which is fenced by the leader key
// and by the row's own ModRevision, so a row changes only from the state its
// writer saw, and only under the leader that wrote it.

// Modes and rollout states, as they appear on the wire (package namespace
// owns them).
const (
	ModeStrong     = string(namespace.Strong)
	ModeEventual   = string(namespace.Eventual)
	StateActive    = string(namespace.Active)
	StateSwitching = string(namespace.Switching)
)

// maxUpdateAttempts bounds the retries of a read-modify-write that keeps
// losing to concurrent writers of the same row.
const maxUpdateAttempts = 16

// validName is the one namespace name rule (api.ValidNamespaceName).
func validName(name string) bool { return api.ValidNamespaceName(name) }

func checkName(name string) error {
	if !validName(name) {
		return errInvalidName(name)
	}
	return nil
}

func checkMode(mode string) error {
	_, err := namespace.ParseMode(mode)
	return err
}

// decodeNamespace decodes one row read from etcd. The version is the
// revision that wrote the row, never what the value says.
func decodeNamespace(key string, value []byte, modRevision int64) (*storepb.NamespaceRecord, error) {
	name, ok := namespaceOfKey(key)
	if !ok || !validName(name) {
		return nil, fmt.Errorf("bad namespace key %q", key)
	}
	rec := &storepb.NamespaceRecord{}
	if err := proto.Unmarshal(value, rec); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	if rec.GetName() != name {
		return nil, fmt.Errorf("decode %s: the record names %q", key, rec.GetName())
	}
	if modRevision <= 0 {
		return nil, fmt.Errorf("decode %s: bad revision %d", key, modRevision)
	}
	rec.Version = uint64(modRevision)
	return rec, nil
}

func encodeNamespace(rec *storepb.NamespaceRecord) (string, error) {
	stored := proto.Clone(rec).(*storepb.NamespaceRecord)
	stored.Version = 0 // the revision of the write is the version
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(stored)
	return string(b), err
}

// readNamespace reads one row (linearizably); nil if it does not exist.
func (s *Server) readNamespace(ctx context.Context, name string) (*storepb.NamespaceRecord, error) {
	resp, err := s.client.Get(ctx, NamespaceKey(name))
	if err != nil {
		return nil, etcdError(ctx, "read namespace", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	kv := resp.Kvs[0]
	rec, err := decodeNamespace(string(kv.Key), kv.Value, kv.ModRevision)
	if err != nil {
		return nil, internalError("%v", err)
	}
	return rec, nil
}

// readTable reads every row and the revision they were read at.
func (s *Server) readTable(ctx context.Context) ([]*storepb.NamespaceRecord, int64, error) {
	resp, err := s.client.Get(ctx, namespacePrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, etcdError(ctx, "read namespaces", err)
	}
	recs := make([]*storepb.NamespaceRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		rec, err := decodeNamespace(string(kv.Key), kv.Value, kv.ModRevision)
		if err != nil {
			s.lg.Error("skipping an undecodable namespace row", zap.Error(err))
			continue
		}
		recs = append(recs, rec)
	}
	return recs, resp.Header.Revision, nil
}

// UpdateFunc computes a namespace's next record from its current one (nil
// when the namespace does not exist; the function may modify it). It returns
// ErrNoChange to leave the row as it is.
type UpdateFunc func(cur *storepb.NamespaceRecord) (*storepb.NamespaceRecord, error)

// updateNamespace is the one way PD writes a row. It reads the row, asks fn
// for the next record and writes it in one transaction that holds only if
// this member is still the leader of term l and nobody wrote the row since it
// was read. A record that is strong without a group gets the next group id in
// the same transaction. A strong record whose group has no voters gets them
// now if the formation rule allows it (storeTracker.formationPeers), else it
// is written without and the formation loop (form.go) gives them later: a
// group is never formed with no voter. It returns the record as it is after
// the call (nil if fn declined to create it) and whether it wrote.
func (s *Server) updateNamespace(ctx context.Context, l *leadership, name string, fn UpdateFunc) (*storepb.NamespaceRecord, bool, error) {
	if err := checkName(name); err != nil {
		return nil, false, err
	}
	key := NamespaceKey(name)
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		snap, err := s.client.Get(ctx, key)
		if err != nil {
			return nil, false, etcdError(ctx, "read namespace", err)
		}
		var cur *storepb.NamespaceRecord
		var curModRev int64
		if kvs := snap.Kvs; len(kvs) > 0 {
			curModRev = kvs[0].ModRevision
			if cur, err = decodeNamespace(key, kvs[0].Value, curModRev); err != nil {
				return nil, false, internalError("%v", err)
			}
		}
		var before *storepb.NamespaceRecord
		if cur != nil {
			before = proto.Clone(cur).(*storepb.NamespaceRecord)
		}
		next, err := fn(cur)
		if errors.Is(err, ErrNoChange) {
			return before, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if next == nil {
			return nil, false, internalError("update of namespace %q returned no record", name)
		}
		next = proto.Clone(next).(*storepb.NamespaceRecord)
		next.Name = name
		if err := checkMode(next.GetMode()); err != nil {
			return nil, false, err
		}
		if cur == nil {
			if err := s.checkNamespaceLimit(ctx); err != nil {
				return nil, false, err
			}
		}

		if next.GetMode() == ModeEventual && next.GetGroupId() != 0 && len(next.GetGroupPeers()) == 0 {
			// Its group never formed: no store holds it, so there is
			// nothing to fence. A row keeping the id would have every
			// store wait for a group none of them will ever hold.
			next.GroupId = 0
		}
		cmps := append(s.fence(l), clientv3.Compare(clientv3.ModRevision(key), "=", curModRev))
		var ops []clientv3.Op
		if next.GetMode() == ModeStrong && next.GetGroupId() == 0 {
			if next.GroupId, err = s.groupID(ctx, l); err != nil {
				return nil, false, err
			}
		}
		if next.GetMode() == ModeStrong && len(next.GetGroupPeers()) == 0 {
			// Otherwise the group waits, with its id and no voter.
			s.placeGroup(next)
		}
		if cur == nil && next.GetMode() == ModeEventual && len(next.GetReplicas()) == 0 {
			// A new eventual namespace is placed at once if stores are up
			// (else on every store, until the scheduler places it).
			if up, ok := s.stores.formationPeers(time.Now(), s.cfg.FormSettle); ok {
				next.Replicas = s.place.initial(name, replicationFactor(next, s.cfg.ReplicationFactor), up)
			}
		}
		val, err := encodeNamespace(next)
		if err != nil {
			return nil, false, internalError("encode namespace %q: %v", name, err)
		}
		ops = append(ops, clientv3.OpPut(key, val))

		resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(leaderKey)).Commit()
		if err != nil {
			return nil, false, etcdError(ctx, "write namespace", err)
		}
		if resp.Succeeded {
			next.Version = uint64(resp.Header.Revision)
			l.table.written(resp.Header.Revision)
			if cur == nil {
				s.count.created()
			}
			if pendingGroup(next) {
				s.formHint.Store(true)
			}
			s.lg.Info("namespace written", zap.String("namespace", name), zap.String("mode", next.GetMode()),
				zap.Bool("from-default", next.GetFromDefault()), zap.Uint64("version", next.GetVersion()),
				zap.Uint64("epoch", next.GetEpoch()), zap.Uint64("group", next.GetGroupId()),
				zap.Uint64s("group-peers", next.GetGroupPeers()))
			// Voters are given once and never taken away: this logs once
			// per namespace.
			if len(before.GetGroupPeers()) == 0 && len(next.GetGroupPeers()) > 0 {
				s.lg.Info("namespace group formed", zap.String("namespace", name),
					zap.Uint64("group", next.GetGroupId()), zap.Uint64s("peers", next.GetGroupPeers()))
			}
			return next, true, nil
		}
		if !s.stillLeader(l, resp.Responses[0].GetResponseRange().GetKvs()) {
			return nil, false, errLostLeader
		}
		// Someone else wrote the row (or took a group id) in between: redo.
	}
	return nil, false, errContention(name)
}

// setModeFunc is SetNamespaceMode's rule: the one row rule every
// authority applies (namespace.Next).
func setModeFunc(req *pdpb.SetNamespaceModeRequest) UpdateFunc {
	return func(cur *storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
		if cur != nil && req.GetMode() == ModeStrong {
			if err := checkReplicaCount(ModeStrong, int(cur.GetReplicationFactor())); err != nil {
				return nil, err
			}
		}
		next, changed := namespace.Next(cur, req.GetName(), namespace.SetRequest{
			Mode: namespace.Mode(req.GetMode()), Force: req.GetForce(), OnlyIfAbsent: req.GetOnlyIfAbsent(),
		})
		if !changed {
			return nil, ErrNoChange
		}
		return next, nil
	}
}

// createDefaultFunc creates a namespace in the default mode.
func createDefaultFunc(cur *storepb.NamespaceRecord) (*storepb.NamespaceRecord, error) {
	if cur != nil {
		return nil, ErrNoChange
	}
	next, _ := namespace.Next(nil, "", namespace.SetRequest{Mode: namespace.DefaultMode, FromDefault: true})
	return next, nil
}

// checkNamespaceLimit refuses to create a namespace past --max-namespaces.
// Creations that race may pass it by a few; the limit is a guard against
// a client creating namespaces without end, not an exact quota.
func (s *Server) checkNamespaceLimit(ctx context.Context) error {
	return s.count.check(ctx, s.cfg.MaxNamespaces, func(ctx context.Context) (int64, error) {
		resp, err := s.client.Get(ctx, namespacePrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return 0, etcdError(ctx, "count namespaces", err)
		}
		return resp.Count, nil
	})
}

// namespaceCount keeps the number of namespaces without counting the
// table (100,000 keys) at every creation: the count read from etcd at most
// a second ago, plus the creations of this member since. The limit is
// counted again, exactly, whenever the running count nears it.
type namespaceCount struct {
	mu      sync.Mutex
	counted int64     // the count read from etcd
	at      time.Time // when; zero: never
	since   int64     // namespaces this member created since
}

// recountEvery is how old a count may be before it is read again.
const recountEvery = time.Second

func (c *namespaceCount) check(ctx context.Context, limit int, count func(context.Context) (int64, error)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || time.Since(c.at) > recountEvery || c.counted+c.since >= int64(limit)-1 {
		n, err := count(ctx)
		if err != nil {
			return err
		}
		c.counted, c.at, c.since = n, time.Now(), 0
	}
	if c.counted+c.since >= int64(limit) {
		return errTooManyNamespaces(limit)
	}
	return nil
}

// created counts a namespace this member created.
func (c *namespaceCount) created() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.since++
}

// groupIDBlock is a range of group ids a term reserved in etcd, handed out
// from memory: one write per groupIDBlockSize strong namespaces, rather
// than one contended counter in every creation. Ids a term does not hand
// out are never used.
type groupIDBlock struct {
	mu        sync.Mutex
	next, end uint64 // [next, end) are still free
}

const groupIDBlockSize = 1024

// groupID returns a group id no namespace has had.
func (s *Server) groupID(ctx context.Context, l *leadership) (uint64, error) {
	b := &l.groupIDs
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next < b.end {
		id := b.next
		b.next++
		return id, nil
	}
	for range maxUpdateAttempts {
		resp, err := s.client.Get(ctx, nextGroupIDKey)
		if err != nil {
			return 0, etcdError(ctx, "read the group id counter", err)
		}
		id, modRev := firstGroupID, int64(0)
		if len(resp.Kvs) > 0 {
			modRev = resp.Kvs[0].ModRevision
			if id, err = parseGroupCounter(resp.Kvs[0].Value); err != nil {
				return 0, internalError("%v", err)
			}
		}
		cmps := append(s.fence(l), clientv3.Compare(clientv3.ModRevision(nextGroupIDKey), "=", modRev))
		txn, err := s.client.Txn(ctx).If(cmps...).
			Then(clientv3.OpPut(nextGroupIDKey, formatGroupCounter(id+groupIDBlockSize))).
			Else(clientv3.OpGet(leaderKey)).Commit()
		if err != nil {
			return 0, etcdError(ctx, "reserve group ids", err)
		}
		if txn.Succeeded {
			b.next, b.end = id+1, id+groupIDBlockSize
			return id, nil
		}
		if !s.stillLeader(l, txn.Responses[0].GetResponseRange().GetKvs()) {
			return 0, errLostLeader
		}
	}
	return 0, errContention(nextGroupIDKey)
}
