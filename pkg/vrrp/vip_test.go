package vrrp

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// logRecords decodes the JSON lines a slog.JSONHandler wrote.
func logRecords(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// warnings returns the WARN records whose message contains msg.
func warnings(t *testing.T, buf *bytes.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range logRecords(t, buf) {
		if r[slog.LevelKey] == slog.LevelWarn.String() && strings.Contains(r[slog.MessageKey].(string), msg) {
			out = append(out, r)
		}
	}
	return out
}

const leftoverMsg = "VIP was on the interface at start"

func TestStartRemovesLeftoverVIPWithWarning(t *testing.T) {
	var buf bytes.Buffer
	i, v := testInstanceLog(t, "vi_left", 51, slog.New(slog.NewJSONHandler(&buf, nil)))
	v.on = true // left by a run that was killed, or added by hand
	now := time.Unix(1000, 0)
	i.exec(i.m().Start(now))
	if i.State() != StateBackup || v.on {
		t.Fatalf("after start: state %s, VIP on %v; want BACKUP without the VIP", i.State(), v.on)
	}
	ws := warnings(t, &buf, leftoverMsg)
	if len(ws) != 1 {
		t.Fatalf("got %d warnings about the leftover VIP, want 1; log:\n%s", len(ws), buf.String())
	}
	w := ws[0]
	for k, want := range map[string]string{"addr": "10.0.0.51/32", "interface": "eth0", "vrrp_instance": "vi_left"} {
		if got, _ := w[k].(string); got != want {
			t.Errorf("warning %s = %q, want %q; record %v", k, got, want, w)
		}
	}
}

func TestNoLeftoverWarningOtherwise(t *testing.T) {
	var buf bytes.Buffer
	i, v := testInstanceLog(t, "vi_clean", 52, slog.New(slog.NewJSONHandler(&buf, nil)))
	now := time.Unix(1000, 0)
	// A clean start: nothing to remove, nothing to say.
	i.exec(i.m().Start(now))
	if ws := warnings(t, &buf, leftoverMsg); len(ws) != 0 {
		t.Fatalf("warned at a clean start: %v", ws)
	}
	// Master, then preempted: the VIPs go, which is routine, not news.
	later := now.Add(10 * time.Second)
	i.exec(i.m().Tick(later))
	if i.State() != StateMaster || !v.on {
		t.Fatalf("state %s, VIP on %v; want MASTER with the VIP", i.State(), v.on)
	}
	i.exec(i.m().Advert(later, peerHigh, adv(200)))
	if i.State() != StateBackup || v.on {
		t.Fatalf("state %s, VIP on %v; want BACKUP without the VIP", i.State(), v.on)
	}
	if ws := warnings(t, &buf, leftoverMsg); len(ws) != 0 {
		t.Fatalf("warned when a Master stepped down: %v", ws)
	}
	// Leaving FAULT also removes the VIPs, but only a start warns.
	i.SetFault("link eth1", true)
	pump(later, i)
	v.on = true
	i.SetFault("link eth1", false)
	pump(later, i)
	if i.State() != StateBackup || v.on {
		t.Fatalf("state %s, VIP on %v; want BACKUP without the VIP", i.State(), v.on)
	}
	if ws := warnings(t, &buf, leftoverMsg); len(ws) != 0 {
		t.Fatalf("warned when leaving FAULT: %v", ws)
	}
}
