package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkEvent reports that a tracked link went up or down.
type linkEvent struct {
	name string
	up   bool
}

func linkUp(l netlink.Link) bool {
	a := l.Attrs()
	return a.Flags&net.FlagUp != 0 && a.RawFlags&unix.IFF_RUNNING != 0
}

// trackLinks reports the state of each named link at once and then on every
// change, until ctx is done. A deleted link is down.
func trackLinks(ctx context.Context, names []string, log *slog.Logger, out func(linkEvent)) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			log.Warn("vrrp: link subscription", "err", err)
		},
	})
	if err != nil {
		return fmt.Errorf("vrrp: subscribe to link changes: %w", err)
	}
	go func() {
		defer close(done)
		seen := map[string]bool{}
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-ch:
				if !ok {
					return
				}
				name := u.Link.Attrs().Name
				if !want[name] {
					continue
				}
				up := u.Header.Type != unix.RTM_DELLINK && linkUp(u.Link)
				if prev, ok := seen[name]; ok && prev == up {
					continue
				}
				seen[name] = up
				out(linkEvent{name: name, up: up})
			}
		}
	}()
	return nil
}
