// Command rdb-server runs one store of an rdb cluster.
package main

import (
	"fmt"
	"os"

	"github.com/rdb-project/rdb/store/cli"
)

func main() {
	if err := cli.NewCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "rdb-server:", err)
		os.Exit(1)
	}
}
