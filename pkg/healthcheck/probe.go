package healthcheck

import (
	"context"
	"fmt"
)

// probe runs one attempt of t's check, bounded by its ConnectTimeout.
func (c *Checker) probe(ctx context.Context, t Target) error {
	ctx, cancel := context.WithTimeout(ctx, t.Spec.ConnectTimeout)
	defer cancel()
	switch t.Spec.Type {
	case TCP:
		return probeTCP(ctx, c.dialer, t.dialAddr().String())
	case HTTP:
		return probeHTTP(ctx, c.dialer, t.dialAddr().String(), t.Spec.HTTP)
	case Memcached:
		return probeMemcached(ctx, c.dialer, t.dialAddr().String())
	}
	return fmt.Errorf("healthcheck: unknown check type %v", t.Spec.Type)
}

// probeTCP succeeds when a connection is established (keepalived TCP_CHECK).
func probeTCP(ctx context.Context, d Dialer, addr string) error {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("healthcheck: tcp connect %s: %w", addr, err)
	}
	conn.Close()
	return nil
}
