//go:build linux

package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The sync-daemon part of the IPVS generic-netlink API (linux/ip_vs.h);
// github.com/moby/ipvs names the commands but has no call for them.
const (
	ipvsCmdNewDaemon = 9
	ipvsCmdDelDaemon = 10
	ipvsCmdGetDaemon = 11

	ipvsCmdAttrDaemon = 3

	ipvsDaemonAttrState       = 1 // u32
	ipvsDaemonAttrMcastIfn    = 2 // string
	ipvsDaemonAttrSyncID      = 3 // u32
	ipvsDaemonAttrSyncMaxlen  = 4 // u16, kernel >= 4.3
	ipvsDaemonAttrMcastGroup  = 5 // in_addr
	ipvsDaemonAttrMcastGroup6 = 6 // in6_addr
	ipvsDaemonAttrMcastPort   = 7 // u16
	ipvsDaemonAttrMcastTTL    = 8 // u8
)

var _ SyncKernel = (*Netlink)(nil)

// encodeSyncDaemon builds the IPVS_CMD_ATTR_DAEMON attribute of d, with
// only the options set (the kernel then picks its defaults).
func encodeSyncDaemon(d SyncDaemon) *nl.RtAttr {
	attr := nl.NewRtAttr(ipvsCmdAttrDaemon, nil)
	attr.AddRtAttr(ipvsDaemonAttrState, nl.Uint32Attr(uint32(d.State)))
	if d.Interface != "" {
		attr.AddRtAttr(ipvsDaemonAttrMcastIfn, nl.ZeroTerminated(d.Interface))
	}
	attr.AddRtAttr(ipvsDaemonAttrSyncID, nl.Uint32Attr(uint32(d.SyncID)))
	if d.MaxLen != 0 {
		attr.AddRtAttr(ipvsDaemonAttrSyncMaxlen, nl.Uint16Attr(d.MaxLen))
	}
	if d.Group.Is4() {
		attr.AddRtAttr(ipvsDaemonAttrMcastGroup, d.Group.AsSlice())
	} else if d.Group.Is6() {
		attr.AddRtAttr(ipvsDaemonAttrMcastGroup6, d.Group.AsSlice())
	}
	if d.Port != 0 {
		attr.AddRtAttr(ipvsDaemonAttrMcastPort, nl.Uint16Attr(d.Port)) // host order, as ipvsadm sends it
	}
	if d.TTL != 0 {
		attr.AddRtAttr(ipvsDaemonAttrMcastTTL, []byte{d.TTL})
	}
	return attr
}

// decodeSyncDaemon parses the attributes nested in IPVS_CMD_ATTR_DAEMON.
func decodeSyncDaemon(b []byte) (SyncDaemon, error) {
	attrs, err := parseAttrs(b)
	if err != nil {
		return SyncDaemon{}, fmt.Errorf("ipvs: sync daemon attributes: %w", err)
	}
	var d SyncDaemon
	for _, a := range attrs {
		v := a.value
		need := func(n int) bool { return len(v) >= n }
		switch a.typ {
		case ipvsDaemonAttrState:
			if need(4) {
				d.State = SyncState(nl.NativeEndian().Uint32(v))
			}
		case ipvsDaemonAttrMcastIfn:
			d.Interface = strings.TrimRight(string(v), "\x00")
		case ipvsDaemonAttrSyncID:
			if need(4) {
				d.SyncID = uint8(nl.NativeEndian().Uint32(v))
			}
		case ipvsDaemonAttrSyncMaxlen:
			if need(2) {
				d.MaxLen = nl.NativeEndian().Uint16(v)
			}
		case ipvsDaemonAttrMcastGroup:
			if need(4) {
				d.Group = netip.AddrFrom4([4]byte(v[:4]))
			}
		case ipvsDaemonAttrMcastGroup6:
			if need(16) {
				d.Group = netip.AddrFrom16([16]byte(v[:16]))
			}
		case ipvsDaemonAttrMcastPort:
			if need(2) {
				d.Port = nl.NativeEndian().Uint16(v)
			}
		case ipvsDaemonAttrMcastTTL:
			if need(1) {
				d.TTL = v[0]
			}
		}
	}
	if d.State != SyncMaster && d.State != SyncBackup {
		return d, fmt.Errorf("ipvs: sync daemon with state %d", d.State)
	}
	return d, nil
}

