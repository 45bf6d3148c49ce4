package panel

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strings"
	"time"

	"github.com/lbd-project/lbd/internal/history"
)

// metric is one graph a tenant page shows.
type metric struct {
	Name, Title, Unit string
	value             func(history.Point) (float64, bool)
	// limit, if set, draws a dashed line (memory against the limit).
	limit func(history.Point) float64
}

// metrics are the tenant page's graphs, in page order.
var metrics = []metric{
	{Name: "records", Title: "Records", Unit: "", value: func(p history.Point) (float64, bool) { return float64(p.Items), true }},
	{Name: "memory", Title: "Memory used / limit", Unit: "B", value: func(p history.Point) (float64, bool) { return float64(p.Bytes), true },
		limit: func(p history.Point) float64 { return float64(p.Limit) }},
	{Name: "ops", Title: "Operations per second", Unit: "/s", value: func(p history.Point) (float64, bool) { return p.OpsPerSec(), true }},
	{Name: "hitratio", Title: "Hit ratio", Unit: "%", value: func(p history.Point) (float64, bool) {
		r := p.HitRatio()
		return 100 * r, r >= 0
	}},
	{Name: "evictions", Title: "Evictions per minute", Unit: "/min", value: func(p history.Point) (float64, bool) {
		if p.Secs <= 0 {
			return 0, false
		}
		return float64(p.Evictions) * 60 / float64(p.Secs), true
	}},
	{Name: "conns", Title: "Connections", Unit: "", value: func(p history.Point) (float64, bool) { return float64(p.Conns), true }},
}

func metricByName(name string) (metric, bool) {
	for _, m := range metrics {
		if m.Name == name {
			return m, true
		}
	}
	return metric{}, false
}

// Graph geometry.
const (
	gw, gh             = 560, 180
	padL, padR, padT   = 64, 12, 26
	padB               = 24
	plotW, plotH       = gw - padL - padR, gh - padT - padB
	maxPolylinePoints  = 2000
	graphFontSize      = 11
	graphTitleFontSize = 13
)

// renderSVG draws a metric's series over [from, to] as a standalone SVG:
// a line, its latest value, the y range and the time span. A series
// without points says so instead of drawing nothing; the nodes whose
// series are missing (they did not answer) are named on the graph.
func renderSVG(m metric, pts []history.Point, missing []string, from, to time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" class="graph" data-metric="%s">`,
		gw, gh, gw, gh, html.EscapeString(m.Title), m.Name)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#fff" stroke="#ccd"/>`, gw, gh)
	type xy struct{ x, y float64 }
	var vals, lims []xy
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		v, ok := m.value(p)
		if !ok {
			continue
		}
		x := float64(p.T)
		vals = append(vals, xy{x, v})
		lo, hi = min(lo, v), max(hi, v)
		if m.limit != nil {
			l := m.limit(p)
			lims = append(lims, xy{x, l})
			hi = max(hi, l)
		}
	}
	latest := "no data yet"
	if len(vals) > 0 {
		latest = human(vals[len(vals)-1].y, m.Unit)
		if m.limit != nil && len(lims) > 0 {
			latest += " of " + human(lims[len(lims)-1].y, m.Unit)
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="17" font-size="%d" font-family="sans-serif" font-weight="bold">%s</text>`, padL, graphTitleFontSize, html.EscapeString(m.Title))
	fmt.Fprintf(&b, `<text x="%d" y="17" font-size="%d" font-family="sans-serif" text-anchor="end" class="latest">%s</text>`, gw-padR, graphFontSize, html.EscapeString(latest))
	if len(missing) > 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="%d" font-family="sans-serif" text-anchor="middle" fill="#c33" class="missing">missing: %s (no answer; not counted)</text>`,
			padL+plotW/2, gh-6, graphFontSize, html.EscapeString(strings.Join(missing, ", ")))
	}
	if len(vals) == 0 {
		b.WriteString(`</svg>`)
		return b.Bytes()
	}
	lo = min(lo, 0)
	if hi <= lo {
		hi = lo + 1
	}
	t0, t1 := float64(from.Unix()), float64(to.Unix())
	if t1 <= t0 {
		t1 = t0 + 1
	}
	px := func(t float64) float64 { return padL + (t-t0)/(t1-t0)*plotW }
	py := func(v float64) float64 { return padT + plotH - (v-lo)/(hi-lo)*plotH }
	// Axes and labels.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#99a"/>`, padL, padT, padL, padT+plotH)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#99a"/>`, padL, padT+plotH, padL+plotW, padT+plotH)
	for _, v := range []float64{lo, (lo + hi) / 2, hi} {
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eef"/>`, padL+1, y, padL+plotW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="%d" font-family="sans-serif" text-anchor="end">%s</text>`, padL-4, y+4, graphFontSize, html.EscapeString(human(v, m.Unit)))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="%d" font-family="sans-serif">%s</text>`, padL, gh-6, graphFontSize, from.UTC().Format("Jan 2 15:04"))
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="%d" font-family="sans-serif" text-anchor="end">%s UTC</text>`, padL+plotW, gh-6, graphFontSize, to.UTC().Format("Jan 2 15:04"))
	line := func(ps []xy, attrs string) {
		step := max(1, len(ps)/maxPolylinePoints)
		b.WriteString(`<polyline fill="none" ` + attrs + ` points="`)
		for i := 0; i < len(ps); i += step {
			fmt.Fprintf(&b, "%.1f,%.1f ", px(ps[i].x), py(ps[i].y))
		}
		if (len(ps)-1)%step != 0 {
			fmt.Fprintf(&b, "%.1f,%.1f", px(ps[len(ps)-1].x), py(ps[len(ps)-1].y))
		}
		b.WriteString(`"/>`)
	}
	if len(lims) > 0 {
		line(lims, `stroke="#c33" stroke-dasharray="5,4" stroke-width="1.5" class="limit"`)
	}
	line(vals, `stroke="#2563eb" stroke-width="2" class="series"`)
	// Few points (a new tenant, a fresh lbd) make a short line: mark them.
	if len(vals) <= 60 {
		for _, v := range vals {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="#2563eb"/>`, px(v.x), py(v.y))
		}
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}

// human formats v with SI (or, for bytes, binary) prefixes.
func human(v float64, unit string) string {
	if unit == "%" {
		return fmt.Sprintf("%.1f%%", v)
	}
	base, prefixes := 1000.0, []string{"", "k", "M", "G", "T"}
	if unit == "B" {
		base, prefixes = 1024, []string{"", "Ki", "Mi", "Gi", "Ti"}
	}
	i := 0
	for math.Abs(v) >= base && i < len(prefixes)-1 {
		v /= base
		i++
	}
	s := fmt.Sprintf("%.0f", v)
	if i > 0 || (v != math.Trunc(v) && math.Abs(v) < 100) {
		s = fmt.Sprintf("%.1f", v)
	}
	return s + " " + prefixes[i] + unit
}
