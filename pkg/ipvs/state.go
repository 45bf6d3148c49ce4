package ipvs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"sort"
	"time"

	"github.com/lbd-project/lbd/internal/statefile"
)

// StateFileName is the name of the file, in Options.StateDir, that records
// which services lbd owns and which real servers are draining.
const StateFileName = "ipvs-state.json"

// stateFile is the on-disk record. It holds only what the kernel cannot
// tell: ownership and drain deadlines. Everything else is read back from the
// kernel at start.
type stateFile struct {
	Version  int            `json:"version"`
	Services []stateService `json:"services"`
}

type stateService struct {
	Protocol   Protocol    `json:"protocol,omitempty"`
	Addr       netip.Addr  `json:"addr"`
	Port       uint16      `json:"port,omitempty"`
	FWMark     uint32      `json:"fwmark,omitempty"`
	DrainUntil *time.Time  `json:"drain_until,omitempty"`
	Draining   []stateDest `json:"draining,omitempty"`
}

type stateDest struct {
	Addr       netip.Addr `json:"addr"`
	Port       uint16     `json:"port"`
	DrainUntil time.Time  `json:"drain_until"`
}

// ownedState is the in-memory form of stateFile.
type ownedState struct {
	drain map[Key]time.Time             // whole-service drain deadlines
	dests map[Key]map[DestKey]time.Time // real-server drain deadlines
	keys  map[Key]struct{}              // every owned service
}

func loadState(path string) (ownedState, error) {
	st := ownedState{drain: map[Key]time.Time{}, dests: map[Key]map[DestKey]time.Time{}, keys: map[Key]struct{}{}}
	if path == "" {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("ipvs: read state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return st, fmt.Errorf("ipvs: parse state %s: %w", path, err)
	}
	if f.Version != 1 {
		return st, fmt.Errorf("ipvs: state %s: unsupported version %d", path, f.Version)
	}
	for _, s := range f.Services {
		k := s.key()
		st.keys[k] = struct{}{}
		if s.DrainUntil != nil {
			st.drain[k] = *s.DrainUntil
		}
		for _, d := range s.Draining {
			if st.dests[k] == nil {
				st.dests[k] = map[DestKey]time.Time{}
			}
			st.dests[k][DestKey{Addr: d.Addr, Port: d.Port}] = d.DrainUntil
		}
	}
	return st, nil
}

// saveState writes the record atomically: a crash leaves the old file or the
// new one, never a torn one.
func saveState(path string, recs map[Key]*svcRec, pending map[Key]*Service) error {
	if path == "" {
		return nil
	}
	f := stateFile{Version: 1, Services: make([]stateService, 0, len(recs)+len(pending))}
	for k, r := range recs {
		s := stateServiceOf(k)
		if !r.drainUntil.IsZero() {
			t := r.drainUntil
			s.DrainUntil = &t
		}
		for dk, d := range r.dests {
			if !d.drainUntil.IsZero() {
				s.Draining = append(s.Draining, stateDest{Addr: dk.Addr, Port: dk.Port, DrainUntil: d.drainUntil})
			}
		}
		f.Services = append(f.Services, s)
	}
	for k := range pending {
		if _, ok := recs[k]; !ok {
			f.Services = append(f.Services, stateServiceOf(k))
		}
	}
	sort.Slice(f.Services, func(i, j int) bool { return keyLess(f.Services[i].key(), f.Services[j].key()) })
	b, err := json.MarshalIndent(&f, "", " ")
	if err != nil {
		return fmt.Errorf("ipvs: encode state: %w", err)
	}
	if err := statefile.WriteAtomic(path, b); err != nil {
		return fmt.Errorf("ipvs: write state: %w", err)
	}
	return nil
}

func (s *stateService) key() Key {
	return Key{Protocol: s.Protocol, Addr: s.Addr, Port: s.Port, FWMark: s.FWMark}
}

func stateServiceOf(k Key) stateService {
	return stateService{Protocol: k.Protocol, Addr: k.Addr, Port: k.Port, FWMark: k.FWMark}
}

func keyLess(a, b Key) bool {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c < 0
	}
	if a.Protocol != b.Protocol {
		return a.Protocol < b.Protocol
	}
	if a.Port != b.Port {
		return a.Port < b.Port
	}
	return a.FWMark < b.FWMark
}
