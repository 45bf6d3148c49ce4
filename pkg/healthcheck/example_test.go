package healthcheck_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/lbd-project/lbd/pkg/healthcheck"
)

// The daemon's use: one Checker for every real server, transitions turned
// into weight changes, Update on every reload.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	c := healthcheck.New(healthcheck.Options{
		Logger: log,
		OnTransition: func(tr healthcheck.Transition) {
			// e.g. set the IPVS destination's weight to 0 (inhibit_on_failure)
			// or back to its configured weight.
			log.Info("real server changed", "id", tr.ID, "up", tr.Up, "reason", tr.Reason)
		},
	})

	// Seed 000's TCP_CHECK: connect_timeout 3, delay_before_retry 5, delay_loop 10.
	spec := healthcheck.DefaultSpec()
	spec.ConnectTimeout = 3 * time.Second
	spec.DelayBeforeRetry = 5 * time.Second
	spec.DelayLoop = 10 * time.Second
	err := c.Update([]healthcheck.Target{
		{ID: "203.0.113.10:13101/192.168.12.233", Addr: netip.MustParseAddrPort("192.168.12.233:13101"), Spec: spec},
		{ID: "203.0.113.10:13101/192.168.12.234", Addr: netip.MustParseAddrPort("192.168.12.234:13101"), Spec: spec},
	})
	if err != nil {
		log.Error("bad targets", "error", err)
		return
	}
	go c.Run(ctx)

	for _, st := range c.States() {
		log.Info("state", "id", st.ID, "up", st.Up, "since", st.Since)
	}
}
