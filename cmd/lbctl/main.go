// Command lbctl is the operator's CLI for lbd.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "lbctl: not built yet")
	os.Exit(2)
}
