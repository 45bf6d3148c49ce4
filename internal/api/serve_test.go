package api_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/api/apitest"
	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/apiserve"
	"github.com/prometheus/client_golang/prometheus"
)

// serve runs a server on a socket in a temporary directory (and TCP when
// token is set) and returns it once it listens.
func serve(t *testing.T, f *apitest.Fake, token string) (*api.Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "lbd.sock")
	opts := api.ServerOptions{Socket: sock, Registry: prometheus.NewRegistry()}
	if token != "" {
		opts.TCPAddr, opts.Token = "127.0.0.1:0", token
	}
	s := apiserve.Start(t, f, opts)
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	})
	return s.Server, sock
}

func TestUnixSocketModeAndClient(t *testing.T) {
	f := apitest.New()
	_, sock := serve(t, f, "")
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want socket 0600", fi.Mode())
	}
	c, err := api.NewClient(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil || st.Node != "lb1" {
		t.Fatalf("Status = %+v, %v", st.Node, err)
	}
}

func TestSocketGroup(t *testing.T) {
	gid := os.Getgid()
	f := apitest.New()
	sock := filepath.Join(t.TempDir(), "lbd.sock")
	s, err := api.NewServer(f, api.ServerOptions{Socket: sock, SocketGroup: strconv.Itoa(gid), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	defer s.Serve(ctx)
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want 0660", fi.Mode())
	}
}

func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		prepare func(path string) (cleanup func())
		wantErr string
	}{
		{"stale socket removed", func(p string) func() {
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			ln.SetUnlinkOnClose(false)
			ln.Close() // nobody answers any more, the file stays
			return func() {}
		}, ""},
		{"live socket kept", func(p string) func() {
			ln, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			testutil.Serve(t, ln, func(c net.Conn) { c.Close() })
			return func() { ln.Close() }
		}, "in use"},
		{"regular file kept", func(p string) func() {
			if err := os.WriteFile(p, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}, "not a socket"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strconv.Itoa(i)+".sock")
			defer tt.prepare(path)()
			s, err := api.NewServer(apitest.New(), api.ServerOptions{Socket: path, Registry: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Listen()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Listen: %v", err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				s.Serve(ctx)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Listen error = %v, want %q", err, tt.wantErr)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Errorf("existing file removed: %v", err)
			}
		})
	}
}

func TestTCPAuth(t *testing.T) {
	f := apitest.New()
	s, _ := serve(t, f, "s3cret")
	url := "http://" + s.TCPAddr().String()
	tests := []struct {
		name, token string
		wantErr     error
	}{
		{"no token", "", api.ErrUnauthorized},
		{"wrong token", "guess", api.ErrUnauthorized},
		{"prefix of token", "s3cre", api.ErrUnauthorized},
		{"right token", "s3cret", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := api.NewClient(url, tt.token)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Tenants(context.Background())
			if !errors.Is(err, tt.wantErr) && !(tt.wantErr == nil && err == nil) {
				t.Fatalf("Tenants error = %v, want %v", err, tt.wantErr)
			}
			var ae *api.Error
			if tt.wantErr != nil && (!errors.As(err, &ae) || ae.Status != 401) {
				t.Errorf("error %#v, want status 401", err)
			}
			// A refused caller changes nothing.
			_, err = c.ChangeAllow(context.Background(), "user1", api.AllowSet, nil)
			if tt.wantErr != nil && len(f.Mutations()) != 0 {
				t.Errorf("refused caller reached the backend: %v (%v)", f.Mutations(), err)
			}
		})
	}
}

func TestNewServerRefuses(t *testing.T) {
	tests := []struct {
		name string
		opts api.ServerOptions
		want string
	}{
		{"nothing to serve", api.ServerOptions{}, "neither"},
		{"tcp without token", api.ServerOptions{TCPAddr: "127.0.0.1:0"}, "token"},
		{"half TLS", api.ServerOptions{Socket: "x", TLSCert: "c"}, "both"},
		{"missing TLS files", api.ServerOptions{Socket: "x", TLSCert: "/nonexistent/c", TLSKey: "/nonexistent/k"}, "TLS key pair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Registry = prometheus.NewRegistry()
			_, err := api.NewServer(apitest.New(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestClientUnreachable(t *testing.T) {
	c, err := api.NewClient(filepath.Join(t.TempDir(), "nobody.sock"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, api.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}
