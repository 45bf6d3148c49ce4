package api

import (
	"context"
	"net/netip"
	"strconv"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds how long a scrape waits for the backend's status.
const scrapeTimeout = 10 * time.Second

// VRRPStates are the states lbd_vrrp_state reports, one series each.
var VRRPStates = []string{"init", "backup", "master", "fault"}

// Collector exports a Backend's status as Prometheus metrics, read at
// scrape time so the numbers are never older than the scrape.
type Collector struct {
	backend Backend
	d       metricDescs
}

// NewCollector returns a collector of b's status.
func NewCollector(b Backend) *Collector {
	return &Collector{backend: b, d: newMetricDescs()}
}

type metricDescs struct {
	up, info, started                                 *prometheus.Desc
	svcInfo, svcInKernel, svcConns, svcPkts, svcBytes *prometheus.Desc
	rsConns, rsPkts, rsBytes, rsActive, rsInact       *prometheus.Desc
	rsWeight, rsConfigWeight, rsUp, rsDraining        *prometheus.Desc
	vrrpState, vrrpTransitions, vrrpPriority          *prometheus.Desc
	aclEntries, aclDrops                              *prometheus.Desc
	recDuration, recTotal, recFailures, recLast       *prometheus.Desc
	recError, recGeneration, ipvsWrites, ipvsUp       *prometheus.Desc
	kvsItems, kvsBytes, kvsLimit, kvsHits, kvsMisses  *prometheus.Desc
	kvsEvictions, kvsCurrConns, kvsTotalConns         *prometheus.Desc
	kvsCommands                                       *prometheus.Desc
}

func newMetricDescs() metricDescs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("lbd_"+name, help, labels, nil)
	}
	svc := []string{"service"}
	rs := []string{"service", "real"}
	dir := func(l []string) []string { return append(append([]string(nil), l...), "direction") }
	vr := []string{"vrid", "interface"}
	kv := []string{"node", "tenant"}
	return metricDescs{
		up:      d("status_up", "1 if the daemon's status could be read at this scrape.", nil...),
		info:    d("info", "This lbd node (always 1).", "node", "role"),
		started: d("start_time_seconds", "When the daemon started, in seconds since the epoch.", nil...),

		svcInfo:     d("service_info", "A virtual service's settings (always 1).", "service", "tenant", "protocol", "vip", "port", "scheduler", "forward"),
		svcInKernel: d("service_in_kernel", "1 if the virtual service is programmed in IPVS.", svc...),
		svcConns:    d("service_connections_total", "Connections scheduled by the virtual service.", svc...),
		svcPkts:     d("service_packets_total", "Packets through the virtual service.", dir(svc)...),
		svcBytes:    d("service_bytes_total", "Bytes through the virtual service.", dir(svc)...),

		rsConns:        d("real_connections_total", "Connections scheduled to the real server.", rs...),
		rsPkts:         d("real_packets_total", "Packets through the real server.", dir(rs)...),
		rsBytes:        d("real_bytes_total", "Bytes through the real server.", dir(rs)...),
		rsActive:       d("real_active_connections", "Active connections to the real server.", rs...),
		rsInact:        d("real_inactive_connections", "Inactive connections to the real server.", rs...),
		rsWeight:       d("real_weight", "The real server's weight in IPVS.", rs...),
		rsConfigWeight: d("real_config_weight", "The real server's desired weight before health and draining.", rs...),
		rsUp:           d("real_up", "1 if the real server passes its health check (or is not checked), 0 if it is down.", rs...),
		rsDraining:     d("real_draining", "1 while the real server is being drained.", rs...),

		vrrpState:       d("vrrp_state", "1 for the VRRP instance's current state, 0 for the others.", append(vr, "state")...),
		vrrpTransitions: d("vrrp_transitions_total", "VRRP state transitions.", vr...),
		vrrpPriority:    d("vrrp_priority", "The VRRP instance's priority.", vr...),

		aclEntries: d("acl_entries", "Entries in the tenant's allow-list set.", "tenant"),
		aclDrops:   d("acl_dropped_packets_total", "Packets to the tenant's port dropped by its allow-list.", "tenant"),

		recDuration:   d("reconcile_last_duration_seconds", "How long the last reconcile took.", nil...),
		recTotal:      d("reconciles_total", "Reconciles run.", nil...),
		recFailures:   d("reconcile_failures_total", "Reconciles that failed.", nil...),
		recLast:       d("reconcile_last_timestamp_seconds", "When the last reconcile ran, in seconds since the epoch.", nil...),
		recError:      d("reconcile_last_failed", "1 if the last reconcile failed.", nil...),
		recGeneration: d("desired_state_generation", "The generation of the desired state the last reconcile applied.", nil...),
		ipvsWrites:    d("ipvs_writes_total", "Netlink writes to IPVS (an unchanged reload adds none).", nil...),
		ipvsUp:        d("ipvs_up", "1 if lbd can program IPVS on this node.", nil...),

		kvsItems:      d("kvs_items", "Items in the tenant's store.", kv...),
		kvsBytes:      d("kvs_bytes", "Bytes in the tenant's store.", kv...),
		kvsLimit:      d("kvs_limit_bytes", "The tenant's memory limit.", kv...),
		kvsHits:       d("kvs_hits_total", "Get hits.", kv...),
		kvsMisses:     d("kvs_misses_total", "Get misses.", kv...),
		kvsEvictions:  d("kvs_evictions_total", "Items evicted to make room.", kv...),
		kvsCurrConns:  d("kvs_current_connections", "Open client connections.", kv...),
		kvsTotalConns: d("kvs_connections_total", "Client connections accepted.", kv...),
		kvsCommands:   d("kvs_commands_total", "Requests served (memcached and REST).", kv...),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	d := c.d
	for _, x := range []*prometheus.Desc{
		d.up, d.info, d.started,
		d.svcInfo, d.svcInKernel, d.svcConns, d.svcPkts, d.svcBytes,
		d.rsConns, d.rsPkts, d.rsBytes, d.rsActive, d.rsInact, d.rsWeight, d.rsConfigWeight, d.rsUp, d.rsDraining,
		d.vrrpState, d.vrrpTransitions, d.vrrpPriority,
		d.aclEntries, d.aclDrops,
		d.recDuration, d.recTotal, d.recFailures, d.recLast, d.recError, d.recGeneration, d.ipvsWrites, d.ipvsUp,
		d.kvsItems, d.kvsBytes, d.kvsLimit, d.kvsHits, d.kvsMisses, d.kvsEvictions, d.kvsCurrConns, d.kvsTotalConns, d.kvsCommands,
	} {
		ch <- x
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, err := c.backend.Status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.d.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.d.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.d.info, prometheus.GaugeValue, 1, st.Node, st.Role)
	if !st.Started.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.d.started, prometheus.GaugeValue, unixSeconds(st.Started))
	}
	for _, svc := range st.Services {
		c.collectService(ch, svc)
	}
	for _, v := range st.VRRP {
		c.collectVRRP(ch, v)
	}
	for _, a := range st.ACL {
		ch <- prometheus.MustNewConstMetric(c.d.aclEntries, prometheus.GaugeValue, float64(len(a.Entries)), a.Tenant)
		ch <- prometheus.MustNewConstMetric(c.d.aclDrops, prometheus.CounterValue, float64(a.Drops), a.Tenant)
	}
	c.collectReconcile(ch, st.Reconcile)
	if config.Role(st.Role).IsDirector() {
		ch <- prometheus.MustNewConstMetric(c.d.ipvsWrites, prometheus.CounterValue, float64(st.Reconcile.IPVSWrites))
		ch <- prometheus.MustNewConstMetric(c.d.ipvsUp, prometheus.GaugeValue, boolf(st.Reconcile.IPVSError == ""))
	}
	for _, k := range st.KVS {
		c.collectKVS(ch, k)
	}
}

