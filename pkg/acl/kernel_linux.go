//go:build linux

package acl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netlinkTimeout bounds one netlink round trip so a wedged kernel call
// surfaces as an error instead of hanging the daemon.
const netlinkTimeout = 10 * time.Second

// linuxKernel is the real kernel: ipset over netlink, rules with iptables
// binaries, both in one network namespace.
type linuxKernel struct {
	opts   Options
	ns     netns.NsHandle // -1 when working in the current namespace
	thread *nsThread      // nil when working in the current namespace
	nlh    *netlink.Handle
	// batchSock carries batched entry changes (see ipsetBatch).
	batchSock *nl.SocketHandle
	ipt       map[family]*iptables.IPTables
}

func newLinuxKernel(opts Options) (kernel, error) {
	k := &linuxKernel{opts: opts, ns: netns.None(), ipt: map[family]*iptables.IPTables{}}
	if opts.NetNS != "" {
		var err error
		if k.ns, err = netns.GetFromPath(opts.NetNS); err != nil {
			return nil, fmt.Errorf("acl: open network namespace %s: %w", opts.NetNS, err)
		}
		if k.thread, err = startNSThread(k.ns); err != nil {
			k.ns.Close()
			return nil, err
		}
	}
	// Sockets are opened on the namespace thread, so they belong to the
	// namespace for good, without the library switching namespaces on a
	// thread of its own.
	if err := k.inNS(context.Background(), k.openSockets); err != nil {
		k.close()
		return nil, err
	}
	return k, nil
}

func (k *linuxKernel) openSockets() error {
	var err error
	if k.nlh, err = netlink.NewHandle(unix.NETLINK_NETFILTER); err != nil {
		return fmt.Errorf("acl: open netlink socket: %w", err)
	}
	if err := k.nlh.SetSocketTimeout(netlinkTimeout); err != nil {
		return fmt.Errorf("acl: netlink socket timeout: %w", err)
	}
	sock, err := nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("acl: open netlink socket: %w", err)
	}
	k.batchSock = &nl.SocketHandle{Socket: sock}
	tv := unix.NsecToTimeval(netlinkTimeout.Nanoseconds())
	if err := sock.SetSendTimeout(&tv); err != nil {
		return fmt.Errorf("acl: netlink socket timeout: %w", err)
	}
	if err := sock.SetReceiveTimeout(&tv); err != nil {
		return fmt.Errorf("acl: netlink socket timeout: %w", err)
	}
	return nil
}

func (k *linuxKernel) close() error {
	if k.nlh != nil {
		k.nlh.Close()
	}
	if k.batchSock != nil {
		k.batchSock.Close()
	}
	if k.thread != nil {
		k.thread.close()
	}
	if k.ns.IsOpen() {
		return k.ns.Close()
	}
	return nil
}

// inNS runs f where processes it starts land in the Manager's namespace.
func (k *linuxKernel) inNS(ctx context.Context, f func() error) error {
	if k.thread == nil {
		return f()
	}
	return k.thread.run(ctx, f)
}

// nlCall guards a netlink call: the library type-asserts errors it gets
// back and would panic on an unexpected one.
func nlCall(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("netlink: %v", r)
		}
	}()
	return f()
}

func isExist(err error) bool {
	var ie nl.IPSetError
	if errors.As(err, &ie) {
		return ie == nl.IPSET_ERR_EXIST || ie == nl.IPSET_ERR_EXIST_SETNAME2
	}
	return errors.Is(err, syscall.EEXIST)
}

func (k *linuxKernel) listSets(ctx context.Context, keep func(string) bool) ([]setInfo, error) {
	msgs, err := k.ipsetDump(0)
	if err != nil {
		return nil, err
	}
	return parseSetDump(msgs, keep)
}

func (k *linuxKernel) createSet(ctx context.Context, name string, f family, maxElem uint32) error {
	af := uint8(unix.AF_INET)
	if f == v6 {
		af = unix.AF_INET6
	}
	err := nlCall(func() error {
		return k.nlh.IpsetCreate(name, setType, netlink.IpsetCreateOptions{Family: af, MaxElements: maxElem})
	})
	if isExist(err) {
		return fmt.Errorf("set %s: %w", name, errExist)
	}
	return err
}

func (k *linuxKernel) addEntries(ctx context.Context, set string, entries []netip.Prefix) error {
	return k.ipsetBatch(ctx, nl.IPSET_CMD_ADD, set, entries)
}

func (k *linuxKernel) delEntries(ctx context.Context, set string, entries []netip.Prefix) error {
	return k.ipsetBatch(ctx, nl.IPSET_CMD_DEL, set, entries)
}

func (k *linuxKernel) swapSets(ctx context.Context, a, b string) error {
	return nlCall(func() error { return k.nlh.IpsetSwap(a, b) })
}

func (k *linuxKernel) destroySet(ctx context.Context, name string) error {
	return nlCall(func() error { return k.nlh.IpsetDestroy(name) })
}

// binaries returns the iptables and iptables-restore commands for f.
func (k *linuxKernel) binaries(f family) (ipt, restore string) {
	base := "iptables"
	if f == v6 {
		base = "ip6tables"
	}
	if k.opts.Backend != BackendAuto {
		base += "-" + string(k.opts.Backend)
	}
	return base, base + "-restore"
}

// iptables returns the go-iptables handle for f; call it inside inNS.
func (k *linuxKernel) iptables(f family) (*iptables.IPTables, error) {
	if ipt := k.ipt[f]; ipt != nil {
		return ipt, nil
	}
	proto := iptables.ProtocolIPv4
	if f == v6 {
		proto = iptables.ProtocolIPv6
	}
	bin, _ := k.binaries(f)
	ipt, err := iptables.New(iptables.IPFamily(proto), iptables.Path(bin), iptables.Timeout(30))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	k.ipt[f] = ipt
	return ipt, nil
}

func (k *linuxKernel) listRules(ctx context.Context, f family, chain string, counters bool) (lines []string, exists bool, err error) {
	err = k.inNS(ctx, func() error {
		ipt, err := k.iptables(f)
		if err != nil {
			return err
		}
		if counters {
			lines, err = ipt.ListWithCounters("filter", chain)
		} else {
			lines, err = ipt.List("filter", chain)
		}
		if err == nil {
			exists = true
			return nil
		}
		// The message for a missing chain differs between backends
		// and versions; ask directly.
		ok, cerr := ipt.ChainExists("filter", chain)
		if cerr == nil && !ok {
			return nil
		}
		return err
	})
	return lines, exists, err
}

func (k *linuxKernel) restore(ctx context.Context, f family, input []byte) error {
	_, bin := k.binaries(f)
	return k.inNS(ctx, func() error {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, "--noflush", "--wait")
		cmd.Stdin = bytes.NewReader(input)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w: %s", bin, err, strings.TrimSpace(stderr.String()))
		}
		return nil
	})
}
