package pdctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/proto/pdpb"
	"github.com/rdb-project/rdb/store/cmdtree"
)

func (a *app) namespaceCommand() *cobra.Command {
	return group("namespace", "Show and set namespace modes and replica counts",
		a.namespaceSetCommand(), a.namespaceGetCommand(), a.namespaceListCommand(), a.namespaceSetReplicasCommand())
}

func (a *app) namespaceSetReplicasCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "set-replicas NAMESPACE N",
		Short: "Set how many stores hold a namespace (1 to 7; odd for a strong namespace)",
		Args:  cobra.ExactArgs(2),
		RunE: a.action(func(ctx context.Context, pd *pdclient.Client, cmd *cobra.Command, args []string) error {
			n, err := strconv.ParseUint(args[1], 10, 32)
			if err != nil {
				return fmt.Errorf("replica count %q is not a number", args[1])
			}
			resp, err := pd.SetNamespaceReplicas(ctx, args[0], uint32(n))
			if err != nil {
				return err
			}
			if a.json() {
				return cmdtree.WriteJSON(a.stdout, struct {
					Name              string `json:"name"`
					ReplicationFactor uint32 `json:"replication_factor"`
					Changed           bool   `json:"changed"`
				}{resp.GetRecord().GetName(), resp.GetRecord().GetReplicationFactor(), resp.GetChanged()})
			}
			_, err = fmt.Fprintf(a.stdout, "namespace %s: %d replicas (changed: %v)\n", args[0], resp.GetRecord().GetReplicationFactor(), resp.GetChanged())
			return err
		}),
	}
}

func (a *app) namespaceSetCommand() *cobra.Command {
	var wait, force bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "set NAMESPACE MODE",
		Short: "Set a namespace's mode (strong or eventual)",
		Long: `Set a namespace's mode: strong (a Raft group, linearizable) or eventual
(last writer wins). Setting the mode a namespace already has changes nothing.
It prints the namespace's version (the PD table revision of the change) and
whether it changed. With --wait it then waits until every up store has
applied that version.`,
		Args: cobra.ExactArgs(2),
		RunE: a.action(func(ctx context.Context, pd *pdclient.Client, cmd *cobra.Command, args []string) error {
			resp, err := pd.SetNamespaceMode(ctx, &pdpb.SetNamespaceModeRequest{Name: args[0], Mode: args[1], Force: force})
			if err != nil {
				return err
			}
			rec := resp.GetRecord()
			var st *pdpb.NamespaceStatus
			if wait {
				if st, err = a.waitApplied(cmd, pd, rec.GetName(), rec.GetVersion(), timeout); err != nil {
					return err
				}
			} else {
				// How far it has rolled out, if nothing changed it since.
				st, err = pd.GetNamespace(ctx, rec.GetName(), false)
				if err != nil || st.GetRecord().GetVersion() != rec.GetVersion() {
					st = &pdpb.NamespaceStatus{Record: rec}
				}
			}
			v := viewNamespace(st)
			if a.json() {
				return cmdtree.WriteJSON(a.stdout, struct {
					Changed   bool          `json:"changed"`
					Namespace namespaceView `json:"namespace"`
				}{resp.GetChanged(), v})
			}
			header := []string{"NAMESPACE", "MODE", "VERSION", "EPOCH", "CHANGED"}
			row := []string{v.Name, v.Mode, fmt.Sprint(v.Version), fmt.Sprint(v.Epoch), fmt.Sprint(resp.GetChanged())}
			if wait {
				header = append(header, "APPLIED")
				row = append(row, fmt.Sprintf("%d/%d", v.AppliedStores, v.UpStores))
			}
			return cmdtree.WriteTable(a.stdout, header, [][]string{row})
		}),
	}
	c.Flags().BoolVar(&wait, "wait", false, "wait until every up store has applied the change and the mode switch is done")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long --wait waits")
	c.Flags().BoolVar(&force, "force", false, "let an eventual -> strong switch go ahead without unreachable stores (their unreplicated writes can be lost)")
	return c
}

