package client

// The namespace modes (raftpb.RaftService): any store answers.

import (
	"context"

	"google.golang.org/grpc"

	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/api"
)

// The modes of a namespace.
const (
	Strong   = "strong"
	Eventual = "eventual"
)

// NamespaceMode is one row of the mode table.
type NamespaceMode struct {
	Namespace string
	// Mode is Strong or Eventual.
	Mode string
	// FromDefault: the namespace was created with the default mode
	// (strong) by its first use and never configured.
	FromDefault bool
	// Version of the row; it only grows.
	Version uint64
	// State is "active", or "switching" while a mode switch is carried
	// out (writes fail with Aborted meanwhile, which the client retries).
	State string
	// Leader is the id of the store that leads the namespace's Raft group
	// as the answering store knows it (0: none).
	Leader uint64
}

// ModeUpdate is the answer of UpdateNamespaceMode.
type ModeUpdate struct {
	NamespaceMode
	// Changed is false when the namespace already had the mode.
	Changed bool
}

// GetMode returns namespace ns's mode; a namespace never seen before is
// created with the default mode (strong).
func (c *Client) GetMode(ctx context.Context, ns string) (NamespaceMode, error) {
	o := &op{name: "GetMode", ns: ns}
	if err := api.ValidateNamespace(ns); err != nil {
		return NamespaceMode{}, invalid(o, err)
	}
	req := &raftpb.GetModeRequest{Namespace: ns}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*raftpb.GetModeResponse, error) {
		return st.modes.GetMode(ctx, req, opts...)
	})
	if err != nil {
		return NamespaceMode{}, err
	}
	return modeOf(resp, resp.GetLeader()), nil
}

// ListNamespaceModes returns every namespace the answering store knows.
func (c *Client) ListNamespaceModes(ctx context.Context) ([]NamespaceMode, error) {
	o := &op{name: "ListNamespaceModes"}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*raftpb.ListNamespaceModesResponse, error) {
		return st.modes.ListNamespaceModes(ctx, &raftpb.ListNamespaceModesRequest{}, opts...)
	})
	if err != nil {
		return nil, err
	}
	out := make([]NamespaceMode, len(resp.GetNamespaces()))
	for i, r := range resp.GetNamespaces() {
		out[i] = modeOf(r, r.GetLeader())
	}
	return out, nil
}

// UpdateNamespaceMode sets namespace ns's mode (Strong or Eventual); it
// returns once the change is committed, and every store then carries it
// out. force lets an eventual -> strong switch go ahead without the stores
// that cannot be reached, losing the writes only they hold. A cluster with
// TLS takes it only from an admin's certificate. It counts as a write: an
// update whose outcome is unknown is not sent again (it could undo
// another client's later change).
func (c *Client) UpdateNamespaceMode(ctx context.Context, ns, mode string, force bool) (ModeUpdate, error) {
	o := &op{name: "UpdateNamespaceMode", ns: ns, write: true}
	if err := api.ValidateNamespace(ns); err != nil {
		return ModeUpdate{}, invalid(o, err)
	}
	req := &raftpb.UpdateNamespaceModeRequest{Namespace: ns, Mode: mode, Force: force}
	resp, err := call(ctx, c, o, func(ctx context.Context, st *stubs, opts ...grpc.CallOption) (*raftpb.UpdateNamespaceModeResponse, error) {
		return st.modes.UpdateNamespaceMode(ctx, req, opts...)
	})
	if err != nil {
		return ModeUpdate{}, err
	}
	return ModeUpdate{NamespaceMode: modeOf(resp, 0), Changed: resp.GetChanged()}, nil
}

// modeRow is what the mode answers share.
type modeRow interface {
	GetNamespace() string
	GetMode() string
	GetFromDefault() bool
	GetVersion() uint64
	GetState() string
}

func modeOf(r modeRow, leader uint64) NamespaceMode {
	return NamespaceMode{
		Namespace: r.GetNamespace(), Mode: r.GetMode(), FromDefault: r.GetFromDefault(),
		Version: r.GetVersion(), State: r.GetState(), Leader: leader,
	}
}