func (c *Collector) collectService(ch chan<- prometheus.Metric, svc ServiceStatus) {
	d := c.d
	ch <- prometheus.MustNewConstMetric(d.svcInfo, prometheus.GaugeValue, 1,
		svc.Name, svc.Tenant, svc.Protocol, svc.VIP.String(), strconv.Itoa(int(svc.Port)), svc.Scheduler, svc.Forward)
	ch <- prometheus.MustNewConstMetric(d.svcInKernel, prometheus.GaugeValue, boolf(svc.InKernel), svc.Name)
	ch <- prometheus.MustNewConstMetric(d.svcConns, prometheus.CounterValue, float64(svc.Stats.Conns), svc.Name)
	traffic(ch, d.svcPkts, d.svcBytes, svc.Stats, svc.Name)
	for _, r := range svc.Reals {
		rname := netip.AddrPortFrom(r.Addr, r.Port).String()
		ch <- prometheus.MustNewConstMetric(d.rsConns, prometheus.CounterValue, float64(r.Stats.Conns), svc.Name, rname)
		traffic(ch, d.rsPkts, d.rsBytes, r.Stats, svc.Name, rname)
		ch <- prometheus.MustNewConstMetric(d.rsActive, prometheus.GaugeValue, float64(r.ActiveConns), svc.Name, rname)
		ch <- prometheus.MustNewConstMetric(d.rsInact, prometheus.GaugeValue, float64(r.InactConns), svc.Name, rname)
		ch <- prometheus.MustNewConstMetric(d.rsWeight, prometheus.GaugeValue, float64(r.Weight), svc.Name, rname)
		ch <- prometheus.MustNewConstMetric(d.rsConfigWeight, prometheus.GaugeValue, float64(r.ConfigWeight), svc.Name, rname)
		ch <- prometheus.MustNewConstMetric(d.rsUp, prometheus.GaugeValue, boolf(r.Health != "down"), svc.Name, rname)
		ch <- prometheus.MustNewConstMetric(d.rsDraining, prometheus.GaugeValue, boolf(r.Draining), svc.Name, rname)
	}
}

