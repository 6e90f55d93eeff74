package pdctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdb-project/rdb/pd/pdclient"
)

func (a *app) storeCommand() *cobra.Command {
	return group("store", "Show the stores", &cobra.Command{
		Use:   "list",
		Short: "List the registered stores: address, up or down, last heartbeat, applied table revision",
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
				return writeJSON(a.stdout, struct {
					Stores []storeView `json:"stores"`
				}{views})
			}
			now := time.Now()
			rows := make([][]string, len(views))
			for i, v := range views {
				rows[i] = []string{fmt.Sprint(v.ID), v.Addr, v.State, age(v.LastHeartbeat, now), fmt.Sprint(v.AppliedRevision)}
			}
			return table(a.stdout, []string{"ID", "ADDRESS", "STATE", "LAST_HEARTBEAT", "APPLIED_REVISION"}, rows)
		}),
	})
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
				return writeJSON(a.stdout, struct {
					Leader  string       `json:"leader"`
					Members []memberView `json:"members"`
				}{resp.GetLeader().GetName(), views})
			}
			rows := make([][]string, len(views))
			for i, v := range views {
				rows[i] = []string{v.Name, v.ID, joinOrDash(v.ClientURLs), joinOrDash(v.PeerURLs), fmt.Sprint(v.IsLeader)}
			}
			return table(a.stdout, []string{"NAME", "ID", "CLIENT_URLS", "PEER_URLS", "LEADER"}, rows)
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
			if a.json() {
				return writeJSON(a.stdout, st)
			}
			leader := st.Leader
			if leader == "" {
				leader = "none"
			}
			applied := "all applied by every up store"
			if !st.AllApplied {
				applied = fmt.Sprintf("%d rolling out: %s", len(st.NotApplied), strings.Join(st.NotApplied, ", "))
			}
			rows := [][]string{
				{"leader", leader},
				{"members", fmt.Sprint(st.Members)},
				{"stores", fmt.Sprintf("%d/%d up", st.StoresUp, st.StoresTotal)},
				{"namespaces", fmt.Sprintf("%d (%s)", st.Namespaces, applied)},
				{"revision", fmt.Sprint(st.Revision)},
			}
			return table(a.stdout, []string{"FIELD", "VALUE"}, rows)
		}),
	})
}
