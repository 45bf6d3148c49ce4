package vrrp

import (
	"context"
	"log/slog"
	"os/exec"
	"strconv"
	"time"
)

// Notify holds the scripts run on state changes, as keepalived's notify_*.
// Each is run by /bin/sh -c, so it may carry arguments. Scripts run one at a
// time, in the order of the state changes, off the protocol's path: a slow
// script never delays an advert or a takeover.
type Notify struct {
	// Master runs on entering MASTER (notify_master).
	Master string
	// Backup runs on entering BACKUP (notify_backup).
	Backup string
	// Fault runs on entering FAULT (notify_fault).
	Fault string
	// Stop runs when the instance stops (notify_stop).
	Stop string
	// Any runs on every change with keepalived's notify arguments appended:
	// "INSTANCE" (or "GROUP"), the name, the state and the priority.
	Any string
	// Timeout bounds each script; default 30s.
	Timeout time.Duration
}

// notifyJob is one script run.
type notifyJob struct {
	cmd  string
	args []string
}

// notifier runs notify scripts in order on its own goroutine.
type notifier struct {
	n    Notify
	kind string // "INSTANCE" or "GROUP"
	name string
	log  *slog.Logger
	q    *mailbox[notifyJob]
}

func newNotifier(n Notify, kind, name string, log *slog.Logger) *notifier {
	if n.Timeout == 0 {
		n.Timeout = 30 * time.Second
	}
	return &notifier{n: n, kind: kind, name: name, log: log, q: newMailbox[notifyJob]()}
}

// changed queues the scripts for entering state with priority prio.
func (nt *notifier) changed(state State, prio uint8) {
	var script string
	switch state {
	case StateMaster:
		script = nt.n.Master
	case StateBackup:
		script = nt.n.Backup
	case StateFault:
		script = nt.n.Fault
	case StateInit:
		script = nt.n.Stop
	}
	if script != "" {
		nt.q.put(notifyJob{cmd: script})
	}
	if nt.n.Any != "" {
		st := state.String()
		if state == StateInit {
			st = "STOP"
		}
		nt.q.put(notifyJob{cmd: nt.n.Any, args: []string{nt.kind, nt.name, st, strconv.Itoa(int(prio))}})
	}
}

// run runs queued scripts until ctx is done and the queue is empty.
func (nt *notifier) run(ctx context.Context) {
	for {
		for _, j := range nt.q.take() {
			nt.exec(j)
		}
		select {
		case <-nt.q.wake:
		case <-ctx.Done():
			for _, j := range nt.q.take() {
				nt.exec(j)
			}
			return
		}
	}
}

func (nt *notifier) exec(j notifyJob) {
	// Not tied to the instance's context: a stop must still run notify_stop.
	ctx, cancel := context.WithTimeout(context.Background(), nt.n.Timeout)
	defer cancel()
	script := j.cmd
	args := []string{"-c", script, "sh"}
	if len(j.args) > 0 {
		args[1] = script + ` "$@"`
		args = append(args, j.args...)
	}
	out, err := exec.CommandContext(ctx, "/bin/sh", args...).CombinedOutput()
	if err != nil {
		nt.log.Warn("vrrp: notify script failed", "script", script, "args", j.args, "err", err, "output", string(out))
		return
	}
	nt.log.Debug("vrrp: notify script ran", "script", script, "args", j.args)
}
