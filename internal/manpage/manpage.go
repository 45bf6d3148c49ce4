// Package manpage turns the help text lbd and lbctl print into manual pages
// (roff, the man(7) macros), so that the pages say what the commands say.
//
// The help text is read line by line: "usage:" lines and their indented
// continuations become a literal block, Go flag package entries
// ("  -name value" with the description on the next line after a tab) and
// two-column entries ("  name   description") become tagged paragraphs,
// lines ending in ':' become bold headings, blank lines paragraph breaks,
// and anything else text lines, kept as lines. Every line of text is escaped,
// so help text can never inject a roff request.
package manpage

import (
	"fmt"
	"regexp"
	"strings"
)

// Page is one manual page.
type Page struct {
	// Name is the command, e.g. "lbd"; Section the manual section, e.g. "8".
	Name, Section string
	// Summary is the NAME line's description.
	Summary string
	// Date, Source and Manual fill the .TH line's other fields.
	Date, Source, Manual string
	// Sections follow NAME, in order.
	Sections []Section
}

// Section is one .SH section; its Help text is converted with Help, its
// Subsections follow as .SS.
type Section struct {
	Title       string
	Help        string
	Subsections []Section
}

// Roff renders the page.
func (p Page) Roff() string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s %s %s %s %s\n", quote(strings.ToUpper(p.Name)), quote(p.Section), quote(p.Date), quote(p.Source), quote(p.Manual))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", escape(p.Name), escape(p.Summary))
	for _, s := range p.Sections {
		fmt.Fprintf(&b, ".SH %s\n", quote(strings.ToUpper(s.Title)))
		b.WriteString(Help(s.Help))
		for _, ss := range s.Subsections {
			fmt.Fprintf(&b, ".SS %s\n", quote(ss.Title))
			b.WriteString(Help(ss.Help))
		}
	}
	return b.String()
}

var (
	// "  -name value" or "  -name\tdescription" (flag.PrintDefaults).
	flagRe = regexp.MustCompile(`^  (-[A-Za-z0-9][-A-Za-z0-9_.]*)(?: (\S+))?(?:\t(.*))?$`)
	// "    \tdescription", the second line of a flag entry.
	flagDescRe = regexp.MustCompile(`^    \t(.*)$`)
	// "  name words   description": a list entry.
	entryRe = regexp.MustCompile(`^  (\S(?:.*?\S)?) {2,}(\S.*)$`)
)

// Help converts help text to roff body text (no .TH or .SH of its own).
func Help(text string) string {
	var b strings.Builder
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(text, "\r", ""), "\n"), "\n")
	inLiteral, inText := false, false
	endLiteral := func() {
		if inLiteral {
			b.WriteString(".fi\n")
			inLiteral = false
		}
	}
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], " \t")
		switch {
		case strings.HasPrefix(l, "usage:") || (inLiteral && strings.HasPrefix(l, "       ")):
			if !inLiteral {
				b.WriteString(".PP\n.nf\n")
				inLiteral = true
			}
			fmt.Fprintf(&b, "%s\n", escape(l))
			continue
		}
		endLiteral()
		text := false
		switch {
		case l == "":
			b.WriteString(".PP\n")
		case flagRe.MatchString(l):
			m := flagRe.FindStringSubmatch(l)
			fmt.Fprintf(&b, ".TP\n\\fB%s\\fR", escape(m[1]))
			if m[2] != "" {
				fmt.Fprintf(&b, " \\fI%s\\fR", escape(m[2]))
			}
			b.WriteString("\n")
			desc := m[3]
			for i+1 < len(lines) && flagDescRe.MatchString(lines[i+1]) {
				i++
				d := flagDescRe.FindStringSubmatch(lines[i])[1]
				desc = strings.TrimSpace(desc + " " + d)
			}
			if desc != "" {
				fmt.Fprintf(&b, "%s\n", escape(desc))
			}
		case entryRe.MatchString(l):
			m := entryRe.FindStringSubmatch(l)
			fmt.Fprintf(&b, ".TP\n\\fB%s\\fR\n%s\n", escape(m[1]), escape(m[2]))
		case strings.HasSuffix(l, ":") && !strings.HasPrefix(l, " "):
			fmt.Fprintf(&b, ".PP\n\\fB%s\\fR\n", escape(l))
		default:
			if inText {
				b.WriteString(".br\n")
			}
			fmt.Fprintf(&b, "%s\n", escape(strings.TrimSpace(l)))
			text = true
		}
		inText = text
	}
	endLiteral()
	return b.String()
}

// escape makes s safe as a line of roff text: backslashes and minus signs
// are escaped, and a line cannot start a request (with a period or an
// apostrophe).
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// quote makes s one argument of a macro.
func quote(s string) string {
	return `"` + strings.ReplaceAll(escape(s), `"`, `\(dq`) + `"`
}
