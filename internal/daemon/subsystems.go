package daemon

import (
	"context"
	"sync"

	"github.com/lbd-project/lbd/pkg/config"
)

// subsystems holds the per-role workers.
type subsystems struct{}

func (d *Daemon) startSubsystems(ctx context.Context, wg *sync.WaitGroup) error { return nil }
func (d *Daemon) stopSubsystems()                                               {}
func (d *Daemon) reconcileDirector(ctx context.Context, cfg *config.Config, node config.Node, eff []config.ResolvedService) []error {
	return nil
}
func (d *Daemon) reconcileStorage(ctx context.Context, cfg *config.Config, node config.Node) []error {
	return nil
}
