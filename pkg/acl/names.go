package acl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

const (
	// maxSetNameLen is IPSET_MAXNAMELEN minus the terminating NUL.
	maxSetNameLen = 31
	// maxChainLen is the longest chain name iptables accepts.
	maxChainLen = 28
	// tempSuffix marks the set an update is built in before the swap.
	tempSuffix = "-t"
	// hashLen is the number of hex digits of the tenant-name hash.
	hashLen = 8
	// commentTag starts the comment on every rule lbd owns.
	commentTag = "lbd-acl"
)

// shortHash is a short stable hash used to keep names unique when they must
// be truncated, and to fingerprint rules.
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:hashLen]
}

// namer derives kernel object names from the manager's prefixes.
type namer struct {
	setPrefix string
	chain     string
}

// setName is the name of tenant's set for family f: readable, at most 31
// bytes even with the temp suffix, and unique through the hash of the full
// tenant name.
func (n namer) setName(tenant string, f family) string {
	head := fmt.Sprintf("%s%d-", n.setPrefix, int(f))
	room := maxSetNameLen - len(tempSuffix) - len(head) - 1 - hashLen
	short := tenant
	if len(short) > room {
		short = short[:room]
	}
	return head + short + "-" + shortHash(tenant)
}

func (n namer) tempName(set string) string { return set + tempSuffix }

// ownSet reports whether name is a set this manager made, whether it is a
// temporary one, and its family.
func (n namer) ownSet(name string) (f family, temp, ok bool) {
	rest, found := strings.CutPrefix(name, n.setPrefix)
	if !found || len(rest) < 2 || rest[1] != '-' {
		return 0, false, false
	}
	switch rest[0] {
	case '4':
		f = v4
	case '6':
		f = v6
	default:
		return 0, false, false
	}
	rest = rest[2:]
	rest, temp = strings.CutSuffix(rest, tempSuffix)
	i := strings.LastIndexByte(rest, '-')
	if i < 0 || len(rest)-i-1 != hashLen || !isLowerHex(rest[i+1:]) {
		return 0, false, false
	}
	for _, r := range rest[:i] {
		if !nameChar(r) {
			return 0, false, false
		}
	}
	return f, temp, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func validSetPrefix(p string) error {
	if p == "" || len(p) > 8 {
		return fmt.Errorf("acl: set prefix %q must be 1 to 8 characters", p)
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Errorf("acl: set prefix %q: character %q not allowed", p, r)
		}
	}
	return nil
}

func validChain(c string) error {
	if c == "" || len(c) > maxChainLen {
		return fmt.Errorf("acl: chain name %q must be 1 to %d characters", c, maxChainLen)
	}
	switch c {
	case "INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING":
		return fmt.Errorf("acl: chain name %q is a built-in chain", c)
	}
	for _, r := range c {
		if !nameChar(r) {
			return fmt.Errorf("acl: chain name %q: character %q not allowed", c, r)
		}
	}
	return nil
}
