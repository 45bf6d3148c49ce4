package ipvs

// Batched wraps k so that the Reconciler drives it through the batching
// path (as it does a Netlink), one write at a time underneath.
func Batched(k Kernel) Kernel { return batchedKernel{k} }

type batchedKernel struct{ Kernel }

func (b batchedKernel) batch(ops []op) []error { return writeEach(b.Kernel, ops) }
