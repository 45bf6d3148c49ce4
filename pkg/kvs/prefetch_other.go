//go:build !amd64 && !arm64

package kvs

// prefetch does nothing on this architecture.
func prefetch(uintptr) {}
