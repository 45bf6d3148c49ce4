package keepalived

import (
	"errors"
	"os"
	"path/filepath"
)

// FS is where include statements are read from.
type FS interface {
	// ReadFile returns the contents of the named file.
	ReadFile(name string) ([]byte, error)
	// Glob returns the names matching pattern (filepath.Match syntax).
	Glob(pattern string) ([]string, error)
}

// OSFS reads includes from the local file system.
type OSFS struct{}

// ReadFile implements FS with os.ReadFile, refusing files larger than
// MaxFileSize.
func (OSFS) ReadFile(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxFileSize {
		return nil, errors.New("file too large")
	}
	return os.ReadFile(name)
}

// Glob implements FS with filepath.Glob.
func (OSFS) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

// noFS refuses every include; used when the caller gives no FS.
type noFS struct{}

var errNoIncludes = errors.New("includes are not followed here")

func (noFS) ReadFile(string) ([]byte, error) { return nil, errNoIncludes }
func (noFS) Glob(string) ([]string, error)   { return nil, errNoIncludes }
