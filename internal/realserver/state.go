package realserver

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/lbd-project/lbd/internal/statefile"
)

// stateFile is the name of the state file inside Options.StateDir.
const stateFile = "realserver.json"

const stateVersion = 1

// state is what lbd changed, as recorded on disk.
type state struct {
	Version int `json:"version"`
	// Addresses lists the prefixes lbd added to lo.
	Addresses []netip.Prefix `json:"addresses"`
	// Sysctls maps a key under /proc/sys (e.g.
	// "net/ipv4/conf/all/arp_ignore") to the change lbd made.
	Sysctls map[string]sysctlChange `json:"sysctls"`
}

// sysctlChange is one sysctl lbd changed: the value it found and the value
// it wrote.
type sysctlChange struct {
	Prev string `json:"prev"`
	Set  string `json:"set"`
}

func newState() *state {
	return &state{Version: stateVersion, Sysctls: map[string]sysctlChange{}}
}

func (s *state) ownsAddr(p netip.Prefix) bool { return slices.Contains(s.Addresses, p) }

func (s *state) addAddr(p netip.Prefix) {
	if !s.ownsAddr(p) {
		s.Addresses = append(s.Addresses, p)
	}
}

func (s *state) forgetAddr(p netip.Prefix) {
	s.Addresses = slices.DeleteFunc(s.Addresses, func(q netip.Prefix) bool { return q == p })
}

func (s *state) empty() bool { return len(s.Addresses) == 0 && len(s.Sysctls) == 0 }

// loadState reads the state file in dir; a missing file is an empty state.
func loadState(dir string) (*state, error) {
	path := filepath.Join(dir, stateFile)
	s := newState()
	found, err := statefile.Load(path, s)
	if err != nil {
		return nil, fmt.Errorf("realserver: %w", err)
	}
	if !found {
		return s, nil
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("realserver: state %s: unsupported version %d", path, s.Version)
	}
	if s.Sysctls == nil {
		s.Sysctls = map[string]sysctlChange{}
	}
	return s, nil
}

// save writes s to the state file in dir atomically: a crash leaves either
// the old file or the new one, never a torn one. An empty state removes the
// file.
func (s *state) save(dir string) error {
	path := filepath.Join(dir, stateFile)
	if s.empty() {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("realserver: remove state %s: %w", path, err)
		}
		return syncDir(dir)
	}
	if err := statefile.Save(path, s); err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	return nil
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("realserver: open state dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("realserver: sync state dir %s: %w", dir, err)
	}
	return nil
}
