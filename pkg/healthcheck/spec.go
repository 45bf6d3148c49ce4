package healthcheck

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Type is the kind of probe a Spec runs.
type Type int

// The probe kinds.
const (
	// TCP succeeds when a TCP connection is established (keepalived TCP_CHECK).
	TCP Type = iota
	// HTTP sends a GET and checks the status code and optionally the MD5
	// digest of the body (keepalived HTTP_GET, or SSL_GET with HTTPSpec.TLS).
	HTTP
	// Memcached sends "version\r\n" and expects a "VERSION ..." line.
	Memcached
)

// String returns the name used in logs and configuration.
func (t Type) String() string {
	switch t {
	case TCP:
		return "tcp"
	case HTTP:
		return "http"
	case Memcached:
		return "memcached"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// keepalived's defaults for a checker.
const (
	DefaultConnectTimeout   = 5 * time.Second
	DefaultDelayLoop        = 60 * time.Second
	DefaultDelayBeforeRetry = 1 * time.Second
	DefaultRetry            = 1
)

// Spec says how to check one real server. Start from DefaultSpec: the zero
// value of Retry is a valid setting (no retry), unlike keepalived's default.
type Spec struct {
	// Type is the kind of probe.
	Type Type
	// ConnectTimeout bounds one attempt, connect and exchange included.
	// Zero selects DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// DelayLoop is the interval between checks. Zero selects DefaultDelayLoop.
	DelayLoop time.Duration
	// DelayBeforeRetry spaces the retries of a failing server that is still
	// up. Zero selects DefaultDelayBeforeRetry.
	DelayBeforeRetry time.Duration
	// Retry is how many further attempts must fail before a server that is
	// up is declared down. Negative is treated as 0.
	Retry int
	// Warmup bounds the random delay before a new target's first check.
	// Zero selects keepalived's default, DelayLoop; negative disables it
	// (keepalived's "warmup 0").
	Warmup time.Duration
	// Alpha starts the target down until a check succeeds.
	Alpha bool
	// ConnectAddr, when valid, is probed instead of the target's address
	// (keepalived connect_ip/connect_port).
	ConnectAddr netip.AddrPort
	// HTTP configures the HTTP probe.
	HTTP HTTPSpec
}

// HTTPSpec configures an HTTP probe.
type HTTPSpec struct {
	// Path is the request path; empty means "/".
	Path string
	// StatusCodes lists the codes that mean healthy; empty means 200-299,
	// as in keepalived.
	StatusCodes []int
	// Digest, when set, is the MD5 hex digest the body must have
	// (keepalived digest, as printed by genhash).
	Digest string
	// Host is the Host header (keepalived virtualhost); empty means the
	// address probed.
	Host string
	// TLS probes over TLS without verifying the certificate, like
	// keepalived's SSL_GET.
	TLS bool
}

// DefaultSpec returns a TCP check with keepalived's defaults.
func DefaultSpec() Spec {
	return Spec{
		Type:             TCP,
		ConnectTimeout:   DefaultConnectTimeout,
		DelayLoop:        DefaultDelayLoop,
		DelayBeforeRetry: DefaultDelayBeforeRetry,
		Retry:            DefaultRetry,
	}
}

// Target is one real server to check.
type Target struct {
	// ID identifies the target across Update calls, e.g. "vip:port/rip:port".
	ID string
	// Addr is the real server's address.
	Addr netip.AddrPort
	// Spec says how to check it.
	Spec Spec
}

// Validate reports what is wrong with t.
func (t Target) Validate() error {
	if t.ID == "" {
		return fmt.Errorf("healthcheck: target %s: empty ID", t.Addr)
	}
	if !t.Addr.IsValid() && !t.Spec.ConnectAddr.IsValid() {
		return fmt.Errorf("healthcheck: target %q: no address", t.ID)
	}
	s := t.Spec
	switch s.Type {
	case TCP, HTTP, Memcached:
	default:
		return fmt.Errorf("healthcheck: target %q: unknown check type %d", t.ID, int(s.Type))
	}
	if s.ConnectTimeout < 0 || s.DelayLoop < 0 || s.DelayBeforeRetry < 0 {
		return fmt.Errorf("healthcheck: target %q: negative duration", t.ID)
	}
	for _, c := range s.HTTP.StatusCodes {
		if c < 100 || c > 999 {
			return fmt.Errorf("healthcheck: target %q: bad status code %d", t.ID, c)
		}
	}
	if d := s.HTTP.Digest; d != "" && !isMD5Hex(d) {
		return fmt.Errorf("healthcheck: target %q: digest %q is not 32 hex digits", t.ID, d)
	}
	return nil
}

func isMD5Hex(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == md5.Size
}

// withDefaults fills the zero durations with keepalived's defaults.
func (s Spec) withDefaults() Spec {
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = DefaultConnectTimeout
	}
	if s.DelayLoop == 0 {
		s.DelayLoop = DefaultDelayLoop
	}
	if s.DelayBeforeRetry == 0 {
		s.DelayBeforeRetry = DefaultDelayBeforeRetry
	}
	if s.Retry < 0 {
		s.Retry = 0
	}
	if s.Warmup == 0 {
		s.Warmup = s.DelayLoop
	}
	return s
}

// dialAddr is the address a probe connects to.
func (t Target) dialAddr() netip.AddrPort {
	if t.Spec.ConnectAddr.IsValid() {
		return t.Spec.ConnectAddr
	}
	return t.Addr
}

// sameProbe reports whether a and b probe the same thing the same way, so
// that a's health is still b's health. Timing may differ.
func sameProbe(a, b Target) bool {
	return a.Addr == b.Addr &&
		a.Spec.Type == b.Spec.Type &&
		a.Spec.ConnectAddr == b.Spec.ConnectAddr &&
		a.Spec.HTTP.Path == b.Spec.HTTP.Path &&
		slices.Equal(a.Spec.HTTP.StatusCodes, b.Spec.HTTP.StatusCodes) &&
		strings.EqualFold(a.Spec.HTTP.Digest, b.Spec.HTTP.Digest) &&
		a.Spec.HTTP.Host == b.Spec.HTTP.Host &&
		a.Spec.HTTP.TLS == b.Spec.HTTP.TLS
}
