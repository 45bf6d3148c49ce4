package memcload

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Microsecond},
		{0.99, 990 * time.Microsecond},
	}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		if got < tt.want || float64(got) > float64(tt.want)*1.07 {
			t.Errorf("quantile(%v) = %v, want about %v", tt.q, got, tt.want)
		}
	}
	if h.max != time.Millisecond {
		t.Errorf("max = %v", h.max)
	}
}

func TestBucketsMonotonic(t *testing.T) {
	prev := -1
	for ns := uint64(0); ns < 1<<40; ns = ns*17/16 + 1 {
		b := bucketOf(ns)
		if b < prev || bucketValue(b) < ns {
			t.Fatalf("ns=%d bucket=%d (prev %d) upper=%d", ns, b, prev, bucketValue(b))
		}
		prev = b
	}
}
