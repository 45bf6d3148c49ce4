package keepalived

import (
	"bytes"
	"strings"
)

// tokKind is the kind of a lexical token.
type tokKind int

const (
	tokWord  tokKind = iota // a word or quoted string
	tokOpen                 // {
	tokClose                // }
	tokEOL                  // end of a line: ends a statement
)

// token is one lexical token with its place.
type token struct {
	kind tokKind
	text string
	pos  Pos
}

// lex splits a keepalived.conf into tokens.
//
// keepalived's rules (keepalived.conf(5)): '#' and '!' start a comment
// anywhere outside quotes; a string between " or ' keeps its whitespace and
// joins the text around it; braces are tokens of their own; a backslash at
// the end of a line continues the statement on the next line.
func lex(src []byte, file string) ([]token, error) {
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	l := lexer{src: src, file: file, line: 1}
	return l.run()
}

type lexer struct {
	src    []byte
	file   string
	line   int
	toks   []token
	word   strings.Builder
	inWord bool
	start  int // line where the current word started
}

func (l *lexer) flush() {
	if l.inWord {
		l.toks = append(l.toks, token{kind: tokWord, text: l.word.String(), pos: Pos{l.file, l.start}})
		l.word.Reset()
		l.inWord = false
	}
}

func (l *lexer) begin() {
	if !l.inWord {
		l.inWord = true
		l.start = l.line
	}
}

func (l *lexer) emit(k tokKind, text string) {
	l.flush()
	l.toks = append(l.toks, token{kind: k, text: text, pos: Pos{l.file, l.line}})
}

func (l *lexer) run() ([]token, error) {
	for i := 0; i < len(l.src); i++ {
		c := l.src[i]
		switch {
		case c == '\n':
			l.emit(tokEOL, "")
			l.line++
		case c == '\\' && i+1 < len(l.src) && l.src[i+1] == '\n':
			l.flush()
			l.line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			l.flush()
		case c == '#' || c == '!':
			for i+1 < len(l.src) && l.src[i+1] != '\n' {
				i++
			}
		case c == '{':
			l.emit(tokOpen, "{")
		case c == '}':
			l.emit(tokClose, "}")
		case c == '"' || c == '\'':
			l.begin()
			end, err := l.quoted(i)
			if err != nil {
				return nil, err
			}
			i = end
		default:
			l.begin()
			l.word.WriteByte(c)
		}
	}
	l.emit(tokEOL, "")
	return l.toks, nil
}

// quoted reads the quoted string starting at src[open] into the current
// word and returns the index of the closing quote.
func (l *lexer) quoted(open int) (int, error) {
	q := l.src[open]
	for i := open + 1; i < len(l.src); i++ {
		c := l.src[i]
		switch {
		case c == q:
			return i, nil
		case c == '\n':
			return 0, &SyntaxError{Pos: Pos{l.file, l.line}, Msg: "unterminated quoted string"}
		case c == '\\' && i+1 < len(l.src) && l.src[i+1] != '\n':
			i++
			l.word.WriteByte(unescape(l.src[i]))
		default:
			l.word.WriteByte(c)
		}
	}
	return 0, &SyntaxError{Pos: Pos{l.file, l.line}, Msg: "unterminated quoted string"}
}

// unescape maps the character after a backslash to what it stands for.
// keepalived also knows octal, hex and control escapes; scripts and paths,
// the only quoted values lbd keeps, do not use them.
func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 't':
		return '\t'
	case 'r':
		return '\r'
	default:
		return c
	}
}
