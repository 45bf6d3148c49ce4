// Package certs makes and loads the certificates of lbd's node-to-node
// mutual TLS: a cluster CA (ECDSA P-256, 10 years) and one certificate per
// node (ServerAuth and ClientAuth, the node's name and IPs as SANs, 2
// years), as PEM files with 0600 keys, and a TLS configuration that
// re-reads them when they change, so certificates rotate without a restart.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Validity of the certificates made here.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	NodeValidity = 2 * 365 * 24 * time.Hour
)

// File names in a certificate directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// NodeCertFile and NodeKeyFile are the file names of a node's certificate
// and key in a certificate directory.
func NodeCertFile(name string) string { return name + ".pem" }

// NodeKeyFile: see NodeCertFile.
func NodeKeyFile(name string) string { return name + "-key.pem" }

// PEM is a certificate and its private key, PEM-encoded.
type PEM struct {
	Cert []byte
	Key  []byte
}

// NewCA makes a cluster CA named name.
func NewCA(name string, now time.Time) (PEM, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, fmt.Errorf("certs: ca key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return PEM{}, err
	}
	ski := subjectKeyID(&key.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"lbd"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return PEM{}, fmt.Errorf("certs: ca certificate: %w", err)
	}
	return encode(der, key)
}

// Issue makes a node certificate signed by the CA: CommonName and a DNS
// SAN are the node's name, plus every host given (IPs as IP SANs, other
// names as DNS SANs).
func Issue(ca PEM, name string, hosts []string, now time.Time) (PEM, error) {
	if name == "" {
		return PEM{}, fmt.Errorf("certs: issue: empty node name")
	}
	caCert, caKey, err := parsePair(ca)
	if err != nil {
		return PEM{}, fmt.Errorf("certs: issue %s: ca: %w", name, err)
	}
	if !caCert.IsCA {
		return PEM{}, fmt.Errorf("certs: issue %s: the ca certificate is not a CA", name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, fmt.Errorf("certs: issue %s: key: %w", name, err)
	}
	serial, err := serialNumber()
	if err != nil {
		return PEM{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: name, Organization: []string{"lbd"}},
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       now.Add(NodeValidity),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		AuthorityKeyId: caCert.SubjectKeyId,
		SubjectKeyId:   subjectKeyID(&key.PublicKey),
		DNSNames:       []string{name},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" && h != name {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return PEM{}, fmt.Errorf("certs: issue %s: %w", name, err)
	}
	return encode(der, key)
}

// InitDir makes a cluster CA into dir (ca.pem, ca-key.pem). It refuses to
// overwrite an existing CA.
func InitDir(dir, name string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	for _, f := range []string{CACertFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("certs: %s exists: a cluster has one CA (remove it by hand to start over)", filepath.Join(dir, f))
		}
	}
	ca, err := NewCA(name, time.Now())
	if err != nil {
		return err
	}
	return write(dir, CACertFile, CAKeyFile, ca)
}

// IssueDir issues a node certificate with the CA in dir and writes it to
// dir as NAME.pem and NAME-key.pem (replacing an older one: that is a
// rotation). It returns the two paths.
func IssueDir(dir, name string, hosts []string) (certFile, keyFile string, err error) {
	ca, err := ReadPair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return "", "", err
	}
	p, err := Issue(ca, name, hosts, time.Now())
	if err != nil {
		return "", "", err
	}
	if err := write(dir, NodeCertFile(name), NodeKeyFile(name), p); err != nil {
		return "", "", err
	}
	return filepath.Join(dir, NodeCertFile(name)), filepath.Join(dir, NodeKeyFile(name)), nil
}

// ReadPair reads a certificate and key file.
func ReadPair(certFile, keyFile string) (PEM, error) {
	c, err := os.ReadFile(certFile)
	if err != nil {
		return PEM{}, fmt.Errorf("certs: %w", err)
	}
	k, err := os.ReadFile(keyFile)
	if err != nil {
		return PEM{}, fmt.Errorf("certs: %w", err)
	}
	return PEM{Cert: c, Key: k}, nil
}

// write writes the pair atomically (temporary file, rename): the key 0600,
// the certificate 0644.
func write(dir, certName, keyName string, p PEM) error {
	if err := writeFile(filepath.Join(dir, keyName), p.Key, 0o600); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, certName), p.Cert, 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}

func encode(der []byte, key *ecdsa.PrivateKey) (PEM, error) {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return PEM{}, fmt.Errorf("certs: marshal key: %w", err)
	}
	return PEM{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}, nil
}

// parsePair parses a PEM certificate and its EC private key.
func parsePair(p PEM) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(p.Cert)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	kb, _ := pem.Decode(p.Key)
	if kb == nil {
		return nil, nil, errors.New("no PEM key")
	}
	var key *ecdsa.PrivateKey
	switch kb.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	case "PRIVATE KEY":
		var k any
		k, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err == nil {
			var ok bool
			if key, ok = k.(*ecdsa.PrivateKey); !ok {
				err = errors.New("the key is not ECDSA")
			}
		}
	default:
		err = fmt.Errorf("unknown key type %q", kb.Type)
	}
	if err != nil {
		return nil, nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("the key does not match the certificate")
	}
	return cert, key, nil
}

func serialNumber() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial: %w", err)
	}
	return s, nil
}

func subjectKeyID(pub *ecdsa.PublicKey) []byte {
	b, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(b)
	return sum[:20]
}
