package ipvs

// Batched wraps k so that the Reconciler drives it through the batching
// path (as it does a Netlink), one write at a time underneath.
func Batched(k Kernel) Kernel { return batchedKernel{k} }

type batchedKernel struct{ Kernel }

func (b batchedKernel) batch(ops []op) []error {
	errs := make([]error, len(ops))
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opAddService:
			errs[i] = b.AddService(o.svc)
		case opUpdateService:
			errs[i] = b.UpdateService(o.svc)
		case opDelService:
			errs[i] = b.DelService(o.svc)
		case opAddDest:
			errs[i] = b.AddDest(o.svc, o.dest)
		case opUpdateDest:
			errs[i] = b.UpdateDest(o.svc, o.dest)
		case opDelDest:
			errs[i] = b.DelDest(o.svc, o.dest)
		}
	}
	return errs
}
