//go:build tools

// This file pins modules that packages under construction import, so that
// `go mod tidy` keeps them while those packages are being written. Remove an
// import once a real package uses it.
package tools

import (
	_ "github.com/bradfitz/gomemcache/memcache"
	_ "github.com/cockroachdb/pebble"
	_ "github.com/coreos/go-iptables/iptables"
	_ "github.com/mdlayher/packet"
	_ "github.com/moby/ipvs"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/net/ipv4"
)
