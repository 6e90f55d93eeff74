package rdbctl

// mode: show a namespace's mode, list them all, or set one.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rdb-project/rdb/store/client"
	"github.com/rdb-project/rdb/store/cmdtree"
)

func (a *app) modeCommand() *cobra.Command {
	var (
		force, wait bool
		timeout     time.Duration
	)
	c := &cobra.Command{
		Use:   "mode [NAMESPACE [strong|eventual]]",
		Short: "Show a namespace's mode, list every namespace's, or set one",
		Long: `With a namespace, show its mode (strong or eventual), its state (active, or
switching while a mode switch is carried out), its version and the store that
leads its Raft group, as the answering store knows them. A namespace never
seen before is created strong ("from_default": true). Without one, list every
namespace the answering store knows.

With a mode, set it (UpdateNamespaceMode; a cluster with TLS takes it only
from an admin's certificate). Setting the mode a namespace has changes
nothing. --wait then waits until every store of --endpoints serves the
namespace in that mode. --force lets an eventual -> strong switch go ahead
without the stores that cannot be reached: the writes only they hold are
lost.`,
		Args: cobra.RangeArgs(0, 2),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 && args[1] != client.Strong && args[1] != client.Eventual {
				return fmt.Errorf("mode must be %s or %s, not %q", client.Strong, client.Eventual, args[1])
			}
			if len(args) < 2 {
				for _, f := range []string{"force", "wait", "timeout"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s goes with a mode to set: rdbctl mode NAMESPACE strong|eventual --%s", f, f)
					}
				}
			}
			if timeout <= 0 {
				return errors.New("--timeout must be positive")
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, c *client.Client, _ *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return a.listModes(ctx, c)
			case 1:
				m, err := c.GetMode(ctx, args[0])
				if err != nil {
					return err
				}
				doc := viewMode(m)
				return a.print(doc, func(w io.Writer) error {
					return cmdtree.WriteTable(w, modeHeader, [][]string{modeRow(doc)})
				})
			}
			return a.setMode(ctx, c, args[0], args[1], force, wait, timeout)
		}),
	}
	c.Flags().BoolVar(&force, "force", false, "let an eventual -> strong switch go ahead without unreachable stores (the writes only they hold are lost)")
	c.Flags().BoolVar(&wait, "wait", false, "wait until every store of --endpoints serves the namespace in the new mode")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long --wait waits")
	return c
}

func (a *app) listModes(ctx context.Context, c *client.Client) error {
	ms, err := c.ListNamespaceModes(ctx)
	if err != nil {
		return err
	}
	docs := make([]modeDoc, len(ms))
	rows := make([][]string, len(ms))
	for i, m := range ms {
		docs[i] = viewMode(m)
		rows[i] = modeRow(docs[i])
	}
	return a.print(struct {
		Namespaces []modeDoc `json:"namespaces"`
	}{docs}, func(w io.Writer) error { return cmdtree.WriteTable(w, modeHeader, rows) })
}

func (a *app) setMode(ctx context.Context, c *client.Client, ns, mode string, force, wait bool, timeout time.Duration) error {
	up, err := c.UpdateNamespaceMode(ctx, ns, mode, force)
	if err != nil {
		if errors.Is(err, client.ErrOutcomeUnknown) {
			return fmt.Errorf("%w; see whether it was (rdbctl mode %s) before setting it again", err, ns)
		}
		return err
	}
	m := up.NamespaceMode
	if wait {
		if m, err = a.waitMode(ctx, ns, mode, up.Version, timeout); err != nil {
			return err
		}
	}
	doc := struct {
		Changed   bool    `json:"changed"`
		Namespace modeDoc `json:"namespace"`
	}{up.Changed, viewMode(m)}
	return a.print(doc, func(w io.Writer) error {
		row := append(modeRow(doc.Namespace), fmt.Sprint(up.Changed))
		return cmdtree.WriteTable(w, append(append([]string{}, modeHeader...), "CHANGED"), [][]string{row})
	})
}

// waitMode polls every store of --endpoints until each serves ns in mode,
// at version or later, printing progress to stderr. It returns the first
// store's view.
func (a *app) waitMode(ctx context.Context, ns, mode string, version uint64, timeout time.Duration) (client.NamespaceMode, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stores := make([]*client.Client, len(a.addrs))
	for i, addr := range a.addrs {
		c, err := a.newClient([]string{addr})
		if err != nil {
			return client.NamespaceMode{}, err
		}
		defer c.Close()
		stores[i] = c
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	views := make([]client.NamespaceMode, len(stores))
	var waiting []string
	lastProgress := ""
	for {
		waiting = waiting[:0]
		for i, c := range stores {
			m, err := c.GetMode(ctx, ns)
			switch {
			case err != nil:
				waiting = append(waiting, fmt.Sprintf("%s (%v)", a.addrs[i], err))
				continue
			case m.Version > version && m.Mode != mode:
				return m, fmt.Errorf("namespace %s was set again meanwhile: %s at version %d (store %s)", ns, m.Mode, m.Version, a.addrs[i])
			}
			views[i] = m
			if m.Version < version || m.Mode != mode || m.State != "active" {
				waiting = append(waiting, fmt.Sprintf("%s (%s, %s, version %d)", a.addrs[i], m.Mode, m.State, m.Version))
			}
		}
		if ctx.Err() == nil && len(waiting) == 0 {
			return views[0], nil
		}
		progress := fmt.Sprintf("namespace %s to be %s (version %d) on %s", ns, mode, version, strings.Join(waiting, ", "))
		if progress != lastProgress && ctx.Err() == nil {
			fmt.Fprintln(a.stderr, "waiting for "+progress)
			lastProgress = progress
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return client.NamespaceMode{}, ctx.Err()
			}
			if lastProgress == "" {
				lastProgress = progress
			}
			return client.NamespaceMode{}, fmt.Errorf("timed out after %v waiting for %s", timeout, lastProgress)
		}
	}
}
