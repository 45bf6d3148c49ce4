package api_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/api/apitest"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/internal/testutil/apiserve"
	"github.com/prometheus/client_golang/prometheus"
)

var errEnough = errors.New("enough")

func TestEventStream(t *testing.T) {
	f := apitest.New()
	f.Bus.Publish(events.Config, "old news")
	_, sock := serve(t, f, "")
	c, err := api.NewClient(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = c.Events(context.Background(), true, func(ev events.Event) error {
		got = append(got, ev.Message)
		switch ev.Message {
		case "old news":
			// The recent event came first and the stream is flushed:
			// the subscription exists, so this one is delivered live.
			f.Bus.Publish(events.Health, "real server down", "addr", "10.0.0.1")
			return nil
		case "real server down":
			if ev.Attrs["addr"] != "10.0.0.1" || ev.Kind != events.Health {
				t.Errorf("event = %+v", ev)
			}
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Fatalf("Events = %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %v", got)
	}
}

func TestEventStreamEndsWithContext(t *testing.T) {
	f := apitest.New()
	f.Bus.Publish(events.Config, "old news")
	_, sock := serve(t, f, "")
	c, _ := api.NewClient(sock, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := c.Events(ctx, true, func(events.Event) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Events = %v, want context.Canceled", err)
	}
}

func TestEventStreamEndsWithServer(t *testing.T) {
	f := apitest.New()
	f.Bus.Publish(events.Config, "old news")
	sock := filepath.Join(t.TempDir(), "lbd.sock")
	s := apiserve.Start(t, f, api.ServerOptions{Socket: sock, Registry: prometheus.NewRegistry()})
	c, _ := api.NewClient(sock, "")
	err := c.Events(context.Background(), true, func(events.Event) error {
		s.Cancel() // lbd shuts down while a client is streaming
		return nil
	})
	if !errors.Is(err, api.ErrUnreachable) {
		t.Fatalf("Events = %v, want ErrUnreachable", err)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
}
