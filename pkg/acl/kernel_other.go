//go:build !linux

package acl

import "errors"

func newLinuxKernel(Options) (kernel, error) {
	return nil, errors.New("acl: needs Linux (ipset and iptables)")
}
