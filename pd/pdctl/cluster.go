package pdctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdb-project/rdb/pd/pdclient"
	"github.com/rdb-project/rdb/store/cmdtree"
)

func (a *app) storeCommand() *cobra.Command {
	return group("store", "Show and remove stores", a.storeListCommand(), a.storeRemoveCommand())
}

func (a *app) storeRemoveCommand() *cobra.Command {
	var wait bool
	c := &cobra.Command{
		Use:   "remove ID",
		Short: "Drain a store: its replicas move to other stores, then it is removed for good (its id is never used again)",
		Args:  cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, pd *pdclient.Client, cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("store id %q is not a positive number", args[0])
			}
			st, err := pd.RemoveStore(ctx, id)
			if err != nil {
				return err
			}
			for wait && st.GetState() != "removed" {
				select {
				case <-ctx.Done():
					return fmt.Errorf("store %d is still %s with %d replicas: %w", id, st.GetState(), st.GetReplicaCount(), ctx.Err())
				case <-time.After(500 * time.Millisecond):
				}
				stores, err := pd.ListStores(ctx)
				if err != nil {
					return err
				}
				for _, s := range stores {
					if s.GetId() == id {
						st = s
					}
				}
			}
			v := viewStore(st)
			if a.json() {
				return cmdtree.WriteJSON(a.stdout, v)
			}
			_, err = fmt.Fprintf(a.stdout, "store %d is %s (%d replicas left)\n", v.ID, v.State, v.ReplicaCount)
			return err
		}),
	}
	c.Flags().BoolVar(&wait, "wait", false, "wait until the store is removed (bounded by --request-timeout)")
	return c
}

func (a *app) storeListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the registered stores: address, state, last heartbeat, applied table revision, replica and leader counts",
		Args:  cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, pd *pdclient.Client, cmd *cobra.Command, _ []string) error {
			stores, err := pd.ListStores(ctx)
			if err != nil {
				return err
			}
			views := make([]storeView, len(stores))
			for i, s := range stores {
				views[i] = viewStore(s)
			}
			if a.json() {
				return cmdtree.WriteJSON(a.stdout, struct {
					Stores []storeView `json:"stores"`
				}{views})
			}
			now := time.Now()
			rows := make([][]string, len(views))
			for i, v := range views {
				rows[i] = []string{fmt.Sprint(v.ID), v.Addr, v.State, age(v.LastHeartbeat, now), fmt.Sprint(v.AppliedRevision),
					fmt.Sprint(v.ReplicaCount), fmt.Sprint(v.LeaderCount)}
			}
			return cmdtree.WriteTable(a.stdout, []string{"ID", "ADDRESS", "STATE", "LAST_HEARTBEAT", "APPLIED_REVISION", "REPLICAS", "LEADERS"}, rows)
		}),
	}
}

func (a *app) memberCommand() *cobra.Command {
	return group("member", "Show the PD members", &cobra.Command{
		Use:   "list",
		Short: "List the PD members and which one leads",
		Args:  cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, pd *pdclient.Client, cmd *cobra.Command, _ []string) error {
			resp, err := pd.GetMembers(ctx)
			if err != nil {
				return err
			}
			views := make([]memberView, len(resp.GetMembers()))
			for i, m := range resp.GetMembers() {
				views[i] = viewMember(m)
			}
			if a.json() {
				return cmdtree.WriteJSON(a.stdout, struct {
					Leader  string       `json:"leader"`
					Members []memberView `json:"members"`
				}{resp.GetLeader().GetName(), views})
			}
			rows := make([][]string, len(views))
			for i, v := range views {
				rows[i] = []string{v.Name, v.ID, joinOrDash(v.ClientURLs), joinOrDash(v.PeerURLs), fmt.Sprint(v.IsLeader)}
			}
			return cmdtree.WriteTable(a.stdout, []string{"NAME", "ID", "CLIENT_URLS", "PEER_URLS", "LEADER"}, rows)
		}),
	})
}