// waitApplied polls the namespace until every up store has applied version
// (or a later one), printing progress to stderr.
func (a *app) waitApplied(cmd *cobra.Command, pd *pdclient.Client, name string, version uint64, timeout time.Duration) (*pdpb.NamespaceStatus, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last *pdpb.NamespaceStatus
	lastProgress := ""
	for {
		st, err := pd.GetNamespace(ctx, name, false)
		switch {
		case err == nil:
			last = st
			if st.GetRecord().GetVersion() >= version && st.GetAppliedStores() >= st.GetUpStores() && st.GetState() != "switching" {
				if st.GetUpStores() == 0 {
					fmt.Fprintln(a.stderr, "warning: no store is up: nothing has applied the change yet")
				}
				return st, nil
			}
			p := fmt.Sprintf("waiting for every up store to apply version %d of %q: %d/%d applied",
				version, name, st.GetAppliedStores(), st.GetUpStores())
			if st.GetAppliedStores() >= st.GetUpStores() {
				p = fmt.Sprintf("version %d of %q applied by %d/%d up stores; waiting for the mode switch to finish",
					version, name, st.GetAppliedStores(), st.GetUpStores())
			}
			if p != lastProgress {
				fmt.Fprintln(a.stderr, p)
				lastProgress = p
			}
		case ctx.Err() == nil:
			return nil, err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if cmd.Context().Err() != nil {
				return nil, cmd.Context().Err()
			}
			return nil, a.waitTimeout(cmd, pd, name, version, timeout, last)
		}
	}
}

// waitTimeout says which stores have not applied version.
func (a *app) waitTimeout(cmd *cobra.Command, pd *pdclient.Client, name string, version uint64, timeout time.Duration, last *pdpb.NamespaceStatus) error {
	msg := fmt.Sprintf("timed out after %v waiting for every up store to apply version %d of namespace %q", timeout, version, name)
	if last == nil {
		return errors.New(msg + ": PD did not answer")
	}
	msg += fmt.Sprintf(": %d of %d up stores have", last.GetAppliedStores(), last.GetUpStores())
	if last.GetAppliedStores() >= last.GetUpStores() && last.GetState() == "switching" {
		msg += ", but the mode switch has not finished (a store that is down may hold it: see the PD leader's log," +
			" and 'pdctl namespace set NS MODE --force' to go ahead without it)"
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), a.requestTimeout)
	defer cancel()
	if stores, err := pd.ListStores(ctx); err == nil {
		var lagging []string
		for _, s := range stores {
			if s.GetUp() && s.GetAppliedRevision() < version {
				lagging = append(lagging, fmt.Sprintf("store %d at revision %d", s.GetId(), s.GetAppliedRevision()))
			}
		}
		if len(lagging) > 0 {
			msg += " (behind: " + strings.Join(lagging, ", ") + ")"
		}
	}
	return errors.New(msg)
}

func (a *app) namespaceGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAMESPACE",
		Short: "Show one namespace and how far its version has rolled out",
		Args:  cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, pd *pdclient.Client, cmd *cobra.Command, args []string) error {
			st, err := pd.GetNamespace(ctx, args[0], false)
			if err != nil {
				return err
			}
			v := viewNamespace(st)
			if a.json() {
				return cmdtree.WriteJSON(a.stdout, v)
			}
			return cmdtree.WriteTable(a.stdout, namespaceHeader, [][]string{namespaceRow(v)})
		}),
	}
}

func (a *app) namespaceListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every namespace and how far its version has rolled out",
		Args:  cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, pd *pdclient.Client, cmd *cobra.Command, _ []string) error {
			resp, err := pd.ListNamespaces(ctx)
			if err != nil {
				return err
			}
			views := make([]namespaceView, 0, len(resp.GetNamespaces()))
			for _, st := range resp.GetNamespaces() {
				views = append(views, viewNamespace(st))
			}
			if a.json() {
				return cmdtree.WriteJSON(a.stdout, struct {
					Revision   uint64          `json:"revision"`
					Namespaces []namespaceView `json:"namespaces"`
				}{resp.GetRevision(), views})
			}
			rows := make([][]string, len(views))
			for i, v := range views {
				rows[i] = namespaceRow(v)
			}
			return cmdtree.WriteTable(a.stdout, namespaceHeader, rows)
		}),
	}
}
