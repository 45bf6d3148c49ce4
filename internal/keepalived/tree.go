package keepalived

import (
	"fmt"
	"strings"
)

// Pos is a place in a keepalived configuration file.
type Pos struct {
	File string
	Line int
}

// String formats the position as file:line.
func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Node is one statement of a keepalived.conf: a keyword, its arguments on
// the same line and, for a block, the statements between its braces.
type Node struct {
	// Keyword is the statement's first word, e.g. "virtual_server".
	Keyword string
	// Args are the remaining words of the statement, quotes removed.
	Args []string
	// Block reports whether the statement opened a { } block.
	Block bool
	// Children are the statements inside the block.
	Children []*Node
	// Pos is where the keyword is.
	Pos Pos
}

// String renders the statement's words, for messages.
func (n *Node) String() string {
	if len(n.Args) == 0 {
		return n.Keyword
	}
	return n.Keyword + " " + strings.Join(n.Args, " ")
}

// Arg returns the i-th argument, or "" when there is none.
func (n *Node) Arg(i int) string {
	if i < len(n.Args) {
		return n.Args[i]
	}
	return ""
}

// Find returns the children with the given keyword, in file order.
func (n *Node) Find(keyword string) []*Node {
	var out []*Node
	for _, c := range n.Children {
		if c.Keyword == keyword {
			out = append(out, c)
		}
	}
	return out
}

// Warning is something that could not be converted, or that the operator
// should check, at a place in the keepalived configuration.
type Warning struct {
	Pos Pos
	Msg string
}

// String formats the warning as file:line: message.
func (w Warning) String() string {
	if w.Pos.Line == 0 {
		return w.Pos.File + ": " + w.Msg
	}
	return w.Pos.String() + ": " + w.Msg
}

// SyntaxError is a keepalived.conf that cannot be parsed.
type SyntaxError struct {
	Pos Pos
	Msg string
}

// Error implements error as file:line: message.
func (e *SyntaxError) Error() string { return "keepalived: " + e.Pos.String() + ": " + e.Msg }
