package keepalived

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Limits that keep a hostile or broken configuration from exhausting memory.
const (
	// MaxFileSize bounds one configuration file.
	MaxFileSize = 16 << 20
	// MaxIncludeDepth bounds nested includes.
	MaxIncludeDepth = 16
	// MaxFiles bounds the number of files read through includes.
	MaxFiles = 1024
	// MaxTotalSize bounds the bytes read through includes.
	MaxTotalSize = 64 << 20
	// MaxNesting bounds nested { } blocks (keepalived needs about five).
	MaxNesting = 64
)

// Parse parses a keepalived.conf into a tree of statements. The root Node
// has no keyword; its children are the top-level statements.
//
// file names the source in positions and is the base of relative includes,
// which are read through fsys (nil: includes are reported as warnings and
// not followed). Problems that keepalived tolerates (a missing include, an
// include loop, conditional lines) are returned as warnings; a structural
// problem (an unclosed brace, an unterminated quote) is a *SyntaxError.
func Parse(src []byte, file string, fsys FS) (*Node, []Warning, error) {
	if fsys == nil {
		fsys = noFS{}
	}
	p := &parser{fsys: fsys}
	toks, err := p.tokens(src, file, nil)
	if err != nil {
		return nil, p.warns, err
	}
	root, err := build(toks, file)
	return root, p.warns, err
}

// parser expands includes and collects warnings.
type parser struct {
	fsys  FS
	warns []Warning
	files int
	bytes int
}

func (p *parser) warnf(pos Pos, format string, args ...any) {
	p.warns = append(p.warns, Warning{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

var includeKeywords = []string{"include", "includer", "includem", "includew", "includeb", "includea"}

// tokens lexes src and splices in the tokens of the files it includes.
// stack holds the files being included, to detect loops.
func (p *parser) tokens(src []byte, file string, stack []string) ([]token, error) {
	if len(src) > MaxFileSize {
		return nil, &SyntaxError{Pos: Pos{file, 0}, Msg: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}
	}
	toks, err := lex(src, file)
	if err != nil {
		return nil, err
	}
	out := make([]token, 0, len(toks))
	for len(toks) > 0 {
		end := slices.IndexFunc(toks, func(t token) bool { return t.kind == tokEOL }) + 1
		line := toks[:end]
		toks = toks[end:]
		first := line[0]
		switch {
		case first.kind != tokWord:
		case slices.Contains(includeKeywords, first.text):
			inc, err := p.include(line, file, stack)
			if err != nil {
				return nil, err
			}
			out = append(out, inc...)
			continue
		case strings.HasPrefix(first.text, "@"):
			p.warnf(first.pos, "could not convert conditional configuration %q: lbd has no config-id; line ignored", first.text)
			continue
		case strings.HasPrefix(first.text, "$") && strings.Contains(first.text, "="):
			p.warnf(first.pos, "could not convert parameter definition %q: parameter substitution is not supported; line ignored", first.text)
			continue
		}
		out = append(out, line...)
	}
	return out, nil
}

// include resolves one include line and returns the tokens of the files it
// names. Like keepalived, a relative name is relative to the including
// file's directory, and a name that matches nothing is not an error.
func (p *parser) include(line []token, file string, stack []string) ([]token, error) {
	kw := line[0]
	name := includeName(line[1:])
	if name == "" {
		p.warnf(kw.pos, "%s without a file name", kw.text)
		return nil, nil
	}
	if len(stack) >= MaxIncludeDepth {
		return nil, &SyntaxError{Pos: kw.pos, Msg: fmt.Sprintf("includes nested more than %d deep", MaxIncludeDepth)}
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(filepath.Dir(file), name)
	}
	var matches []string
	failed := false
	for _, pat := range expandBraces(name, 64) {
		m, err := p.fsys.Glob(pat)
		if err != nil {
			p.warnf(kw.pos, "could not follow %s %s: %v", kw.text, pat, err)
			failed = true
			continue
		}
		matches = append(matches, m...)
	}
	if len(matches) == 0 && !failed {
		p.warnf(kw.pos, "%s %s: no file matches", kw.text, name)
		return nil, nil
	}
	slices.Sort(matches)
	var out []token
	for _, m := range slices.Compact(matches) {
		if m == filepath.Clean(file) || slices.Contains(stack, m) {
			p.warnf(kw.pos, "%s %s: include loop, not followed", kw.text, m)
			continue
		}
		if p.files++; p.files > MaxFiles {
			return nil, &SyntaxError{Pos: kw.pos, Msg: fmt.Sprintf("more than %d included files", MaxFiles)}
		}
		data, err := p.fsys.ReadFile(m)
		if err != nil {
			p.warnf(kw.pos, "could not read %s %s: %v", kw.text, m, err)
			continue
		}
		if p.bytes += len(data); p.bytes > MaxTotalSize {
			return nil, &SyntaxError{Pos: kw.pos, Msg: fmt.Sprintf("included files larger than %d bytes in all", MaxTotalSize)}
		}
		toks, err := p.tokens(data, m, append(slices.Clone(stack), filepath.Clean(file)))
		if err != nil {
			return nil, err
		}
		out = append(out, toks...)
	}
	return out, nil
}

// includeName rebuilds the file name of an include line. The lexer has
// split csh-style braces ("conf.d/{a,b}.conf") into tokens of their own.
func includeName(toks []token) string {
	var b strings.Builder
	for _, t := range toks {
		if t.kind == tokEOL {
			break
		}
		b.WriteString(t.text)
	}
	return b.String()
}

// expandBraces expands csh-style brace alternatives ("a{b,c}d" -> abd,
// acd), at most limit results, since glob(3) does it for keepalived and
// filepath.Glob does not.
func expandBraces(s string, limit int) []string {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return []string{s}
	}
	depth, close := 0, -1
	var commas []int
	for i := open; i < len(s) && close < 0; i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				close = i
			}
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		}
	}
	if close < 0 {
		return []string{s}
	}
	var out []string
	prev := open + 1
	for _, end := range append(commas, close) {
		alt := s[:open] + s[prev:end] + s[close+1:]
		for _, x := range expandBraces(alt, limit-len(out)) {
			if len(out) >= limit {
				return out
			}
			out = append(out, x)
		}
		prev = end + 1
	}
	return out
}

