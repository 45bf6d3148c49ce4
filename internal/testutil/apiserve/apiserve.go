// Package apiserve runs lbd API servers for tests. It is for _test.go files
// only: non-test code must not import it.
package apiserve

import (
	"context"
	"sync"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
)

// Server is an api.Server whose Serve runs in the background.
type Server struct {
	*api.Server
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Start builds a server for backend with opts, makes it listen (failing the
// test if either step fails) and runs Serve on a goroutine of its own. The
// caller decides when to stop it: with Stop, or with Cancel and Wait.
func Start(t testing.TB, backend api.Backend, opts api.ServerOptions) *Server {
	t.Helper()
	s, err := api.NewServer(backend, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	return &Server{Server: s, cancel: cancel, done: done}
}

// Cancel cancels the context Serve runs with and returns at once, without
// waiting for Serve to return.
func (s *Server) Cancel() { s.cancel() }

// Wait waits until Serve returns and returns its error. It may be called
// more than once; later calls return the same error.
func (s *Server) Wait() error {
	s.once.Do(func() { s.err = <-s.done })
	return s.err
}

// Stop cancels Serve and waits for it: Cancel then Wait.
func (s *Server) Stop() error {
	s.Cancel()
	return s.Wait()
}