// traffic emits the in and out packet and byte counters.
func traffic(ch chan<- prometheus.Metric, pkts, bytes *prometheus.Desc, s Stats, labels ...string) {
	with := func(dir string) []string { return append(append([]string(nil), labels...), dir) }
	ch <- prometheus.MustNewConstMetric(pkts, prometheus.CounterValue, float64(s.InPkts), with("in")...)
	ch <- prometheus.MustNewConstMetric(pkts, prometheus.CounterValue, float64(s.OutPkts), with("out")...)
	ch <- prometheus.MustNewConstMetric(bytes, prometheus.CounterValue, float64(s.InBytes), with("in")...)
	ch <- prometheus.MustNewConstMetric(bytes, prometheus.CounterValue, float64(s.OutBytes), with("out")...)
}

func (c *Collector) collectVRRP(ch chan<- prometheus.Metric, v VRRPStatus) {
	vrid := strconv.Itoa(v.VRID)
	for _, s := range VRRPStates {
		ch <- prometheus.MustNewConstMetric(c.d.vrrpState, prometheus.GaugeValue, boolf(v.State == s), vrid, v.Interface, s)
	}
	ch <- prometheus.MustNewConstMetric(c.d.vrrpTransitions, prometheus.CounterValue, float64(v.Transitions), vrid, v.Interface)
	ch <- prometheus.MustNewConstMetric(c.d.vrrpPriority, prometheus.GaugeValue, float64(v.Priority), vrid, v.Interface)
}

func (c *Collector) collectReconcile(ch chan<- prometheus.Metric, r ReconcileStatus) {
	ch <- prometheus.MustNewConstMetric(c.d.recDuration, prometheus.GaugeValue, r.Took.Seconds())
	ch <- prometheus.MustNewConstMetric(c.d.recTotal, prometheus.CounterValue, float64(r.Count))
	ch <- prometheus.MustNewConstMetric(c.d.recFailures, prometheus.CounterValue, float64(r.Failures))
	ch <- prometheus.MustNewConstMetric(c.d.recError, prometheus.GaugeValue, boolf(r.Error != ""))
	ch <- prometheus.MustNewConstMetric(c.d.recGeneration, prometheus.GaugeValue, float64(r.Generation))
	if !r.Last.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.d.recLast, prometheus.GaugeValue, unixSeconds(r.Last))
	}
}

func (c *Collector) collectKVS(ch chan<- prometheus.Metric, k KVSStats) {
	d := c.d
	l := []string{k.Node, k.Tenant}
	ch <- prometheus.MustNewConstMetric(d.kvsItems, prometheus.GaugeValue, float64(k.Items), l...)
	ch <- prometheus.MustNewConstMetric(d.kvsBytes, prometheus.GaugeValue, float64(k.Bytes), l...)
	ch <- prometheus.MustNewConstMetric(d.kvsLimit, prometheus.GaugeValue, float64(k.LimitBytes), l...)
	ch <- prometheus.MustNewConstMetric(d.kvsHits, prometheus.CounterValue, float64(k.Hits), l...)
	ch <- prometheus.MustNewConstMetric(d.kvsMisses, prometheus.CounterValue, float64(k.Misses), l...)
	ch <- prometheus.MustNewConstMetric(d.kvsEvictions, prometheus.CounterValue, float64(k.Evictions), l...)
	ch <- prometheus.MustNewConstMetric(d.kvsCurrConns, prometheus.GaugeValue, float64(k.CurrConns), l...)
	ch <- prometheus.MustNewConstMetric(d.kvsTotalConns, prometheus.CounterValue, float64(k.TotalConns), l...)
	ch <- prometheus.MustNewConstMetric(d.kvsCommands, prometheus.CounterValue, float64(k.Commands), l...)
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
