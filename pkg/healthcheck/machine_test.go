package healthcheck

import (
	"errors"
	"testing"
	"time"
)

func TestMachine(t *testing.T) {
	spec := Spec{Retry: 2, DelayLoop: 10 * time.Second, DelayBeforeRetry: time.Second}.withDefaults()
	fail := errors.New("refused")
	type step struct {
		err     error
		up      bool
		changed bool
		next    time.Duration
	}
	tests := []struct {
		name  string
		alpha bool
		retry int
		steps []step
	}{
		{
			name: "up stays up on success",
			steps: []step{
				{nil, true, false, 10 * time.Second},
				{nil, true, false, 10 * time.Second},
			},
		},
		{
			name:  "down after retry more failures",
			retry: 2,
			steps: []step{
				{fail, true, false, time.Second},
				{fail, true, false, time.Second},
				{fail, false, true, 10 * time.Second},
				{fail, false, false, 10 * time.Second}, // no retry while down
				{nil, true, true, 10 * time.Second},    // one success brings it back
			},
		},
		{
			name:  "a success during retries resets the count",
			retry: 1,
			steps: []step{
				{fail, true, false, time.Second},
				{nil, true, false, 10 * time.Second},
				{fail, true, false, time.Second},
				{fail, false, true, 10 * time.Second},
			},
		},
		{
			name:  "retry 0 goes down at once",
			retry: 0,
			steps: []step{
				{fail, false, true, 10 * time.Second},
			},
		},
		{
			name:  "alpha starts down",
			alpha: true,
			retry: 1,
			steps: []step{
				{fail, false, false, 10 * time.Second},
				{nil, true, true, 10 * time.Second},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec
			s.Alpha, s.Retry = tt.alpha, tt.retry
			now := time.Unix(0, 0)
			m := newMachine(s, now)
			if m.up == tt.alpha {
				t.Fatalf("initial up = %v with alpha %v", m.up, tt.alpha)
			}
			for i, st := range tt.steps {
				now = now.Add(time.Second)
				v := m.observe(s, st.err, now)
				if m.up != st.up || v.changed != st.changed || v.next != st.next {
					t.Fatalf("step %d: up=%v changed=%v next=%v, want up=%v changed=%v next=%v",
						i, m.up, v.changed, v.next, st.up, st.changed, st.next)
				}
				if v.changed && !m.since.Equal(now) {
					t.Fatalf("step %d: since = %v, want %v", i, m.since, now)
				}
			}
		})
	}
}
