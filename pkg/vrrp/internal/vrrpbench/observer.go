package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
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

// advert is the last VRRP advert seen from one sender.
type advert struct {
	at   time.Time
	prio uint8
}

// observer captures, in its own namespace, the gratuitous ARPs for the VIP
// and the VRRP adverts on the link.
type observer struct {
	c  *packet.Conn
	ch chan garp

	mu   sync.Mutex
	last map[netip.Addr]advert
}

// newObserver opens an AF_PACKET socket for every protocol on eth0 of
// namespace ns; the socket stays in that namespace after the thread
// switches back.
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
	const ethPAll = 0x0003
	c, err := packet.Listen(ifi, packet.Raw, ethPAll, nil)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET on eth0 in %s: %w", ns, err)
	}
	o := &observer{c: c, ch: make(chan garp, 1024), last: map[netip.Addr]advert{}}
	go o.read()
	return o, nil
}

func (o *observer) read() {
	want := netip.MustParseAddr(vip).As4()
	buf := make([]byte, 2048)
	for {
		n, _, err := o.c.ReadFrom(buf)
		if err != nil {
			close(o.ch)
			return
		}
		now := time.Now()
		f := buf[:n]
		if n < 34 {
			continue
		}
		switch binary.BigEndian.Uint16(f[12:14]) {
		case 0x0806:
			// Ethernet(14) + ARP: sender MAC at 22, spa at 28, tpa at 38.
			if n < 42 || !bytes.Equal(f[28:32], want[:]) || !bytes.Equal(f[38:42], want[:]) {
				continue
			}
			select {
			case o.ch <- garp{at: now, mac: append(net.HardwareAddr(nil), f[22:28]...)}:
			default:
			}
		case 0x0800:
			ihl := int(f[14]&0x0f) * 4
			if f[14+9] != 112 || n < 14+ihl+3 {
				continue
			}
			src := netip.AddrFrom4([4]byte(f[26:30]))
			o.mu.Lock()
			o.last[src] = advert{at: now, prio: f[14+ihl+2]}
			o.mu.Unlock()
		}
	}
}

// lastAdvert returns the last advert seen from src.
func (o *observer) lastAdvert(src string) (advert, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, ok := o.last[netip.MustParseAddr(src)]
	return a, ok
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
