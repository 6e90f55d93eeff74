package store

// Forwarding (PD mode): a store that does not hold a namespace answers its
// client calls by forwarding them to a store that does, so that any store
// answers any request. A forwarded call carries forwardedKey; a store that
// receives one for a namespace it does not hold (its table is behind)
// answers Unavailable (not applied) rather than forwarding again.

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/rdb-project/rdb/store/api"
)

const forwardedKey = "rdb-forwarded-by"

// kvPrefix is the client KV services' method prefix, casPrefix the
// strong API's.
const (
	kvPrefix  = "/kvrpc."
	casPrefix = "/kvrpc.KvCas/"
)

// getModeMethod is forwarded too: a namespace's state (active or
// switching) and leader are its holders' to tell.
const getModeMethod = "/raftpb.RaftService/GetMode"

// forwarder remembers, per namespace, the store that last answered a
// forwarded call (the leader, for a strong namespace, most of the time),
// and counts, per method, the calls this store sent on to another store.
type forwarder struct {
	mu     sync.Mutex
	last   map[string]uint64
	counts map[string]uint64
}

func (f *forwarder) hint(ns string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last[ns]
}

func (f *forwarder) remember(ns string, id uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		f.last = map[string]uint64{}
	}
	f.last[ns] = id
}

// count counts one call of method sent on to another store.
func (f *forwarder) count(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counts == nil {
		f.counts = map[string]uint64{}
	}
	f.counts[method]++
}

// forwarded returns the calls sent on to another store, by method.
func (f *forwarder) forwarded() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.counts)
}

type namespaced interface{ GetNamespace() string }

// forwardUnary serves a KV call here, or (PD mode) forwards it to a store
// that holds its namespace. A strong call answered here carries the leader
// hint (leader.go); one forwarded carries the hint its holder gave.
func (s *Store) forwardUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !(strings.HasPrefix(info.FullMethod, kvPrefix) || info.FullMethod == getModeMethod) {
		return handler(ctx, req)
	}
	nr, ok := req.(namespaced)
	if !ok {
		return handler(ctx, req)
	}
	ns := nr.GetNamespace()
	if api.ValidateNamespace(ns) != nil {
		return handler(ctx, req) // it says what is wrong
	}
	if s.pd != nil {
		if resp, forwarded, err := s.forwardUnheld(ctx, info.FullMethod, ns, req); forwarded {
			return resp, err
		}
	}
	resp, err := handler(ctx, req)
	if strings.HasPrefix(info.FullMethod, casPrefix) {
		s.servedStrong(ctx, info.FullMethod, ns, err)
	}
	return resp, err
}

// forwardUnheld forwards a call on a namespace this store does not serve
// itself to a store that does; forwarded is false when the call is to be
// served here.
func (s *Store) forwardUnheld(ctx context.Context, method, ns string, req any) (resp any, forwarded bool, err error) {
	rec, ok := s.table.Get(ns)
	if !ok {
		// A new namespace: create it (as the handler would) to learn
		// where PD placed it.
		if rec, err = s.namespace(ctx, ns); err != nil {
			return nil, true, err
		}
	}
	if s.ready(rec) {
		return nil, false, nil
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(forwardedKey)) > 0 {
		return nil, true, api.ErrNotHeld(ns, s.cfg.StoreID)
	}
	msg, ok := req.(proto.Message)
	if !ok {
		return nil, false, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	resp, err = s.forward(ctx, method, ns, msg, complete(rec))
	return resp, true, err
}

// forward calls method on the namespace's holders in turn, the one that
// answered last first, until one answers. A write whose outcome cannot be
// known (the holder was reached and did not answer) is not sent again.
func (s *Store) forward(ctx context.Context, method, ns string, req proto.Message, holders []uint64) (any, error) {
	order := make([]uint64, 0, len(holders))
	if h := s.fwd.hint(ns); h != 0 && slices.Contains(holders, h) {
		order = append(order, h)
	}
	for _, id := range holders {
		if id != s.cfg.StoreID && !slices.Contains(order, id) {
			order = append(order, id)
		}
	}
	write := isWrite(method)
	out := metadata.AppendToOutgoingContext(ctx, forwardedKey, strconv.FormatUint(s.cfg.StoreID, 10))
	var last error = api.ErrNoHolder(ns)
	for _, id := range order {
		conn, err := s.tr.Conn(id)
		if err != nil {
			last = err
			continue
		}
		resp, err := newResponse(method)
		if err != nil {
			return nil, api.Internal("forward %s: %v", method, err)
		}
		s.fwd.count(method)
		var header metadata.MD
		err = conn.Invoke(out, method, req, resp, grpc.Header(&header))
		if err == nil {
			s.fwd.remember(ns, id)
			relayLeader(ctx, header)
			return resp, nil
		}
		st := status.Convert(err)
		switch {
		case ctx.Err() != nil:
			if write {
				return nil, api.ErrTimeout("namespace " + ns)
			}
			return nil, api.ErrReadTimeout("namespace " + ns)
		case api.Reason(err) == api.ReasonNotApplied:
			last = err // the holder says it did nothing: try another
		case st.Code() == codes.Unavailable && api.Reason(err) == "" && !write:
			last = err // a read can go elsewhere
		case st.Code() == codes.Unavailable && api.Reason(err) == "" && unreached(err):
			last = err // the connection was never made: nothing was sent
		default:
			relayLeader(ctx, header)
			return nil, err
		}
		s.log.Debug("forward failed; trying another holder", zap.String("namespace", ns), zap.Uint64("store", id), zap.Error(err))
	}
	if api.Reason(last) == "" {
		return nil, api.ErrNoHolder(ns)
	}
	return nil, last
}

// unreached tells whether a gRPC error says the call never left this
// store: no connection could be made (gRPC fails such a call before it
// sends anything). A connection that broke during the call ("error reading
// from server", "transport is closing") may have carried the request.
func unreached(err error) bool {
	msg := status.Convert(err).Message()
	return strings.Contains(msg, "Error while dialing") || strings.Contains(msg, "connect: connection refused") ||
		strings.Contains(msg, "no such host")
}

// isWrite: the method changes data, so a call that reached its server and
// got no answer may have been applied.
func isWrite(method string) bool {
	for _, m := range []string{"/CompareAndSwap", "/Delete", "/RawPut", "/RawDelete", "/RawBatchPut", "/RawBatchDelete"} {
		if strings.HasSuffix(method, m) {
			return true
		}
	}
	return false
}

// newResponse makes an empty response message of a gRPC method, from the
// generated descriptors.
func newResponse(method string) (proto.Message, error) {
	name := strings.ReplaceAll(strings.TrimPrefix(method, "/"), "/", ".")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, err
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		return nil, errors.New("not a method")
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, err
	}
	return mt.New().Interface(), nil
}
