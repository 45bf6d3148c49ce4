package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/lbd-project/lbd/pkg/cluster/certs"
)

// DefaultCertDir is where `lbctl cluster certs` keeps the cluster CA and
// the node certificates unless --dir says otherwise.
const DefaultCertDir = "/etc/lbd/certs"

// clusterCertsCommand is `lbctl cluster certs`: the cluster CA and the node
// certificates of the node-to-node mutual TLS (no lbd needed).
func clusterCertsCommand() *command {
	return &command{name: "certs", summary: "the cluster CA and node certificates of the node-to-node mutual TLS", sub: []*command{
		{name: "init", usage: "[--dir DIR] [--name NAME]", summary: "make the cluster CA (ca.pem, ca-key.pem; once per cluster)", run: runCertsInit},
		{name: "issue", usage: "[--dir DIR] NODE [ADDR|DNSNAME...]", summary: "issue (or rotate) NODE's certificate: NODE.pem, NODE-key.pem", run: runCertsIssue},
	}}
}

func runCertsInit(_ context.Context, a *app, cmd *command, args []string) error {
	dir, name := DefaultCertDir, "lbd cluster CA"
	if _, err := a.parseArgs(cmd, args, 0, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "dir", dir, "certificate `directory`")
		fs.StringVar(&name, "name", name, "the CA's common `name`")
	}); err != nil {
		return err
	}
	if err := certs.InitDir(dir, name); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "wrote %s and %s (keep the key safe: it signs node certificates)\n",
		filepath.Join(dir, certs.CACertFile), filepath.Join(dir, certs.CAKeyFile))
	return nil
}

func runCertsIssue(_ context.Context, a *app, cmd *command, args []string) error {
	dir := DefaultCertDir
	pos, err := a.parseArgs(cmd, args, 1, -1, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "dir", dir, "certificate `directory` (holding the CA)")
	})
	if err != nil {
		return err
	}
	cf, kf, err := certs.IssueDir(dir, pos[0], pos[1:])
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "wrote %s and %s; copy them and %s to node %s\n", cf, kf, filepath.Join(dir, certs.CACertFile), pos[0])
	return nil
}
