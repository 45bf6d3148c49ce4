// Package ipvstest provides an in-memory ipvs.Kernel for tests of code that
// drives kernel IPVS, with the kernel's error numbers and a count of the
// writes it received.
package ipvstest

import (
	"sort"
	"sync"
	"syscall"

	"github.com/lbd-project/lbd/pkg/ipvs"
)

// Op names a Kernel method, for counting and for injecting failures.
type Op string

// The Kernel methods.
const (
	Services      Op = "Services"
	Dests         Op = "Dests"
	AddService    Op = "AddService"
	UpdateService Op = "UpdateService"
	DelService    Op = "DelService"
	AddDest       Op = "AddDest"
	UpdateDest    Op = "UpdateDest"
	DelDest       Op = "DelDest"
)

// Fake is an in-memory IPVS table that behaves like the kernel's for the
// calls a Reconciler makes: EEXIST when adding what exists, ESRCH for a
// missing service, ENOENT for a missing real server. It is safe for
// concurrent use.
type Fake struct {
	mu    sync.Mutex
	svcs  map[ipvs.Key]*fakeSvc
	calls map[Op]int
	fail  map[Op]error
}

type fakeSvc struct {
	svc   ipvs.Service
	dests map[ipvs.DestKey]ipvs.Dest
}

var _ ipvs.Kernel = (*Fake)(nil)

// NewFake returns an empty table.
func NewFake() *Fake {
	return &Fake{svcs: map[ipvs.Key]*fakeSvc{}, calls: map[Op]int{}, fail: map[Op]error{}}
}

// FailNext makes every later call of op fail with err until FailNext(op,
// nil).
func (f *Fake) FailNext(op Op, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, op)
	} else {
		f.fail[op] = err
	}
}

// Calls returns how many times op was called.
func (f *Fake) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Writes returns how many write calls (Add/Update/Del) were made.
func (f *Fake) Writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, op := range []Op{AddService, UpdateService, DelService, AddDest, UpdateDest, DelDest} {
		n += f.calls[op]
	}
	return n
}

// Table returns the table's contents sorted, Dests included, for
// comparisons in tests.
func (f *Fake) Table() []ipvs.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]ipvs.Service, 0, len(f.svcs))
	for _, s := range f.svcs {
		c := s.svc
		c.Dests = nil
		for _, d := range s.dests {
			c.Dests = append(c.Dests, d)
		}
		sort.Slice(c.Dests, func(i, j int) bool {
			if c := c.Dests[i].Addr.Compare(c.Dests[j].Addr); c != 0 {
				return c < 0
			}
			return c.Dests[i].Port < c.Dests[j].Port
		})
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key().String() < out[j].Key().String() })
	return out
}

func (f *Fake) begin(op Op) error {
	f.calls[op]++
	return f.fail[op]
}

func norm(s ipvs.Service) ipvs.Service {
	if s.Scheduler == "" {
		s.Scheduler = "wlc"
	}
	s.Dests = nil
	if s.Persistence > 0 {
		// The kernel keeps whole seconds.
		s.Persistence = (s.Persistence + 999_999_999) / 1e9 * 1e9
	}
	return s
}

func destKey(s ipvs.Service, d ipvs.Dest) ipvs.DestKey {
	p := d.Port
	if p == 0 {
		p = s.Port
	}
	return ipvs.DestKey{Addr: d.Addr.Unmap(), Port: p}
}

// Services implements ipvs.Kernel.
func (f *Fake) Services() ([]ipvs.ServiceStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(Services); err != nil {
		return nil, err
	}
	out := make([]ipvs.ServiceStatus, 0, len(f.svcs))
	for _, s := range f.svcs {
		out = append(out, ipvs.ServiceStatus{Service: s.svc})
	}
	return out, nil
}

// service counts a call of op and returns svc's entry: the error injected
// for op, or ESRCH if svc is not in the table. f.mu must be held.
func (f *Fake) service(op Op, svc ipvs.Service) (*fakeSvc, error) {
	if err := f.begin(op); err != nil {
		return nil, err
	}
	s := f.svcs[svc.Key()]
	if s == nil {
		return nil, syscall.ESRCH
	}
	return s, nil
}

// existingDest is service, then the key of d, which must be in svc's
// entry: ENOENT if it is not. f.mu must be held.
func (f *Fake) existingDest(op Op, svc ipvs.Service, d ipvs.Dest) (*fakeSvc, ipvs.DestKey, error) {
	s, err := f.service(op, svc)
	if err != nil {
		return nil, ipvs.DestKey{}, err
	}
	k := destKey(svc, d)
	if _, ok := s.dests[k]; !ok {
		return nil, k, syscall.ENOENT
	}
	return s, k, nil
}

// put stores d under k, with k's normalized address and port.
func (s *fakeSvc) put(k ipvs.DestKey, d ipvs.Dest) {
	d.Addr, d.Port = k.Addr, k.Port
	s.dests[k] = d
}

// Dests implements ipvs.Kernel.
func (f *Fake) Dests(svc ipvs.Service) ([]ipvs.DestStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.service(Dests, svc)
	if err != nil {
		return nil, err
	}
	out := make([]ipvs.DestStatus, 0, len(s.dests))
	for _, d := range s.dests {
		out = append(out, ipvs.DestStatus{Dest: d})
	}
	return out, nil
}

// AddService implements ipvs.Kernel.
func (f *Fake) AddService(svc ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.begin(AddService); err != nil {
		return err
	}
	if f.svcs[svc.Key()] != nil {
		return syscall.EEXIST
	}
	f.svcs[svc.Key()] = &fakeSvc{svc: norm(svc), dests: map[ipvs.DestKey]ipvs.Dest{}}
	return nil
}

// UpdateService implements ipvs.Kernel.
func (f *Fake) UpdateService(svc ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.service(UpdateService, svc)
	if err != nil {
		return err
	}
	s.svc = norm(svc)
	return nil
}

// DelService implements ipvs.Kernel.
func (f *Fake) DelService(svc ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.service(DelService, svc); err != nil {
		return err
	}
	delete(f.svcs, svc.Key())
	return nil
}

// AddDest implements ipvs.Kernel.
func (f *Fake) AddDest(svc ipvs.Service, d ipvs.Dest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.service(AddDest, svc)
	if err != nil {
		return err
	}
	k := destKey(svc, d)
	if _, ok := s.dests[k]; ok {
		return syscall.EEXIST
	}
	s.put(k, d)
	return nil
}

// UpdateDest implements ipvs.Kernel.
func (f *Fake) UpdateDest(svc ipvs.Service, d ipvs.Dest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, k, err := f.existingDest(UpdateDest, svc, d)
	if err != nil {
		return err
	}
	s.put(k, d)
	return nil
}

// DelDest implements ipvs.Kernel.
func (f *Fake) DelDest(svc ipvs.Service, d ipvs.Dest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, k, err := f.existingDest(DelDest, svc, d)
	if err != nil {
		return err
	}
	delete(s.dests, k)
	return nil
}
