package history

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Unix(1_800_000_000, 0) // a minute boundary

// feed records n samples of tenant a, every Step from start, with 10
// commands, 3 hits and 1 miss and an eviction per sample.
func feed(r *Recorder, start time.Time, n int, from uint64) time.Time {
	t := start
	for i := range n {
		c := from + uint64(i)
		r.Record(t, []Sample{{Tenant: "a", Items: int64(i), Bytes: 100, Limit: 1000, Conns: 2, Hits: 3 * c, Misses: c, Evictions: c, Commands: 10 * c}})
		t = t.Add(Step)
	}
	return t
}

func TestRecordDeltasAndFold(t *testing.T) {
	r := New()
	end := feed(r, t0, 13, 0) // 12 intervals: two whole minutes
	fine := r.Series("a", t0)
	if len(fine) != 12 {
		t.Fatalf("%d fine points", len(fine))
	}
	p := fine[0]
	if p.T != t0.Unix() || p.Secs != 10 || p.Commands != 10 || p.OpsPerSec() != 1 || p.HitRatio() != 0.75 || p.Evictions != 1 || p.Limit != 1000 {
		t.Errorf("first point %+v ops %v ratio %v", p, p.OpsPerSec(), p.HitRatio())
	}
	// The next minute's first point folds the first minute.
	feed(r, end, 2, 13)
	se := r.tenants["a"]
	c := se.coarse.all()
	if len(c) != 2 {
		t.Fatalf("%d coarse points: %+v", len(c), c)
	}
	if c[0].T != t0.Unix() || c[0].Secs != 60 || c[0].Commands != 60 || c[0].Items != 3 || c[0].HitRatio() != 0.75 {
		t.Errorf("folded minute %+v", c[0])
	}
	// A counter that goes back (the store restarted) counts from zero.
	r.Record(end.Add(time.Hour), []Sample{{Tenant: "a", Commands: 5}})
	if last := r.Series("a", end.Add(-time.Minute)); last[len(last)-1].Commands != 5 {
		t.Errorf("after a reset: %+v", last[len(last)-1])
	}
}

func TestSeriesPicksResolution(t *testing.T) {
	r := New()
	// Three days of samples: 25,920 of them.
	end := feed(r, t0, int(CoarseSpan/Step), 0)
	day := r.Series("a", end.Add(-24*time.Hour))
	if len(day) < 24*60-10 || len(day) > 24*60+360 {
		t.Errorf("a day: %d points", len(day))
	}
	if day[1].T-day[0].T != 60 {
		t.Errorf("a day is not in minutes: %d s apart", day[1].T-day[0].T)
	}
	hour := r.Series("a", end.Add(-time.Hour))
	if len(hour) != 360 && len(hour) != 359 {
		t.Errorf("an hour: %d points", len(hour))
	}
	if hour[1].T-hour[0].T != 10 {
		t.Errorf("an hour is not in 10 s steps")
	}
	all := r.Series("a", end.Add(-CoarseSpan-time.Hour))
	if span := all[len(all)-1].T - all[0].T; span < int64((CoarseSpan-2*time.Hour)/time.Second) {
		t.Errorf("3 days asked, %v kept", time.Duration(span)*time.Second)
	}
}

func TestSaveLoadAndSize(t *testing.T) {
	r := New()
	end := feed(r, t0, int(CoarseSpan/Step)+100, 0)
	dir := t.TempDir()
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "a.hist"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 1<<20 {
		t.Errorf("a full history takes %d bytes", fi.Size())
	}
	os.WriteFile(filepath.Join(dir, "b.hist"), []byte("garbage"), 0o600)
	got, err := Load(dir)
	if err == nil {
		t.Error("a damaged file is not reported")
	}
	since := end.Add(-CoarseSpan)
	a, b := r.Series("a", since), got.Series("a", since)
	if len(a) != len(b) || a[0] != b[0] || a[len(a)-1] != b[len(b)-1] {
		t.Errorf("reloaded series differs: %d vs %d points", len(a), len(b))
	}
	// Sampling goes on where it stopped.
	feed(got, end, 2, uint64(CoarseSpan/Step)+100)
	if s := got.Series("a", end.Add(-Step)); len(s) != 2 || s[1].Commands != 10 {
		t.Errorf("after reload: %+v", s)
	}
}

func FuzzDecode(f *testing.F) {
	r := New()
	feed(r, t0, 20, 0)
	var b bytes.Buffer
	r.tenants["a"].encode(&b)
	f.Add(b.Bytes())
	f.Add([]byte("LBDHIST1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		se, err := decode(data)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := se.encode(&out); err != nil {
			t.Fatal(err)
		}
		if _, err := decode(out.Bytes()); err != nil {
			t.Fatalf("re-encoded series does not decode: %v", err)
		}
	})
}
