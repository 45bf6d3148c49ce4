package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
)

// The kernel-facing parts of a running instance, behind small interfaces so
// that the instance's logic (and a sync group's) can be tested with fakes.
type (
	advertSender interface{ send(*Advertisement) error }
	announcer    interface{ send(repeat int) error }
	vipOwner     interface {
		add() error
		// remove returns the VIPs that were on the link.
		remove() ([]netip.Prefix, error)
	}
)

// runtime is what Run sets up: the machine and the kernel-facing parts.
type runtime struct {
	machine *Machine
	conn    advertSender
	garp    announcer
	vips    vipOwner
	src     netip.Addr
	peers   map[netip.Addr]bool

	garpTimer    *time.Timer
	garpBurst    bool       // the next garpTimer fire is the delayed burst
	lastAnnounce time.Time  // see answerLowerMaster
	lowerAt      time.Time  // last advert from a lower-priority Master
	lowerSrc     netip.Addr // sender of the advert being handled
	lowerPrevSrc netip.Addr // sender of the last lower-priority advert
	warned       map[netip.Addr]bool
}

// m returns the state machine; only valid on the Run goroutine.
func (i *Instance) m() *Machine { return i.rt.machine }

// Run runs the instance until ctx is done, then stops it cleanly: a Master
// sends priority 0 (so that the Backup takes over after Skew_Time) and
// removes its VIPs. It returns an error if the instance could not start or
// its socket failed; a clean stop returns nil. Run may be called once.
func (i *Instance) Run(ctx context.Context) error {
	i.mu.Lock()
	if i.running {
		i.mu.Unlock()
		return fmt.Errorf("vrrp: %s: already running", i)
	}
	i.running = true
	i.mu.Unlock()

	c, g, h, err := i.setup(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for the interface
		}
		return err
	}
	defer c.close()
	defer g.close()
	defer h.Close()

	nctx, ncancel := context.WithCancel(context.Background())
	ndone := make(chan struct{})
	go func() { defer close(ndone); i.notifier.run(nctx) }()
	defer func() { ncancel(); <-ndone }()

	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	tracked := append([]string{i.cfg.Interface}, i.cfg.TrackInterfaces...)
	err = trackLinks(tctx, tracked, i.log, func(e linkEvent) { i.SetFault("link "+e.name, !e.up) })
	if err != nil {
		return fmt.Errorf("vrrp: %s: %w", i, err)
	}

	rx := make(chan rxPacket, 64)
	rxErr := make(chan error, 1)
	loopDone := make(chan struct{})
	defer close(loopDone) // runs before the socket closes, which ends the reader
	go func() {
		buf := make([]byte, 1500)
		for {
			p, err := c.read(buf)
			if err != nil {
				rxErr <- err
				return
			}
			select {
			case rx <- p:
			case <-loopDone:
				return
			}
		}
	}()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer i.rt.garpTimer.Stop()

	// Drop VIPs left over by an earlier run that died (kill -9).
	i.exec(i.m().Start(time.Now()))
	for _, name := range tracked {
		if l, err := netlink.LinkByName(name); err != nil || !linkUp(l) {
			i.exec(i.applyFault(time.Now(), "link "+name, true))
		}
	}
	i.log.Info("vrrp: started", "interface", i.cfg.Interface, "priority", i.cfg.Priority,
		"advert_int", i.cfg.AdvertInterval, "source", i.rt.src, "peers", i.cfg.UnicastPeers)
	var held time.Time // a master-down deadline the sync group holds back
	for {
		d := i.m().Deadline()
		i.publishDownAt()
		if !d.IsZero() && !d.Equal(held) {
			timer.Reset(time.Until(d))
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			i.exec(i.m().Stop(time.Now()))
			i.log.Info("vrrp: stopped")
			return nil
		case err := <-rxErr:
			i.exec(i.m().Stop(time.Now()))
			return fmt.Errorf("vrrp: %s: %w", i, err)
		case p := <-rx:
			i.receive(p)
		case <-timer.C:
			// Adverts that arrived before the deadline count, even if the
			// loop sees the timer first (select picks at random, and a
			// loaded host may run us late).
			for drained := false; !drained; {
				select {
				case p := <-rx:
					i.receive(p)
				default:
					drained = true
				}
			}
			now := time.Now()
			if d := i.m().Deadline(); d.IsZero() || now.Before(d) {
				continue
			}
			if i.group != nil && i.m().State() == StateBackup && !i.group.canGoMaster(i, now) {
				// Another member still hears a Master: wait for it (or for
				// the member that times out last to move us all).
				held = i.m().Deadline()
				i.log.Debug("vrrp: master down, held back by sync group")
				continue
			}
			i.exec(i.m().Tick(now))
		case <-i.rt.garpTimer.C:
			i.garpTimerFired()
		case <-i.ctl.wake:
			for _, f := range i.ctl.take() {
				i.exec(f(time.Now()))
			}
		}
	}
}