// SyncDaemons implements SyncKernel: IPVS_CMD_GET_DAEMON, a dump with one
// message per running daemon.
func (n *Netlink) SyncDaemons() ([]SyncDaemon, error) {
	if n.b == nil {
		return nil, errors.New("ipvs: no generic-netlink socket for the sync daemons")
	}
	msgs, err := n.b.request(ipvsCmdGetDaemon, unix.NLM_F_DUMP)
	if err != nil {
		return nil, fmt.Errorf("ipvs: get sync daemons: %w", err)
	}
	var out []SyncDaemon
	for _, m := range msgs {
		attrs, err := parseAttrs(m)
		if err != nil {
			return nil, fmt.Errorf("ipvs: get sync daemons: %w", err)
		}
		for _, a := range attrs {
			if a.typ != ipvsCmdAttrDaemon {
				continue
			}
			d, err := decodeSyncDaemon(a.value)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// StartSyncDaemon implements SyncKernel: IPVS_CMD_NEW_DAEMON.
func (n *Netlink) StartSyncDaemon(d SyncDaemon) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if n.b == nil {
		return errors.New("ipvs: no generic-netlink socket for the sync daemons")
	}
	_, err := n.b.request(ipvsCmdNewDaemon, 0, encodeSyncDaemon(d))
	return err
}

// StopSyncDaemon implements SyncKernel: IPVS_CMD_DEL_DAEMON.
func (n *Netlink) StopSyncDaemon(s SyncState) error {
	if n.b == nil {
		return errors.New("ipvs: no generic-netlink socket for the sync daemons")
	}
	attr := nl.NewRtAttr(ipvsCmdAttrDaemon, nil)
	attr.AddRtAttr(ipvsDaemonAttrState, nl.Uint32Attr(uint32(s)))
	_, err := n.b.request(ipvsCmdDelDaemon, 0, attr)
	return err
}

// request sends one generic-netlink request on the batching socket and
// returns the payloads (after the genl header) of the messages answering
// it: the dump's messages, or none for an acknowledged write.
func (b *batchConn) request(cmd uint8, flags int, attrs ...*nl.RtAttr) ([][]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	req := nl.NewNetlinkRequest(int(b.family), unix.NLM_F_ACK|flags)
	req.AddData(&genlHdr{cmd: cmd, version: 1})
	for _, a := range attrs {
		req.AddData(a)
	}
	if err := b.sock.Send(req); err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		msgs, _, err := b.sock.Receive()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != req.Seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("short netlink error")
				}
				if e := int32(nl.NativeEndian().Uint32(m.Data[0:4])); e != 0 {
					return nil, syscall.Errno(-e)
				}
				return out, nil // the acknowledgement
			default:
				if len(m.Data) >= 4 {
					out = append(out, m.Data[4:])
				}
			}
		}
	}
}

// SetSyncVersion sets the sync protocol version the master daemon sends
// (sysctl net.ipv4.vs.sync_version: 0 for kernels before 2.6.39, 1 since)
// in the namespace of the calling thread.
func SetSyncVersion(v int) error {
	if v != 0 && v != 1 {
		return fmt.Errorf("ipvs: sync version %d: want 0 or 1", v)
	}
	p := filepath.Join("/proc/sys/net/ipv4/vs", "sync_version")
	if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(v) {
		return nil
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(v)), 0o644); err != nil {
		return fmt.Errorf("ipvs: set sync version: %w", err)
	}
	return nil
}

// attr is one netlink attribute: its type (flags masked off) and value.
type attr struct {
	typ   uint16
	value []byte
}

// parseAttrs splits b into netlink attributes, refusing a length that runs
// past the end (nl.ParseRouteAttr panics on those).
func parseAttrs(b []byte) ([]attr, error) {
	var out []attr
	for len(b) >= unix.SizeofNlAttr {
		l := int(nl.NativeEndian().Uint16(b[0:2]))
		typ := nl.NativeEndian().Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofNlAttr || l > len(b) {
			return nil, fmt.Errorf("attribute length %d with %d bytes left", l, len(b))
		}
		out = append(out, attr{typ: typ, value: b[unix.SizeofNlAttr:l]})
		l = (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return out, nil
}
