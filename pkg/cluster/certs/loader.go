package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// Loader serves a node's certificate from its files and re-reads them when
// they change (size or modification time), so a new certificate is used
// by the next handshake without a restart. A pair that does not load (a
// half-written rotation) leaves the previous certificate in use; Err says
// why.
type Loader struct {
	certFile, keyFile string
	pool              *x509.CertPool

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	lastErr error
}

// fileStamp tells a file's versions apart: an atomic rewrite (rename)
// changes the inode even within the modification time's granularity.
type fileStamp struct {
	size int64
	mod  time.Time
	ino  uint64
}

// NewLoader loads the node's certificate and key and the cluster CA (a
// PEM bundle: during a CA rotation it holds the old and the new CA).
func NewLoader(certFile, keyFile, caFile string) (*Loader, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("certs: ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("certs: ca: no certificate in %s", caFile)
	}
	l := &Loader{certFile: certFile, keyFile: keyFile, pool: pool}
	if err := l.reload(); err != nil {
		return nil, err
	}
	return l, nil
}

// Config is the TLS configuration of both sides of every node-to-node
// connection: the node's certificate (re-read on change), the cluster CA
// as RootCAs and ClientCAs, client certificates required, TLS 1.3.
func (l *Loader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    l.pool,
		ClientCAs:  l.pool,
		ClientAuth: tls.RequireAndVerifyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return l.Certificate()
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return l.Certificate()
		},
	}
}

// Certificate returns the current certificate, re-reading the files first
// if they changed.
func (l *Loader) Certificate() (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now, err := stamps(l.certFile, l.keyFile); err == nil && now != l.stamp {
		l.lastErr = l.loadLocked(now)
	}
	return l.cert, nil
}

// Err is the error of the last failed re-read (nil once one succeeds).
func (l *Loader) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

func (l *Loader) reload() error {
	now, err := stamps(l.certFile, l.keyFile)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loadLocked(now)
}

func (l *Loader) loadLocked(st [2]fileStamp) error {
	c, err := tls.LoadX509KeyPair(l.certFile, l.keyFile)
	if err != nil {
		return fmt.Errorf("certs: load %s: %w", l.certFile, err)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: l.pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("certs: %s is not signed by the cluster CA: %w", l.certFile, err)
	}
	l.cert, l.stamp = &c, st
	return nil
}

func stamps(files ...string) ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, f := range files[:2] {
		fi, err := os.Stat(f)
		if err != nil {
			return out, fmt.Errorf("certs: %w", err)
		}
		out[i] = fileStamp{size: fi.Size(), mod: fi.ModTime()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			out[i].ino = st.Ino
		}
	}
	return out, nil
}
