// Package sysmem tells how much memory the machine has, for the upper
// bounds of the sizes an operator or a tenant may configure.
package sysmem

// Total returns the machine's physical memory in bytes, 0 if it cannot
// tell.
func Total() int64 { return total() }