// build turns the token stream into a tree of statements.
func build(toks []token, file string) (*Node, error) {
	root := &Node{Block: true, Pos: Pos{file, 0}}
	stack := []*Node{root}
	var cur, last *Node // the statement being read; the last one finished
	for _, t := range toks {
		top := stack[len(stack)-1]
		switch t.kind {
		case tokWord:
			if cur == nil {
				cur = &Node{Keyword: t.text, Pos: t.pos}
				top.Children = append(top.Children, cur)
			} else {
				cur.Args = append(cur.Args, t.text)
			}
		case tokOpen:
			n := cur
			if n == nil {
				// keepalived accepts the brace on the line after the keyword.
				if last == nil || last.Block {
					return nil, &SyntaxError{Pos: t.pos, Msg: "'{' without a keyword"}
				}
				n = last
			}
			if len(stack) > MaxNesting {
				return nil, &SyntaxError{Pos: t.pos, Msg: fmt.Sprintf("blocks nested more than %d deep", MaxNesting)}
			}
			n.Block = true
			stack = append(stack, n)
			cur, last = nil, nil
		case tokClose:
			if len(stack) == 1 {
				return nil, &SyntaxError{Pos: t.pos, Msg: "unexpected '}' (no block is open)"}
			}
			stack = stack[:len(stack)-1]
			cur, last = nil, nil
		case tokEOL:
			if cur != nil {
				last, cur = cur, nil
			}
		}
	}
	if len(stack) > 1 {
		open := stack[len(stack)-1]
		return nil, &SyntaxError{Pos: open.Pos, Msg: fmt.Sprintf("unclosed '{' of %q: missing '}'", open.Keyword)}
	}
	return root, nil
}
