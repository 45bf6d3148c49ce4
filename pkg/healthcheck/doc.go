// Package healthcheck probes real servers the way keepalived's checkers do
// (TCP_CHECK, HTTP_GET/SSL_GET, plus a memcached "version" check) and reports
// when each one goes up or down.
//
// The semantics follow keepalived: a check runs every DelayLoop and fails if
// it does not complete within ConnectTimeout; a server that is up is declared
// down only after Retry further attempts, spaced by DelayBeforeRetry, have
// also failed; one success brings a server back up. The first check of a new
// target is delayed by a random amount up to Warmup, so that thousands of
// targets added at once do not all connect in the same instant. With Alpha a
// target starts down until a check proves it up; otherwise it starts up.
//
// A Checker is cheap with thousands of targets: one scheduler goroutine keeps
// every target in a timer heap and hands due probes to a bounded pool of
// worker goroutines. Nothing sleeps per target. Update replaces the target set
// and keeps the state of targets whose probe did not change, so a reload does
// not reset health. What to do about a down server (weight 0 or removal,
// keepalived's inhibit_on_failure) is the caller's decision.
package healthcheck
