//go:build linux

package acl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// batchSize is how many entries one netlink message carries. The kernel
// walks the IPSET_ATTR_ADT list of a message entry by entry (as "ipset
// restore" uses it); 256 IPv6 entries make a message of about 10 KiB.
const batchSize = 256

// ipsetBatch adds or deletes entries with one netlink message per
// batchSize entries, instead of the one message per entry that
// vishvananda/netlink sends: a full apply of 50,000 entries makes ~200
// round trips instead of 50,000. Entries within a message are applied in
// order and the first failure stops the rest, so a batch is not atomic;
// the Manager only batches into sets no rule sees yet, or single entries.
// NLM_F_EXCL is not set, which is "ipset -exist": adding a present entry
// or deleting an absent one succeeds.
func (k *linuxKernel) ipsetBatch(ctx context.Context, cmd int, set string, entries []netip.Prefix) error {
	for len(entries) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(entries), batchSize)
		if err := k.ipsetADT(cmd, set, entries[:n]); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

func (k *linuxKernel) ipsetADT(cmd int, set string, entries []netip.Prefix) error {
	err := nlCall(func() error { return k.execADT(cmd, set, entries) })
	if err != nil {
		return fmt.Errorf("%d entries from %s: %w", len(entries), entries[0], err)
	}
	return nil
}

// execADT sends one IPSET_ATTR_ADT message carrying entries.
func (k *linuxKernel) execADT(cmd int, set string, entries []netip.Prefix) error {
	req := nl.NewNetlinkRequest(cmd|(unix.NFNL_SUBSYS_IPSET<<8), nl.GetIpsetFlags(cmd))
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: k.batchSock}
	req.AddData(&nl.Nfgenmsg{NfgenFamily: uint8(unix.AF_NETLINK), Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(set)))
	adt := nl.NewRtAttr(nl.IPSET_ATTR_ADT|int(nl.NLA_F_NESTED), nil)
	for _, p := range entries {
		typ := nl.IPSET_ATTR_IPADDR_IPV4
		if p.Addr().Is6() {
			typ = nl.IPSET_ATTR_IPADDR_IPV6
		}
		ip := nl.NewRtAttr(nl.IPSET_ATTR_IP|int(nl.NLA_F_NESTED), nil)
		ip.AddChild(nl.NewRtAttr(typ|int(nl.NLA_F_NET_BYTEORDER), p.Addr().AsSlice()))
		data := nl.NewRtAttr(nl.IPSET_ATTR_DATA|int(nl.NLA_F_NESTED), nil)
		data.AddChild(ip)
		data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_CIDR, nl.Uint8Attr(uint8(p.Bits()))))
		adt.AddChild(data)
	}
	req.AddData(adt)
	// The kernel insists on a line number beside an IPSET_ATTR_ADT list
	// (it is what it reports errors against for "ipset restore").
	req.AddData(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_LINENO | nl.NLA_F_NET_BYTEORDER, Value: 0})
	_, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	var errno syscall.Errno
	if errors.As(err, &errno) && int(errno) >= nl.IPSET_ERR_PRIVATE {
		return nl.IPSetError(uintptr(errno))
	}
	return err
}

// ipsetFlagListHeader asks a list dump for set headers only
// (IPSET_FLAG_LIST_HEADER in linux/netfilter/ipset/ip_set.h).
const ipsetFlagListHeader = 1 << 2

// setSizes lists every set's entry count from the headers alone, without
// dumping entries: what State needs, at a fraction of listSets' cost.
func (k *linuxKernel) setSizes(ctx context.Context) (map[string]int, error) {
	msgs, err := k.ipsetDump(ipsetFlagListHeader)
	if err != nil {
		return nil, err
	}
	return parseSetSizes(msgs)
}

// ipsetDump lists every set (IPSET_CMD_LIST) with the given command flags
// and returns the raw messages. A dump that races with a change is flagged
// by the kernel; it is retried.
func (k *linuxKernel) ipsetDump(flags uint32) (msgs [][]byte, err error) {
	for range 3 {
		err = nlCall(func() error {
			req := nl.NewNetlinkRequest(nl.IPSET_CMD_LIST|(unix.NFNL_SUBSYS_IPSET<<8), nl.GetIpsetFlags(nl.IPSET_CMD_LIST))
			req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: k.batchSock}
			req.AddData(&nl.Nfgenmsg{NfgenFamily: uint8(unix.AF_NETLINK), Version: nl.NFNETLINK_V0})
			req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
			if flags != 0 {
				req.AddData(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_FLAGS | nl.NLA_F_NET_BYTEORDER, Value: flags})
			}
			var err error
			msgs, err = req.Execute(unix.NETLINK_NETFILTER, 0)
			return err
		})
		if !errors.Is(err, nl.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return msgs, nil
}
