package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/api/apitest"
	"github.com/lbd-project/lbd/internal/testutil/apiserve"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/prometheus/client_golang/prometheus"
)

func TestClientIPv6Names(t *testing.T) {
	f := apitest.New()
	f.State.Services = append(f.State.Services, api.ServiceStatus{Name: "tcp/[2001:db8::1]:80", Protocol: "tcp",
		VIP: netip.MustParseAddr("2001:db8::1"), Port: 80})
	_, sock := serve(t, f, "")
	c, _ := api.NewClient("unix://"+sock, "")
	ctx := context.Background()
	if svc, err := c.Service(ctx, "tcp/[2001:db8::1]:80"); err != nil || svc.Port != 80 {
		t.Fatalf("Service = %+v, %v", svc, err)
	}
	if err := c.SetWeight(ctx, "tcp/[2001:db8::1]:80", "2001:db8::2", 3); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteReal(ctx, "tcp/[2001:db8::1]:80", "[2001:db8::2]:80"); err != nil {
		t.Fatal(err)
	}
	w := 2
	if err := c.AddReal(ctx, "tcp/[2001:db8::1]:80", config.Real{Address: "2001:db8::3", Weight: &w}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteService(ctx, "tcp/[2001:db8::1]:80"); err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddrPort("[2001:db8::2]:80")
	var got []netip.AddrPort
	for _, call := range f.Mutations() {
		if call.Method == "SetWeight" || call.Method == "DeleteReal" {
			got = append(got, call.Args[1].(netip.AddrPort))
		}
		if call.Method == "AddReal" {
			if r := call.Args[1].(config.Real); r.Address != "2001:db8::3" || *r.Weight != 2 {
				t.Errorf("AddReal got %+v", r)
			}
		}
	}
	if len(got) != 2 || got[0] != want || got[1] != want {
		t.Errorf("real addresses = %v, want %v twice (bare address takes the service port)", got, want)
	}
}

func TestClientErrors(t *testing.T) {
	f := apitest.New()
	_, sock := serve(t, f, "")
	c, _ := api.NewClient(sock, "")
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"not found", func() error { return c.DeleteTenant(ctx, "nobody") }, api.ErrNotFound},
		{"conflict", func() error {
			return c.AddTenant(ctx, config.Tenant{Name: "user1", Service: config.Service{VIP: "203.0.113.10", Port: 1}})
		}, api.ErrConflict},
		{"invalid", func() error {
			_, err := c.ChangeAllow(ctx, "user1", "flush", nil)
			return err
		}, api.ErrInvalid},
		{"problems", func() error { return c.Validate(ctx, []byte("nodes: 3\n"), "x.yaml") }, api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	err := c.Validate(ctx, []byte("nodes: 3\n"), "x.yaml")
	var ae *api.Error
	if !errors.As(err, &ae) || len(ae.Problems) == 0 || ae.Problems[0][:9] != "x.yaml:1:" {
		t.Errorf("problems = %#v", err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	f := apitest.New()
	s := apiserve.Start(t, f, api.ServerOptions{TCPAddr: "127.0.0.1:0", Token: "tok", TLSCert: certFile, TLSKey: keyFile,
		Registry: prometheus.NewRegistry()})
	defer s.Stop()
	ctx := context.Background()
	url := "https://" + s.TCPAddr().String()
	c, _ := api.NewClient(url, "tok", api.WithTLSConfig(&tls.Config{RootCAs: pool}))
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("Status over TLS: %v", err)
	}
	untrusting, _ := api.NewClient(url, "tok")
	if _, err := untrusting.Status(ctx); !errors.Is(err, api.ErrUnreachable) {
		t.Fatalf("unverified TLS: err = %v", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lbd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
