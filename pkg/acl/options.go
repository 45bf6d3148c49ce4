package acl

import (
	"fmt"
	"log/slog"
)

// Defaults for Options.
const (
	DefaultChain     = "LBD-ACL"
	DefaultSetPrefix = "LBD"
	DefaultMaxElem   = 65536
)

// Backend selects which iptables binaries are run.
type Backend string

// The iptables backends. They keep separate rule sets in the kernel, so use
// the one the rest of the host uses.
const (
	// BackendAuto runs "iptables", whatever the system's alternative is.
	BackendAuto Backend = ""
	// BackendLegacy runs "iptables-legacy" (x_tables).
	BackendLegacy Backend = "legacy"
	// BackendNFT runs "iptables-nft" (nf_tables).
	BackendNFT Backend = "nft"
)

// Options configure a Manager. The zero value is usable: current network
// namespace, chain "LBD-ACL", sets named "LBD4-..."/"LBD6-...", DROP.
type Options struct {
	// NetNS is the path of a network namespace to work in
	// ("/run/netns/NAME" or "/proc/PID/ns/net"); empty means the namespace
	// the process is in.
	NetNS string
	// Chain is lbd's filter chain, jumped to from the top of INPUT.
	Chain string
	// SetPrefix starts the name of every ipset lbd owns (1 to 8 of
	// [A-Za-z0-9_]). Two managers in one namespace need different
	// prefixes and chains.
	SetPrefix string
	// Action is what outsiders get: Drop (the default) or Reject.
	Action Action
	// MaxElem is the most entries one tenant's set can hold.
	MaxElem uint32
	// Backend chooses the iptables binaries.
	Backend Backend
	// Logger receives what the Manager changes; nil discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Chain == "" {
		o.Chain = DefaultChain
	}
	if o.SetPrefix == "" {
		o.SetPrefix = DefaultSetPrefix
	}
	if o.MaxElem == 0 {
		o.MaxElem = DefaultMaxElem
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := validChain(o.Chain); err != nil {
		return o, err
	}
	if err := validSetPrefix(o.SetPrefix); err != nil {
		return o, err
	}
	switch o.Action {
	case Drop, Reject:
	default:
		return o, fmt.Errorf("acl: unknown action %v", o.Action)
	}
	switch o.Backend {
	case BackendAuto, BackendLegacy, BackendNFT:
	default:
		return o, fmt.Errorf("acl: unknown iptables backend %q", o.Backend)
	}
	return o, nil
}
