//go:build linux

package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Batching: moby/ipvs sends one request per system call and waits for its
// acknowledgement. Converging thousands of services that way is dominated by
// system calls, so the writes of a plan are packed, many requests per
// sendmsg, on a second socket of the same namespace. Each request is still
// its own netlink message with its own acknowledgement and error, exactly
// what moby/ipvs would send (same attributes), so a failure is pinned to
// the step that caused it.

// batchSize bounds the requests per sendmsg; their acknowledgements must fit
// in the socket's receive buffer (an error echoes its request, ~150 bytes).
const batchSize = 256

// IPVS generic-netlink commands and attributes (linux/ip_vs.h).
const (
	ipvsCmdNewService = 1
	ipvsCmdSetService = 2
	ipvsCmdDelService = 3
	ipvsCmdNewDest    = 5
	ipvsCmdSetDest    = 6
	ipvsCmdDelDest    = 7

	ipvsCmdAttrService = 1
	ipvsCmdAttrDest    = 2

	ipvsSvcAttrAF        = 1
	ipvsSvcAttrProtocol  = 2
	ipvsSvcAttrAddr      = 3
	ipvsSvcAttrPort      = 4
	ipvsSvcAttrFWMark    = 5
	ipvsSvcAttrSchedName = 6
	ipvsSvcAttrFlags     = 7
	ipvsSvcAttrTimeout   = 8
	ipvsSvcAttrNetmask   = 9

	ipvsDestAttrAddr      = 1
	ipvsDestAttrPort      = 2
	ipvsDestAttrFwdMethod = 3
	ipvsDestAttrWeight    = 4
	ipvsDestAttrUThresh   = 5
	ipvsDestAttrLThresh   = 6
)

// batcher is implemented by kernels that can send many writes at once;
// batch returns one error (or nil) per op, in order. opMark steps are
// ignored (nil).
type batcher interface {
	batch(ops []op) []error
}

type batchConn struct {
	mu     sync.Mutex
	sock   *nl.NetlinkSocket
	family uint16
}

// openBatch opens the batching socket in the namespace at netnsPath (the
// caller's when empty); famID is the IPVS generic-netlink family's ID.
func openBatch(netnsPath string, famID uint16) (*batchConn, error) {
	ns := netns.None()
	if netnsPath != "" {
		var err error
		if ns, err = netns.GetFromPath(netnsPath); err != nil {
			return nil, err
		}
		defer ns.Close()
	}
	sock, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_GENERIC)
	if err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
	sock.SetReceiveTimeout(&tv)
	return &batchConn{sock: sock, family: famID}, nil
}

func (b *batchConn) close() { b.sock.Close() }

type genlHdr struct {
	cmd, version uint8
	reserved     uint16
}

func (h *genlHdr) Len() int { return 4 }
func (h *genlHdr) Serialize() []byte {
	return []byte{h.cmd, h.version, 0, 0}
}

func be16(v uint16) []byte { b := make([]byte, 2); binary.BigEndian.PutUint16(b, v); return b }

func addrBytes(a netip.Addr) []byte {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// encodeService mirrors moby/ipvs's fillService.
func encodeService(s *Service) *nl.RtAttr {
	ks := toKernelService(s)
	attr := nl.NewRtAttr(ipvsCmdAttrService, nil)
	attr.AddRtAttr(ipvsSvcAttrAF, nl.Uint16Attr(ks.AddressFamily))
	if ks.FWMark != 0 {
		attr.AddRtAttr(ipvsSvcAttrFWMark, nl.Uint32Attr(ks.FWMark))
	} else {
		attr.AddRtAttr(ipvsSvcAttrProtocol, nl.Uint16Attr(ks.Protocol))
		attr.AddRtAttr(ipvsSvcAttrAddr, addrBytes(s.Key().Addr))
		attr.AddRtAttr(ipvsSvcAttrPort, be16(ks.Port))
	}
	attr.AddRtAttr(ipvsSvcAttrSchedName, nl.ZeroTerminated(ks.SchedName))
	flags := make([]byte, 8)
	nl.NativeEndian().PutUint32(flags[0:4], ks.Flags)
	nl.NativeEndian().PutUint32(flags[4:8], 0xffffffff)
	attr.AddRtAttr(ipvsSvcAttrFlags, flags)
	attr.AddRtAttr(ipvsSvcAttrTimeout, nl.Uint32Attr(ks.Timeout))
	attr.AddRtAttr(ipvsSvcAttrNetmask, nl.Uint32Attr(ks.Netmask))
	return attr
}

// encodeDest mirrors moby/ipvs's fillDestination.
func encodeDest(s *Service, d *Dest) *nl.RtAttr {
	k := d.key(s)
	attr := nl.NewRtAttr(ipvsCmdAttrDest, nil)
	attr.AddRtAttr(ipvsDestAttrAddr, addrBytes(k.Addr))
	attr.AddRtAttr(ipvsDestAttrPort, be16(k.Port))
	attr.AddRtAttr(ipvsDestAttrFwdMethod, nl.Uint32Attr(d.Forward.kernel()))
	attr.AddRtAttr(ipvsDestAttrWeight, nl.Uint32Attr(uint32(d.Weight)))
	attr.AddRtAttr(ipvsDestAttrUThresh, nl.Uint32Attr(0))
	attr.AddRtAttr(ipvsDestAttrLThresh, nl.Uint32Attr(0))
	return attr
}

var opCmd = map[opKind]uint8{
	opAddService: ipvsCmdNewService, opUpdateService: ipvsCmdSetService, opDelService: ipvsCmdDelService,
	opAddDest: ipvsCmdNewDest, opUpdateDest: ipvsCmdSetDest, opDelDest: ipvsCmdDelDest,
}

// batch sends the writes among ops in chunks of batchSize requests per
// system call and collects every acknowledgement.
func (b *batchConn) batch(ops []op) []error {
	b.mu.Lock()
	defer b.mu.Unlock()
	errs := make([]error, len(ops))
	for start := 0; start < len(ops); start += batchSize {
		end := min(start+batchSize, len(ops))
		b.chunk(ops[start:end], errs[start:end])
	}
	return errs
}

func (b *batchConn) chunk(ops []op, errs []error) {
	var buf []byte
	bySeq := make(map[uint32]int, len(ops))
	for i := range ops {
		o := &ops[i]
		cmd, ok := opCmd[o.kind]
		if !ok {
			continue
		}
		req := nl.NewNetlinkRequest(int(b.family), unix.NLM_F_ACK)
		req.AddData(&genlHdr{cmd: cmd, version: 1})
		req.AddData(encodeService(&o.svc))
		if o.hasDest {
			req.AddData(encodeDest(&o.svc, &o.dest))
		}
		bySeq[req.Seq] = i
		buf = append(buf, req.Serialize()...)
	}
	if len(bySeq) == 0 {
		return
	}
	fail := func(err error) {
		for _, i := range bySeq {
			errs[i] = err
		}
	}
	if err := unix.Sendto(b.sock.GetFd(), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		fail(fmt.Errorf("send batch: %w", err))
		return
	}
	for len(bySeq) > 0 {
		msgs, _, err := b.sock.Receive()
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				err = fmt.Errorf("no acknowledgement from the kernel: %w", err)
			}
			fail(err)
			return
		}
		for _, m := range msgs {
			i, ok := bySeq[m.Header.Seq]
			if !ok || m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			delete(bySeq, m.Header.Seq)
			if e := int32(nl.NativeEndian().Uint32(m.Data[0:4])); e != 0 {
				errs[i] = syscall.Errno(-e)
			}
		}
	}
}
