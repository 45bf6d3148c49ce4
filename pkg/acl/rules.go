package acl

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Action is what happens to a packet from a source outside the allow-list.
type Action int

const (
	// Drop discards the packet silently: the outsider learns nothing.
	Drop Action = iota
	// Reject answers with a TCP reset or an ICMP port-unreachable, so
	// a misconfigured client fails fast instead of timing out.
	Reject
)

func (a Action) String() string {
	switch a {
	case Drop:
		return "DROP"
	case Reject:
		return "REJECT"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// ParseAction parses "drop" or "reject" (any case), as written in the
// configuration; the empty string is Drop.
func ParseAction(s string) (Action, error) {
	switch strings.ToLower(s) {
	case "", "drop":
		return Drop, nil
	case "reject":
		return Reject, nil
	}
	return Drop, fmt.Errorf("acl: action %q is not drop or reject", s)
}

// rule is one rule lbd wants in its chain.
type rule struct {
	tenant string
	fp     string   // fingerprint of args, carried in the comment
	args   []string // everything after "-A <chain>"
}

// tenantRule builds the single rule that fences t in family f using set.
func tenantRule(chain string, t Tenant, f family, set string, action Action) rule {
	var args []string
	if t.VIP.IsValid() {
		args = append(args, "-d", fmt.Sprintf("%s/%d", t.VIP, t.VIP.BitLen()))
	}
	proto := string(t.Protocol)
	args = append(args, "-p", proto, "-m", proto, "--dport", strconv.Itoa(int(t.Port)),
		"-m", "set", "!", "--match-set", set, "src")
	var target []string
	switch {
	case action == Reject && t.Protocol == TCP:
		target = []string{"-j", "REJECT", "--reject-with", "tcp-reset"}
	case action == Reject && f == v4:
		target = []string{"-j", "REJECT", "--reject-with", "icmp-port-unreachable"}
	case action == Reject:
		target = []string{"-j", "REJECT", "--reject-with", "icmp6-port-unreachable"}
	default:
		target = []string{"-j", "DROP"}
	}
	fp := shortHash(chain + " " + strings.Join(args, " ") + " " + strings.Join(target, " "))
	args = append(args, "-m", "comment", "--comment", ruleComment(t.Name, fp))
	args = append(args, target...)
	return rule{tenant: t.Name, fp: fp, args: args}
}

func ruleComment(tenant, fp string) string { return commentTag + ":" + tenant + ":" + fp }

// parseComment extracts tenant and fingerprint from a comment lbd wrote.
func parseComment(c string) (tenant, fp string, ok bool) {
	rest, found := strings.CutPrefix(c, commentTag+":")
	if !found {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return "", "", false
	}
	tenant, fp = rest[:i], rest[i+1:]
	if validName(tenant) != nil || len(fp) != hashLen || !isLowerHex(fp) {
		return "", "", false
	}
	return tenant, fp, true
}

// jumpArgs is the rule that sends INPUT traffic through lbd's chain.
func jumpArgs(chain string) []string {
	return []string{"-m", "comment", "--comment", commentTag, "-j", chain}
}

// listedRule is one "-A" line of "iptables -S" output, as seen in the kernel.
type listedRule struct {
	line    string // as printed, without counters
	chain   string
	target  string
	comment string
	packets uint64
	bytes   uint64
}

// parseRuleLine parses one line of "iptables [-v] -S" output. ok is false
// for lines that are not rules (-P, -N). Counters ("-c PKTS BYTES", printed
// with -v) are taken out of the returned line so that it can be turned into
// a "-D" for iptables-restore.
func parseRuleLine(line string) (r listedRule, ok bool, err error) {
	if !strings.HasPrefix(line, "-A ") {
		return listedRule{}, false, nil
	}
	toks, err := splitSaveLine(line)
	if err != nil {
		return listedRule{}, false, err
	}
	if len(toks) < 2 {
		return listedRule{}, false, fmt.Errorf("acl: rule line %q: no chain", line)
	}
	r.chain = toks[1]
	kept := toks[:0:0]
	for i := 0; i < len(toks); i++ {
		switch toks[i] {
		case "-c":
			if i+2 >= len(toks) {
				return listedRule{}, false, fmt.Errorf("acl: rule line %q: short counters", line)
			}
			if r.packets, err = strconv.ParseUint(toks[i+1], 10, 64); err != nil {
				return listedRule{}, false, fmt.Errorf("acl: rule line %q: packets: %w", line, err)
			}
			if r.bytes, err = strconv.ParseUint(toks[i+2], 10, 64); err != nil {
				return listedRule{}, false, fmt.Errorf("acl: rule line %q: bytes: %w", line, err)
			}
			i += 2
			continue
		case "-j", "-g":
			if i+1 < len(toks) {
				r.target = toks[i+1]
			}
		case "--comment":
			if i+1 < len(toks) {
				r.comment = toks[i+1]
			}
		}
		kept = append(kept, toks[i])
	}
	r.line = joinSaveLine(kept)
	return r, true, nil
}

// splitSaveLine splits a line of iptables-save syntax into words, honouring
// the double quotes and backslash escapes iptables uses around strings such
// as comments.
func splitSaveLine(line string) ([]string, error) {
	var (
		toks    []string
		cur     strings.Builder
		inWord  bool
		inQuote bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '"':
			inQuote = !inQuote
			inWord = true
		case (c == ' ' || c == '\t') && !inQuote:
			if inWord {
				toks = append(toks, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("acl: unterminated quote in %q", line)
	}
	if inWord {
		toks = append(toks, cur.String())
	}
	return toks, nil
}

// joinSaveLine is the inverse of splitSaveLine.
func joinSaveLine(toks []string) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quoteSaveWord(t))
	}
	return b.String()
}

func quoteSaveWord(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\"\\'") {
		return w
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(w); i++ {
		if w[i] == '"' || w[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(w[i])
	}
	b.WriteByte('"')
	return b.String()
}

// rulePlan is the change to one family's rules, committed in one
// iptables-restore transaction.
type rulePlan struct {
	createChain bool
	del         []string // listed lines ("-A ...") to delete
	add         []rule
	addJump     bool
}

func (p rulePlan) empty() bool {
	return !p.createChain && len(p.del) == 0 && len(p.add) == 0 && !p.addJump
}

// render writes the iptables-restore --noflush input for p. Deletions come
// before additions, so a tenant whose rule changes is never without one
// inside the committed result.
func (p rulePlan) render(chain string) []byte {
	var b bytes.Buffer
	b.WriteString("*filter\n")
	if p.createChain {
		// With --noflush, declaring a chain creates it (or flushes it).
		fmt.Fprintf(&b, ":%s - [0:0]\n", chain)
	}
	for _, l := range p.del {
		b.WriteString("-D")
		b.WriteString(strings.TrimPrefix(l, "-A"))
		b.WriteByte('\n')
	}
	for _, r := range p.add {
		fmt.Fprintf(&b, "-A %s %s\n", chain, joinSaveLine(r.args))
	}
	if p.addJump {
		fmt.Fprintf(&b, "-I INPUT 1 %s\n", joinSaveLine(jumpArgs(chain)))
	}
	b.WriteString("COMMIT\n")
	return b.Bytes()
}
