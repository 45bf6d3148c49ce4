package api

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// listenUnix listens on path with mode 0600 (0660 and the group's
// ownership when group is set). The socket is created in a private
// directory, given its mode and group, and renamed into place, so it is
// never reachable with looser permissions.
func listenUnix(path, group string) (net.Listener, error) {
	gid := -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("api: socket group: %w", err)
		}
		gid = g
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("api: socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".lbd-sock-")
	if err != nil {
		return nil, fmt.Errorf("api: socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	tmpPath := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmpPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("api: listen %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	mode := fs.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		if err := os.Chown(tmpPath, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("api: socket group %s: %w", group, err)
		}
	}
	if err := os.Chmod(tmpPath, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: socket mode: %w", err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: socket %s: %w", path, err)
	}
	return ln, nil
}

// removeStale removes a socket left behind by a dead lbd. Anything that is
// not a socket, or a socket somebody answers on, is left alone.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("api: socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("api: %s exists and is not a socket; not removing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("api: %s is in use (is another lbd running?)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("api: remove stale socket %s: %w", path, err)
	}
	return nil
}

// removeSocket removes the socket on shutdown.
func removeSocket(path string, log *slog.Logger) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Warn("cannot remove control socket", "path", path, "error", err)
	}
}

// lookupGroup resolves a group name or numeric gid.
func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if n, nerr := strconv.Atoi(name); nerr == nil && n >= 0 {
			return n, nil
		}
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}
