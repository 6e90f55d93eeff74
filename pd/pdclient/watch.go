package pdclient

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/pdpb"
)

// WatchNamespaces follows the mode table. after is the table revision the
// caller already has (0: none, so the first response is the whole table).
// handle gets every response in order:
//
//   - reload=true: records is the whole table at revision; replace what you
//     have (it comes first when after is 0, and again whenever the revisions
//     the caller needs were compacted away in etcd);
//   - otherwise: records changed at revision (none for a progress report
//     that only moves the revision forward).
//
// After handle returns nil for a response, the caller is at its revision.
// When a stream breaks or stays silent too long, the watch reconnects, to
// another member if need be, and resumes after the last revision handled, so
// handle never misses a change (it may, after a reconnect, see a revision it
// has already handled again, which a receiver that applies only newer
// versions ignores). WatchNamespaces returns handle's error if it returns
// one, PD's FailedPrecondition if PD refuses to be followed by this caller
// (a caller of another cluster, or one that has applied more of the table
// than PD has: see package clusterid), or ctx's error when ctx ends.
func (c *Client) WatchNamespaces(ctx context.Context, after uint64, handle func(*pdpb.WatchNamespacesResponse) error) error {
	n := int32(len(c.pd))
	idx := c.preferred.Load()
	wait := 50 * time.Millisecond
	for {
		progressed, err := c.watchOnce(ctx, c.pd[idx], &after, handle)
		var he handlerError
		if errors.As(err, &he) {
			return he.err
		}
		if status.Code(err) == codes.FailedPrecondition {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			wait = 50 * time.Millisecond
		}
		idx = (idx + 1) % n
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, c.opts.maxBackoff)
	}
}

type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }

// watchOnce runs one stream until it fails; it reports whether it delivered
// anything.
func (c *Client) watchOnce(ctx context.Context, pd pdpb.PDClient, after *uint64, handle func(*pdpb.WatchNamespacesResponse) error) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := time.AfterFunc(c.opts.watchIdleTimeout, cancel)
	defer idle.Stop()

	start := uint64(0)
	if *after > 0 {
		start = *after + 1
	}
	stream, err := pd.WatchNamespaces(sctx, &pdpb.WatchNamespacesRequest{StartRevision: start})
	if err != nil {
		return false, err
	}
	progressed := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			return progressed, err
		}
		idle.Reset(c.opts.watchIdleTimeout)
		if err := handle(resp); err != nil {
			return progressed, handlerError{err}
		}
		progressed = true
		*after = max(*after, resp.GetRevision())
	}
}
