//go:build !linux

package main

import "os"

// isTerminal reports whether f is a character device; off Linux lbctl does
// not ask the terminal itself.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
