package daemon

import (
	"context"
	"log/slog"
	"os/exec"
	"time"

	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/pkg/config"
)

// Quorum, as keepalived's check process has it: a service has its quorum
// while the weights of its real servers that are up add up to at least
// quorum (default 1: one server up). With hysteresis h it is lost below
// quorum-h and gained again at quorum+h, so a flapping server does not
// flap the service. Losing it runs quorum_down and hands the new
// connections to the sorry server (the real servers still up keep their
// established connections at weight 0); gaining it runs quorum_up and
// takes the sorry server out (or to weight 0, with sorry_server_inhibit).

// quorumNext is the quorum state after a service whose quorum was up (or
// not) sees its up servers' weights add up to sum. A pure function.
func quorumNext(wasUp bool, sum, quorum, hysteresis int) bool {
	if !wasUp {
		return sum >= quorum+hysteresis
	}
	return sum > 0 && sum >= quorum-hysteresis
}

// quorumAction is a script to run on a crossing, for a service.
type quorumAction struct {
	service string
	up      bool
	script  string
}

// quorumTracker keeps the quorum state of every service across
// reconciles. Only the daemon's loop uses it.
type quorumTracker struct {
	up map[string]bool // by service name; absent: not seen yet
}

// apply returns eff with each service's quorum applied (the sorry server
// added or taken out, the real servers set to weight 0 while it serves)
// and the scripts the crossings since the last call must run, once each.
// A service seen for the first time counts as having had its quorum, so
// one that starts without it runs quorum_down (as keepalived does); one
// that starts with it runs nothing.
func (q *quorumTracker) apply(eff []config.ResolvedService) ([]config.ResolvedService, []quorumAction) {
	if q.up == nil {
		q.up = map[string]bool{}
	}
	seen := make(map[string]bool, len(eff))
	out := make([]config.ResolvedService, 0, len(eff))
	var acts []quorumAction
	for _, s := range eff {
		seen[s.Name] = true
		sum := 0
		for _, r := range s.Reals {
			sum += r.Weight
		}
		was, known := q.up[s.Name]
		if !known {
			was = true
		}
		up := quorumNext(was, sum, s.Quorum, s.Hysteresis)
		q.up[s.Name] = up
		if up != was {
			script := s.QuorumDown
			if up {
				script = s.QuorumUp
			}
			acts = append(acts, quorumAction{service: s.Name, up: up, script: script})
		}
		out = append(out, withSorry(s, up))
	}
	for name := range q.up {
		if !seen[name] {
			delete(q.up, name)
		}
	}
	return out, acts
}

// withSorry puts the sorry server of s in or out of its real servers for
// the quorum state up.
func withSorry(s config.ResolvedService, up bool) config.ResolvedService {
	if s.Sorry == nil || (up && !s.SorryInhibit) {
		return s
	}
	sorry := *s.Sorry
	if up {
		sorry.Weight = 0
		s.Reals = append(s.Reals[:len(s.Reals):len(s.Reals)], sorry)
		return s
	}
	reals := make([]config.ResolvedReal, 0, len(s.Reals)+1)
	for _, r := range s.Reals {
		r.Weight = 0
		reals = append(reals, r)
	}
	s.Reals = append(reals, sorry)
	return s
}

// quorumScripts runs the quorum scripts one at a time, in order, off the
// daemon's loop.
type quorumScripts struct {
	q   chan quorumAction
	log *slog.Logger
}

func newQuorumScripts(ctx context.Context, log *slog.Logger) *quorumScripts {
	qs := &quorumScripts{q: make(chan quorumAction, 256), log: log}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case a := <-qs.q:
				qs.run(ctx, a)
			}
		}
	}()
	return qs
}

func (qs *quorumScripts) run(ctx context.Context, a quorumAction) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/bin/sh", "-c", a.script).CombinedOutput()
	if err != nil {
		qs.log.Error("quorum script failed", "service", a.service, "script", a.script, "error", err, "output", string(out))
	}
}

// quorumCrossed publishes a crossing and queues its script.
func (d *Daemon) quorumCrossed(a quorumAction) {
	what := "quorum lost"
	if a.up {
		what = "quorum gained"
	}
	d.log.Warn(what, "service", a.service)
	d.events.Publish(events.Health, what, "service", a.service)
	if a.script == "" || d.sub.scripts == nil {
		return
	}
	select {
	case d.sub.scripts.q <- a:
	default:
		d.log.Error("quorum script dropped: too many queued", "service", a.service, "script", a.script)
	}
}
