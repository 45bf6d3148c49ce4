package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

func runCompletion(_ context.Context, a *app, cmd *command, args []string) error {
	pos, err := a.parseArgs(cmd, args, 1, 1, nil)
	if err != nil {
		return err
	}
	words := completionWords(commands())
	switch pos[0] {
	case "bash":
		fmt.Fprint(a.stdout, bashCompletion(words))
	case "zsh":
		fmt.Fprint(a.stdout, "#compdef lbctl\nautoload -U +X bashcompinit && bashcompinit\n"+bashCompletion(words))
	default:
		return usagef("completion: unknown shell %q (want bash or zsh)", pos[0])
	}
	return nil
}

// completionWords maps a command path ("", "tenant", "tenant allow") to the
// words that may follow it.
func completionWords(cmds []*command) map[string][]string {
	m := map[string][]string{}
	var walk func(prefix string, cs []*command)
	walk = func(prefix string, cs []*command) {
		for _, c := range cs {
			m[prefix] = append(m[prefix], c.name)
			p := strings.TrimSpace(prefix + " " + c.name)
			walk(p, c.sub)
		}
	}
	walk("", cmds)
	return m
}

// bashCompletion completes verbs along the command tree, global flags, -o
// formats, and files after -f.
func bashCompletion(words map[string][]string) string {
	keys := make([]string, 0, len(words))
	for k := range words {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cases strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&cases, "        %q) words=%q ;;\n", k, strings.Join(words[k], " "))
	}
	return `# bash completion for lbctl; load with: source <(lbctl completion bash)
_lbctl() {
    local cur prev path="" w words i
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    case "$prev" in
        -o) COMPREPLY=($(compgen -W "table json yaml" -- "$cur")); return ;;
        -f|--socket|--cacert) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "--socket --server --token --cacert -o -f --yes --dry-run --recent --remote" -- "$cur"))
        return
    fi
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        [[ "$w" == -* ]] && continue
        case "${COMP_WORDS[i-1]}" in -o|-f|--socket|--server|--token|--cacert) continue ;; esac
        if [[ -z "$path" ]]; then path="$w"; else path="$path $w"; fi
    done
    case "$path" in
` + cases.String() + `        *) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _lbctl lbctl
`
}
