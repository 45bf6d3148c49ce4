package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netns"
)

// errNoGARP means the Backup never announced the VIP in time.
var errNoGARP = errors.New("no gratuitous ARP")

// garp is a gratuitous ARP seen on the wire.
type garp struct {
	at  time.Time
	mac net.HardwareAddr
}

// observer captures ARP frames for the VIP in its own namespace.
type observer struct {
	c  *packet.Conn
	ch chan garp
}

// newObserver opens an AF_PACKET socket on eth0 of namespace ns; the socket
// stays in that namespace after the thread switches back.
func newObserver(ns string) (*observer, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", ns, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return nil, fmt.Errorf("enter netns %s: %w", ns, err)
	}
	defer netns.Set(orig)
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return nil, fmt.Errorf("eth0 in %s: %w", ns, err)
	}
	c, err := packet.Listen(ifi, packet.Raw, 0x0806, nil)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET on eth0 in %s: %w", ns, err)
	}
	o := &observer{c: c, ch: make(chan garp, 1024)}
	want := netip.MustParseAddr(vip).As4()
	go func() {
		buf := make([]byte, 128)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				close(o.ch)
				return
			}
			now := time.Now()
			f := buf[:n]
			// Ethernet(14) + ARP: spa at 14+14, tpa at 14+24.
			if n < 42 || binary.BigEndian.Uint16(f[12:14]) != 0x0806 {
				continue
			}
			if !bytes.Equal(f[28:32], want[:]) || !bytes.Equal(f[38:42], want[:]) {
				continue
			}
			select {
			case o.ch <- garp{at: now, mac: append(net.HardwareAddr(nil), f[22:28]...)}:
			default:
			}
		}
	}()
	return o, nil
}

// drain forgets what was seen so far.
func (o *observer) drain() {
	for {
		select {
		case <-o.ch:
		default:
			return
		}
	}
}

// waitGARP returns when the first GARP from mac after t0 was seen.
func (o *observer) waitGARP(mac string, t0 time.Time, limit time.Duration) (time.Time, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return time.Time{}, fmt.Errorf("mac %q: %w", mac, err)
	}
	timeout := time.After(limit)
	for {
		select {
		case g, ok := <-o.ch:
			if !ok {
				return time.Time{}, fmt.Errorf("observer socket closed")
			}
			if bytes.Equal(g.mac, hw) && g.at.After(t0) {
				return g.at, nil
			}
		case <-timeout:
			return time.Time{}, fmt.Errorf("%w from %s within %s", errNoGARP, mac, limit)
		}
	}
}

func (o *observer) close() { o.c.Close() }
