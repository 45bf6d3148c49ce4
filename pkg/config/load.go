package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	File string
	Line int // 0 when the problem has no single place
	Msg  string
}

// String formats the problem as file:line: message.
func (p Problem) String() string {
	switch {
	case p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	default:
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
}

// Error lists every problem found in a configuration file.
type Error struct {
	Problems []Problem
}

// Error implements error: one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// MaxFileSize bounds what Load reads, so a wrong path cannot exhaust memory.
const MaxFileSize = 64 << 20

// Load reads, decodes and validates the file at path. Anything but a
// regular file (a FIFO, a device, a directory) is refused before it is
// read: opening does not wait for a FIFO's writer, and reading does not
// wait for a device.
func Load(path string) (*Config, error) {
	c, _, err := LoadData(path)
	return c, err
}

// LoadData is Load that also returns the file's content.
func LoadData(path string) (*Config, []byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, nil, &Error{Problems: []Problem{{File: path, Msg: fmt.Sprintf("not a regular file (%s)", fi.Mode().Type())}}}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, nil, &Error{Problems: []Problem{{File: path, Msg: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}}}
	}
	c, err := Parse(data, path)
	return c, data, err
}

// Parse decodes and validates a configuration; file names it in errors.
// On error the returned *Error lists every problem with file:line.
func Parse(data []byte, file string) (*Config, error) {
	// One pass over the text: a node tree (kept for line numbers), then
	// the structs are decoded from it.
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, &Error{Problems: yamlProblems(file, err)}
	}
	var probs []Problem
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		probs = append(probs, Problem{File: file, Line: extra.Line, Msg: "more than one YAML document"})
	}
	cfg := &Config{File: file, root: &root}
	probs = append(probs, unknownKeys(file, &root, reflect.TypeFor[Config]())...)
	if root.Kind != 0 {
		if err := root.Decode(cfg); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return nil, &Error{Problems: append(probs, yamlProblems(file, err)...)}
			}
			// Type errors do not stop decoding: validate the rest too, so
			// the operator sees every problem at once.
			probs = append(probs, yamlProblems(file, err)...)
		}
	}
	cfg.File, cfg.root = file, &root
	probs = append(probs, cfg.validate()...)
	if len(probs) > 0 {
		slices.SortStableFunc(probs, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &Error{Problems: probs}
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblems turns yaml's "line N: msg" errors into Problems.
func yamlProblems(file string, err error) []Problem {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	probs := make([]Problem, 0, len(msgs))
	for _, m := range msgs {
		p := Problem{File: file, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			p.Line, _ = strconv.Atoi(sub[1])
			p.Msg = sub[2]
		}
		probs = append(probs, p)
	}
	return probs
}

// Warnings are what validation accepted but an operator should hear
// (an allow-list that admits everybody, an API without TLS), each with
// file:line.
func (c *Config) Warnings() []Problem { return c.warnings }

// Marshal renders the configuration as YAML (used by conversions and
// `lbctl apply` previews).
func Marshal(c *Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	return buf.Bytes(), nil
}
