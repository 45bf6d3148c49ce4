//go:build amd64 || arm64

package kvs

// prefetch asks the CPU to start loading the cache line at addr and
// returns at once. It never faults, whatever addr is, and the
// garbage collector does not see addr.
func prefetch(addr uintptr)
