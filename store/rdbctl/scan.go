package rdbctl

// scan: the keys of a range, page by page through the client's iterator.

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/client"
	"github.com/rdb-project/rdb/store/cmdtree"
)

func (a *app) scanCommand() *cobra.Command {
	var (
		prefix   string
		limit    int
		pageSize uint32
	)
	c := &cobra.Command{
		Use:   "scan NAMESPACE [--prefix PREFIX | START [END]]",
		Short: "List the keys of a range, in key order",
		Long: `List keys in key order: those that start with --prefix, or those from START
(included) to END (excluded; without it, to the last key), or every key of the
namespace. --limit stops after that many keys, and says whether more follow.

scan looks up the namespace's mode first: in a strong namespace each page of
--page-size keys is a linearizable read (Scan) and shows versions; in an
eventual one each page comes from one store's replica (RawScan). The pages
follow one another, so a scan that writes race with is not one snapshot.`,
		Args: cobra.RangeArgs(1, 3),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("prefix") && len(args) > 1 {
				return errors.New("give --prefix or START [END], not both")
			}
			if limit < 0 {
				return errors.New("--limit must be 0 (no limit) or more")
			}
			if pageSize < 1 || pageSize > api.MaxScan {
				return fmt.Errorf("--page-size must be 1 to %d", api.MaxScan)
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, c *client.Client, _ *cobra.Command, args []string) error {
			ns := args[0]
			doc := scanDoc{Namespace: ns, KVs: []kvDoc{}}
			switch {
			case len(args) > 1:
				doc.Start = args[1]
				if len(args) > 2 {
					doc.End = args[2]
				}
			case prefix != "":
				doc.Start, doc.End = prefix, client.PrefixEnd(prefix)
			}
			opts := []client.ScanOption{client.PageSize(pageSize)}
			if limit > 0 {
				// One key more than asked says whether more follow.
				opts = append(opts, client.Limit(limit+1))
			}
			err := a.byMode(ctx, ns, func(mode string) error {
				doc.Mode, doc.KVs = mode, doc.KVs[:0]
				scan := c.RawScan
				if mode == client.Strong {
					scan = c.Scan
				}
				for kv, err := range scan(ctx, ns, doc.Start, doc.End, opts...) {
					if err != nil {
						return err
					}
					doc.KVs = append(doc.KVs, kvDoc{Key: kv.Key, Value: kv.Value, Version: kv.Version})
				}
				return nil
			})
			if err != nil {
				return err
			}
			if limit > 0 && len(doc.KVs) > limit {
				doc.KVs, doc.More = doc.KVs[:limit], true
			}
			doc.Count = len(doc.KVs)
			return a.print(doc, func(w io.Writer) error {
				rows := make([][]string, len(doc.KVs))
				for i, kv := range doc.KVs {
					rows[i] = []string{show(kv.Key), versionOrDash(doc.Mode, kv.Version), show(kv.Value)}
				}
				if err := cmdtree.WriteTable(w, []string{"KEY", "VERSION", "VALUE"}, rows); err != nil {
					return err
				}
				if doc.More {
					fmt.Fprintf(a.stderr, "more keys follow the first %d: raise --limit to see them\n", limit)
				}
				return nil
			})
		}),
	}
	c.Flags().StringVar(&prefix, "prefix", "", "only the keys that start with this")
	c.Flags().IntVar(&limit, "limit", 0, "at most this many keys (0: all)")
	c.Flags().Uint32Var(&pageSize, "page-size", api.DefaultScan, "keys asked of a store per call")
	return c
}
