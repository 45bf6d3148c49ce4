// Package kvs is lbd's memcached-compatible storage tier.
//
// It speaks the memcached text protocol (classic and meta commands) byte for
// byte as memcached 1.6 does, serves many tenants from one process (each on
// its own listener, with its own store, memory limit and counters), and
// offers two stores: an in-memory LRU store bounded by a byte limit, like
// memcached's -m, and a durable store on Pebble whose acknowledged writes
// survive a crash.
//
// A Tier runs the tenants of a storage node; Apply reconciles it with the
// desired tenant list without disturbing tenants that did not change.
package kvs
