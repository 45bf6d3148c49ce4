package vrrp

import "fmt"

// State is the state of a virtual router (RFC 5798 section 6.4, plus Fault
// as in keepalived: the instance cannot work, e.g. its interface is down).
type State int

// The states. StateInit is both "not started" and "stopped".
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
)

// String returns the state's name in keepalived's words.
func (s State) String() string {
	switch s {
	case StateInit:
		return "INIT"
	case StateBackup:
		return "BACKUP"
	case StateMaster:
		return "MASTER"
	case StateFault:
		return "FAULT"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ActionKind says what an Action asks the caller to do.
type ActionKind int

// The kinds of Action.
const (
	// ActionSend asks for an advertisement with Action.Priority to be sent.
	ActionSend ActionKind = iota + 1
	// ActionTransition reports a state change from Action.From to
	// Action.To. Entering Master means: own the VIPs and announce them
	// (gratuitous ARP); leaving Master means: give the VIPs up.
	ActionTransition
	// ActionAnnounce asks a Master to announce its VIPs again (gratuitous
	// ARP): another router on the link believes it is Master too, e.g. after
	// a partition healed, and neighbours may point at it.
	ActionAnnounce
)

// Action is one thing the Machine asks its caller to do, in order.
type Action struct {
	// Kind says which of the other fields matter.
	Kind ActionKind
	// Priority is the priority to advertise (ActionSend).
	Priority uint8
	// From and To are the old and new state (ActionTransition).
	From, To State

	forced bool // a sync group ordered the transition
}

// String formats the action for logs and test failures.
func (a Action) String() string {
	switch a.Kind {
	case ActionSend:
		return fmt.Sprintf("send(prio=%d)", a.Priority)
	case ActionTransition:
		return fmt.Sprintf("%s->%s", a.From, a.To)
	case ActionAnnounce:
		return "announce"
	}
	return fmt.Sprintf("Action(%d)", int(a.Kind))
}
