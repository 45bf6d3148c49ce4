package healthcheck

import (
	"bufio"
	"context"
	"fmt"
	"strings"
)

// probeMemcached sends "version" and expects "VERSION <x>", which every
// memcached-compatible server answers without touching data.
func probeMemcached(ctx context.Context, d Dialer, addr string) error {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("healthcheck: memcached connect %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fmt.Errorf("healthcheck: memcached %s: set deadline: %w", addr, err)
		}
	}
	if _, err := conn.Write([]byte("version\r\n")); err != nil {
		return fmt.Errorf("healthcheck: memcached %s: send version: %w", addr, err)
	}
	// A reply longer than this is not a version line.
	r := bufio.NewReaderSize(conn, 256)
	line, err := r.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("healthcheck: memcached %s: read reply: %w", addr, err)
	}
	s := strings.TrimRight(string(line), "\r\n")
	if !strings.HasPrefix(s, "VERSION ") {
		return fmt.Errorf("healthcheck: memcached %s: unexpected reply %q", addr, truncate(s, 64))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
