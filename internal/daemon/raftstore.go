package daemon

import (
	"context"
	"errors"

	"github.com/lbd-project/lbd/pkg/cluster"
)

// openRaft opens the raft node of pkg/cluster for a file with a cluster
// section.
func (d *Daemon) openRaft(context.Context) (cluster.Store, clusterControl, error) {
	return nil, nil, errors.New("daemon: this build has no raft node yet (pkg/cluster.Open); remove the cluster section")
}
