// Package keepalived converts a keepalived.conf into lbd's configuration.
//
// It is the library behind `lbctl import keepalived FILE`. The conversion
// has two halves: Parse turns keepalived's block syntax (comments with '#'
// and '!', quoted strings, braces, include with globs) into a tree of
// statements that remember their file and line; Convert maps that tree onto
// a config.Config, renders it with config.Marshal and parses it back with
// config.Parse, so a conversion that returns no error always yields a file
// lbd accepts.
//
// What keepalived can express and lbd cannot is never dropped silently: it
// is reported as a Warning, "file:line: could not convert X: why", and
// notes ("file:line: note: ...") say what the operator should check.
//
// The mapping, in short:
//
//   - virtual_server IP PORT (and virtual_server group NAME, expanded) is
//     a virtual_services entry; fwmark services are reported. lb_algo and
//     lvs_sched are the scheduler, lb_kind and lvs_method the forwarding
//     (keepalived's default NAT is written out, since lbd's is DR),
//     protocol, persistence_timeout (6 minutes without a value).
//   - real_server IP [PORT] is a real with its weight. lbd has one health
//     check per service: the first real server's check is the service's,
//     and every real server whose check differs is reported.
//   - TCP_CHECK is type tcp, HTTP_GET type http (the first url: path,
//     digest, status_code with ranges, virtualhost); SSL_GET and
//     SMTP_CHECK degrade to tcp with a warning; MISC_CHECK and the other
//     checkers are reported and leave the real server unchecked (type
//     none), as is a real server without checker in keepalived.
//     connect_timeout, retry/nb_get_retry, delay_before_retry, delay_loop,
//     warmup, alpha and inhibit_on_failure inherit from virtual server to
//     real server to checker as in keepalived. Only values that differ from
//     lbd's defaults are written, and a check shared by every service is
//     lifted into defaults.health.
//   - The first vrrp_instance is the vrrp section and the director node
//     (interface, priority, unicast_src_ip as its address); unicast_peer
//     addresses become further director nodes. authentication is dropped
//     (VRRPv3 has none), state is not kept (lbd elects by priority).
//   - global_defs and vrrp_sync_group are noted and ignored; keepalived.conf
//     has no tenants, so no allow-lists (those live in iptables).
package keepalived
