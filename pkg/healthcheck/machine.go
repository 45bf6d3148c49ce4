package healthcheck

import "time"

// machine is keepalived's checker state for one target: up or down, and
// how many retries a failing server that is up has left.
type machine struct {
	up          bool
	since       time.Time // when up last changed (or the target was added)
	retriesLeft int
	lastCheck   time.Time
	lastErr     string
	checks      uint64
	failures    int // consecutive failed attempts
}

func newMachine(spec Spec, now time.Time) machine {
	return machine{up: !spec.Alpha, since: now, retriesLeft: spec.Retry}
}

// verdict is what one probe result does to a target.
type verdict struct {
	changed bool          // up flipped
	retry   bool          // a retry was scheduled instead of going down
	next    time.Duration // delay until the next attempt
}

// observe applies one probe result (err == nil means success) at now.
//
// As in keepalived, only a server that is up is retried: it goes down when
// the attempt that finds it failing and Retry more attempts, DelayBeforeRetry
// apart, have all failed. A server that is down is simply checked again after
// DelayLoop, and one success brings it up.
func (m *machine) observe(spec Spec, err error, now time.Time) verdict {
	m.lastCheck = now
	m.checks++
	if err == nil {
		m.lastErr = ""
		m.failures = 0
		m.retriesLeft = spec.Retry
		if m.up {
			return verdict{next: spec.DelayLoop}
		}
		m.up, m.since = true, now
		return verdict{changed: true, next: spec.DelayLoop}
	}
	m.lastErr = err.Error()
	m.failures++
	if !m.up {
		return verdict{next: spec.DelayLoop}
	}
	if m.retriesLeft > 0 {
		m.retriesLeft--
		return verdict{retry: true, next: spec.DelayBeforeRetry}
	}
	m.up, m.since = false, now
	m.retriesLeft = spec.Retry
	return verdict{changed: true, next: spec.DelayLoop}
}