// clusterStatus is `cluster status -o json`.
type clusterStatus struct {
	Leader      string   `json:"leader"` // "" when there is none
	Members     int      `json:"members"`
	StoresUp    int      `json:"stores_up"`
	StoresTotal int      `json:"stores_total"`
	Namespaces  int      `json:"namespaces"`
	Revision    uint64   `json:"revision"`
	AllApplied  bool     `json:"all_applied"`
	NotApplied  []string `json:"not_applied"` // namespaces some up store has not applied or is switching
	// Placement: namespaces with fewer live replicas than they should
	// have, and namespaces whose replicas are moving.
	UnderReplicated []string `json:"under_replicated"`
	Moving          []string `json:"moving"`
}

func (a *app) clusterCommand() *cobra.Command {
	return group("cluster", "Show the whole cluster", &cobra.Command{
		Use:   "status",
		Short: "Show the leader, members, stores up, and whether every namespace has rolled out",
		Args:  cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, pd *pdclient.Client, cmd *cobra.Command, _ []string) error {
			members, err := pd.GetMembers(ctx)
			if err != nil {
				return err
			}
			stores, err := pd.ListStores(ctx)
			if err != nil {
				return err
			}
			nss, err := pd.ListNamespaces(ctx)
			if err != nil {
				return err
			}
			st := clusterStatus{
				Leader:      members.GetLeader().GetName(),
				Members:     len(members.GetMembers()),
				StoresTotal: len(stores),
				Namespaces:  len(nss.GetNamespaces()),
				Revision:    nss.GetRevision(),
				NotApplied:  []string{},
			}
			for _, s := range stores {
				if s.GetUp() {
					st.StoresUp++
				}
			}
			for _, ns := range nss.GetNamespaces() {
				if ns.GetAppliedStores() < ns.GetUpStores() || ns.GetState() != "active" {
					st.NotApplied = append(st.NotApplied, ns.GetRecord().GetName())
				}
			}
			st.AllApplied = len(st.NotApplied) == 0
			place, err := pd.GetClusterStatus(ctx)
			if err != nil {
				return err
			}
			st.UnderReplicated, st.Moving = []string{}, []string{}
			for _, ns := range place.GetUnderReplicated() {
				st.UnderReplicated = append(st.UnderReplicated, ns.GetRecord().GetName())
			}
			for _, ns := range place.GetMoving() {
				st.Moving = append(st.Moving, ns.GetRecord().GetName())
			}
			if a.json() {
				return cmdtree.WriteJSON(a.stdout, st)
			}
			leader := st.Leader
			if leader == "" {
				leader = "none"
			}
			applied := "all applied by every up store"
			if !st.AllApplied {
				applied = fmt.Sprintf("%d rolling out: %s", len(st.NotApplied), someNames(st.NotApplied))
			}
			rows := [][]string{
				{"leader", leader},
				{"members", fmt.Sprint(st.Members)},
				{"stores", fmt.Sprintf("%d/%d up", st.StoresUp, st.StoresTotal)},
				{"namespaces", fmt.Sprintf("%d (%s)", st.Namespaces, applied)},
				{"revision", fmt.Sprint(st.Revision)},
				{"under-replicated", listOrNone(st.UnderReplicated)},
				{"moving", listOrNone(st.Moving)},
			}
			return cmdtree.WriteTable(a.stdout, []string{"FIELD", "VALUE"}, rows)
		}),
	})
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d: %s", len(names), someNames(names))
}

// tableNames is how many names a list in the table shows: a cluster of
// 100,000 namespaces can have thousands in one list, which -o json gives
// whole.
const tableNames = 10

// someNames joins the first tableNames names and says how many more there
// are.
func someNames(names []string) string {
	if len(names) <= tableNames {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more (-o json lists them all)", strings.Join(names[:tableNames], ", "), len(names)-tableNames)
}