// setup resolves the interface and opens the sockets.
func (i *Instance) setup(ctx context.Context) (*conn, *garpSender, *netlink.Handle, error) {
	link, err := netlink.LinkByName(i.cfg.Interface)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("vrrp: %s: find interface %s: %w", i, i.cfg.Interface, err)
	}
	ifi, err := net.InterfaceByIndex(link.Attrs().Index)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("vrrp: %s: interface %s: %w", i, i.cfg.Interface, err)
	}
	src := i.cfg.SourceAddr
	switch {
	case src.IsValid():
	case i.cfg.IPv6():
		src, err = linkLocalAddr(ctx, link, i.log)
	default:
		src, err = primaryAddr(link, i.cfg.VIPs)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("vrrp: %s: %w", i, err)
	}
	p := i.cfg.params()
	p.LocalAddr = src
	m, err := NewMachine(p)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("vrrp: %s: %w", i, err)
	}
	c, err := listen(ifi, src, i.cfg.UnicastPeers)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("vrrp: %s: %w", i, err)
	}
	g, err := newGARPSender(ifi, i.cfg.vipAddrs(), i.cfg.IPv6() && ipv6Forwarding(ifi.Name))
	if err != nil {
		c.close()
		return nil, nil, nil, fmt.Errorf("vrrp: %s: %w", i, err)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		c.close()
		g.close()
		return nil, nil, nil, fmt.Errorf("vrrp: %s: open netlink: %w", i, err)
	}
	i.rt = newRuntime(m, c, g, newVIPManager(h, link, i.cfg.VIPs), src, i.cfg.UnicastPeers)
	return c, g, h, nil
}

func newRuntime(m *Machine, c advertSender, g announcer, v vipOwner, src netip.Addr, peers []netip.Addr) *runtime {
	rt := &runtime{machine: m, conn: c, garp: g, vips: v, src: src, peers: map[netip.Addr]bool{}}
	for _, p := range peers {
		rt.peers[p.WithZone("")] = true // received sources carry no zone
	}
	rt.garpTimer = time.NewTimer(time.Hour)
	rt.garpTimer.Stop()
	return rt
}

// receive checks one packet (RFC 5798 section 7.1) and feeds it to the machine.
func (i *Instance) receive(p rxPacket) {
	if len(p.b) < 2 || p.b[1] != i.cfg.VRID {
		return // another virtual router's
	}
	if p.src == i.rt.src {
		return
	}
	if len(i.cfg.UnicastPeers) > 0 && !i.rt.peers[p.src] {
		i.st.source.Add(1)
		i.log.Debug("vrrp: advert from unexpected source dropped", "src", p.src)
		return
	}
	if p.ttl != TTL {
		i.st.ttl.Add(1)
		i.log.Debug("vrrp: advert with TTL != 255 dropped", "src", p.src, "ttl", p.ttl)
		return
	}
	a, err := Decode(p.b, p.src, p.dst)
	if err != nil {
		i.st.invalid.Add(1)
		i.log.Debug("vrrp: invalid advert dropped", "src", p.src, "err", err)
		return
	}
	i.st.received.Add(1)
	i.checkPeerConfig(p.src, a)
	i.rt.lowerSrc = p.src
	i.exec(i.m().Advert(time.Now(), p.src, a))
	if s := i.m().State(); s == StateBackup {
		i.mu.Lock()
		i.master = i.m().Master()
		i.mu.Unlock()
	}
}

// exec performs the machine's actions in order.
func (i *Instance) exec(as []Action) {
	for n, a := range as {
		switch a.Kind {
		case ActionSend:
			if n+1 < len(as) && as[n+1].Kind == ActionAnnounce && !i.answerLowerMaster(time.Now()) {
				return // the advert and the announce that answer a lower-priority Master
			}
			i.sendAdvert(a.Priority)
		case ActionTransition:
			i.transition(a.From, a.To, a.forced)
		case ActionAnnounce:
			i.log.Info("vrrp: another router claims Master with a lower priority; announcing VIPs", "src", i.rt.lowerSrc)
			i.sendGARP(i.cfg.GARPMasterRepeat)
		}
	}
}

// announceEvery limits answers to a lower-priority Master that keeps
// advertising (it cannot hear us, e.g. a one-way link).
const announceEvery = time.Second

// answerLowerMaster decides whether to answer an advert from a
// lower-priority Master (i.rt.lowerSrc): always the first of an episode (a
// new sender, or one quiet for 3 intervals), then at most once a second.
func (i *Instance) answerLowerMaster(now time.Time) bool {
	rt := i.rt
	newEpisode := rt.lowerSrc != rt.lowerPrevSrc || now.Sub(rt.lowerAt) > 3*i.cfg.AdvertInterval
	rt.lowerPrevSrc, rt.lowerAt = rt.lowerSrc, now
	if newEpisode || now.Sub(rt.lastAnnounce) >= announceEvery {
		rt.lastAnnounce = now
		return true
	}
	return false
}

func (i *Instance) sendAdvert(prio uint8) {
	adv := &Advertisement{VRID: i.cfg.VRID, Priority: prio, Interval: i.cfg.AdvertInterval, Addresses: i.cfg.vipAddrs()}
	if err := i.rt.conn.send(adv); err != nil {
		i.st.sendErrs.Add(1)
		i.log.Warn("vrrp: send advert", "priority", prio, "err", err)
		return
	}
	i.st.sent.Add(1)
}

// checkPeerConfig warns once per sender whose adverts carry other VIPs or
// another interval than ours: RFC 5798 section 7.1 says to log it (and
// Backup follows the Master's interval), and it is usually a config error.
func (i *Instance) checkPeerConfig(src netip.Addr, a *Advertisement) {
	if a.Priority == PriorityStop || i.rt.warned[src] {
		return
	}
	want := i.cfg.vipAddrs()
	same := len(a.Addresses) == len(want) && a.Interval == i.cfg.AdvertInterval
	for n := 0; same && n < len(want); n++ {
		same = slices.Contains(a.Addresses, want[n])
	}
	if !same {
		if i.rt.warned == nil {
			i.rt.warned = map[netip.Addr]bool{}
		}
		i.rt.warned[src] = true
		i.log.Warn("vrrp: peer's advert differs from our config", "src", src,
			"their_vips", a.Addresses, "our_vips", want, "their_interval", a.Interval, "our_interval", i.cfg.AdvertInterval)
	}
}
