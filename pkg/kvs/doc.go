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
// desired tenant list without disturbing tenants that did not change, and
// refuses lists in which two tenants would share a name, a port or a data
// directory.
//
// Connections are served by a few epoll loops shared by all tenants (on
// Linux), which run every complete request in a connection's buffer and
// answer with one write, as memcached's worker threads do. A connection that
// needs blocking I/O (a value bigger than the loop's buffer, a reply bigger
// than its budget, a client that does not read) moves to a goroutine that
// runs the same protocol code on a net.Conn; tenants with an idle timeout
// use goroutines throughout.
//
// Where lbd differs from memcached on purpose: tenants cannot change their
// memory limit (cache_memlimit) or shut the server down, admin commands
// (watch, lru_crawler, slabs, lru) answer ERROR, "stats cachedump" lists
// nothing, and stats cover the tenant only.
package kvs
