package certs

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInitAndIssue(t *testing.T) {
	dir := t.TempDir()
	if err := InitDir(dir, "lbd cluster"); err != nil {
		t.Fatal(err)
	}
	if err := InitDir(dir, "again"); err == nil {
		t.Fatal("InitDir overwrote a CA")
	}
	cf, kf, err := IssueDir(dir, "dir1", []string{"10.0.0.1", "dir1.example", "fd00::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{kf, filepath.Join(dir, CAKeyFile)} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	ca := parseCert(t, caPEM)
	if !ca.IsCA || ca.NotAfter.Sub(ca.NotBefore) < CAValidity || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("ca: %+v", ca)
	}
	nodePEM, _ := os.ReadFile(cf)
	node := parseCert(t, nodePEM)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"dir1", "dir1.example", "10.0.0.1", "fd00::1"} {
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := node.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("verify as %s for %v: %v", name, usage, err)
			}
		}
	}
	if _, err := node.Verify(x509.VerifyOptions{Roots: roots, DNSName: "10.0.0.2"}); err == nil {
		t.Error("the certificate is valid for an address it does not carry")
	}
	if d := node.NotAfter.Sub(node.NotBefore); d < NodeValidity || d > NodeValidity+2*time.Hour {
		t.Errorf("node validity %s", d)
	}
	if !node.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Errorf("ips %v", node.IPAddresses)
	}
	// A CA's key is needed to issue; a node certificate is no CA.
	nodePair, _ := ReadPair(cf, kf)
	if _, err := Issue(nodePair, "x", nil, time.Now()); err == nil {
		t.Error("a node certificate issued another")
	}
	if _, err := Issue(PEM{Cert: caPEM, Key: nodePair.Key}, "x", nil, time.Now()); err == nil {
		t.Error("issued with a key that is not the CA's")
	}
}

// The loader serves a re-issued certificate at the next handshake, keeps
// the old one while the files do not load, and refuses a certificate of
// another CA.
func TestLoaderRotation(t *testing.T) {
	dir := t.TempDir()
	if err := InitDir(dir, "lbd cluster"); err != nil {
		t.Fatal(err)
	}
	cf, kf, err := IssueDir(dir, "n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLoader(cf, kf, filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := l.Config()
	first, err := cfg.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Rotation: a new certificate under the same names.
	if _, _, err := IssueDir(dir, "n1", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	second, _ := cfg.GetClientCertificate(nil)
	if second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("the loader still serves the old certificate after a rotation")
	}
	// A broken file keeps the current certificate and says why.
	if err := os.WriteFile(cf, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	third, _ := l.Certificate()
	if third != second || l.Err() == nil {
		t.Fatalf("broken files: serving %v, err %v", third.Leaf.SerialNumber, l.Err())
	}
	// A certificate of another CA is refused.
	other := t.TempDir()
	if err := InitDir(other, "other"); err != nil {
		t.Fatal(err)
	}
	ocf, okf, _ := IssueDir(other, "n1", nil)
	if _, err := NewLoader(ocf, okf, filepath.Join(dir, CACertFile)); err == nil {
		t.Fatal("loaded a certificate of another CA")
	}
}
