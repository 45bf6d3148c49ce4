package realserver

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// sysctls reads and writes sysctls by their key under /proc/sys
// ("net/ipv4/conf/all/arp_ignore").
type sysctls interface {
	Get(key string) (string, error)
	Set(key, value string) error
}

// procSys is the /proc/sys of one network namespace.
type procSys struct {
	root string         // normally /proc/sys
	ns   netns.NsHandle // -1 (netns.None()) for the caller's namespace
}

func (p procSys) Get(key string) (string, error) {
	var v string
	err := p.inNetns(func() error {
		b, err := os.ReadFile(filepath.Join(p.root, key))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("realserver: read sysctl %s: %w", key, err)
	}
	return v, nil
}

func (p procSys) Set(key, value string) error {
	err := p.inNetns(func() error {
		return os.WriteFile(filepath.Join(p.root, key), []byte(value+"\n"), 0o644)
	})
	if err != nil {
		return fmt.Errorf("realserver: write sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// inNetns runs f on an OS thread that has entered p.ns. /proc/sys/net
// resolves to the namespace of the thread that opens the file, so the open
// must happen there. The thread is never switched back: its goroutine exits
// still locked, and the Go runtime then discards the thread, so no other
// goroutine can ever run in the wrong namespace.
func (p procSys) inNetns(f func() error) error {
	if !p.ns.IsOpen() {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread, on purpose (see above).
		if err := netns.Set(p.ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
