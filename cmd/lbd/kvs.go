package main

import (
	"context"
	"fmt"
	"io"
)

// runKVS runs `lbd kvs`: a single standalone KVS instance. Owned by the KVS work.
func runKVS(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "lbd kvs: not built yet")
	return 2
}
