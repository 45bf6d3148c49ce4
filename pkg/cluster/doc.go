// Package cluster holds lbd's replicated cluster state: the desired state of
// every node (the configuration as last applied, the runtime changes made
// through the API, the storage tier's slot map, tenants' credentials) as a
// small versioned key/value document.
//
// The data flow is
//
//	request → any node → Propose → raft leader → commit → every node's State → Watch → per-role reconcilers
//
// Writes are transactions of Ops; an Op may carry IfVersion, so a writer
// that validated a new value against the version it read commits only if
// nobody changed that key meanwhile (compare-and-set): the log never holds a
// value that was not validated against its predecessor.
//
// State is the pure state machine (no I/O): the raft FSM and the
// single-node store both apply transactions through it.
package cluster
