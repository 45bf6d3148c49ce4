package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func applyTxn(t *testing.T, f *fsm, index uint64, ops ...Op) any {
	t.Helper()
	data, err := encodeTxn(ops)
	if err != nil {
		t.Fatal(err)
	}
	return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
}

// A snapshot persists every entry and the index; Restore replaces the
// state with it, dropping what was there.
func TestFSMSnapshotRestore(t *testing.T) {
	f := newFSM(slog.New(slog.DiscardHandler))
	applyTxn(t, f, 3, Op{Key: "config", Value: []byte("c")}, Op{Key: "overlay", Value: []byte("o")})
	applyTxn(t, f, 5, Op{Key: "slots/a", Value: []byte{0, 1, 2}})
	applyTxn(t, f, 6, Op{Key: "overlay", Delete: true})
	if res := applyTxn(t, f, 7, Op{Key: "config", Value: []byte("x"), IfVersion: Version(1)}); !errors.Is(res.(error), ErrConflict) {
		t.Fatalf("stale CAS: %v", res)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes after the snapshot do not leak into it.
	applyTxn(t, f, 8, Op{Key: "later", Value: []byte("l")})
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	g := newFSM(slog.New(slog.DiscardHandler))
	applyTxn(t, g, 1, Op{Key: "stale", Value: []byte("s")})
	ch := g.watch(make(chan struct{}))
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Key: "config", Value: []byte("c"), Version: 3}, {Key: "slots/a", Value: []byte{0, 1, 2}, Version: 5}}
	if got := g.list(""); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored %+v, want %+v", got, want)
	}
	if g.index() != 7 || <-ch != 7 || g.restores.Load() != 1 {
		t.Fatalf("restored index %d, restores %d", g.index(), g.restores.Load())
	}
	// The restored state goes on from its index.
	if res := applyTxn(t, g, 9, Op{Key: "config", Value: []byte("y"), IfVersion: Version(3)}); res != nil {
		t.Fatalf("CAS after restore: %v", res)
	}
}

func TestDecodeSnapshotRefuses(t *testing.T) {
	for name, s := range map[string]string{
		"not json":      `{`,
		"version":       `{"v":2,"index":1,"entries":[]}`,
		"unknown field": `{"v":1,"index":1,"entries":[],"x":1}`,
		"empty key":     `{"v":1,"index":3,"entries":[{"key":"","value":null,"version":1}]}`,
		"future entry":  `{"v":1,"index":3,"entries":[{"key":"a","value":null,"version":4}]}`,
		"zero version":  `{"v":1,"index":3,"entries":[{"key":"a","value":null,"version":0}]}`,
		"duplicate":     `{"v":1,"index":3,"entries":[{"key":"a","version":1},{"key":"a","version":2}]}`,
	} {
		if _, err := decodeSnapshot([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := newFSM(slog.New(slog.DiscardHandler)).Restore(io.NopCloser(bytes.NewReader([]byte(s)))); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
}

func TestValidateOps(t *testing.T) {
	long := string(make([]byte, MaxKeyLen+1))
	for _, tc := range []struct {
		name string
		ops  []Op
		ok   bool
	}{
		{"one write", []Op{{Key: "a", Value: []byte("1")}}, true},
		{"delete and CAS", []Op{{Key: "a", Delete: true}, {Key: "b", IfVersion: Version(2)}}, true},
		{"empty", nil, false},
		{"empty key", []Op{{Key: ""}}, false},
		{"long key", []Op{{Key: long}}, false},
		{"twice", []Op{{Key: "a"}, {Key: "a", Delete: true}}, false},
		{"delete with value", []Op{{Key: "a", Delete: true, Value: []byte("x")}}, false},
	} {
		err := ValidateOps(tc.ops)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		if _, err2 := encodeTxn(tc.ops); (err2 == nil) != tc.ok {
			t.Errorf("%s: encode: %v", tc.name, err2)
		}
	}
}

// FuzzDecodeTxn: decoding never panics, and what decodes re-encodes to
// the same transaction.
func FuzzDecodeTxn(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"ops":[{"key":"a","value":"MQ=="}]}`,
		`{"v":1,"ops":[{"key":"a","delete":true},{"key":"b","if_version":3}]}`,
		`{"v":1,"ops":[]}`, `{"v":2}`, `[]`, `{"v":1,"ops":[{"key":"a"}]} x`, `{"v":1,"ops":[{"key":"a","value":"!"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := decodeTxn(b)
		if err != nil {
			return
		}
		if ValidateOps(ops) != nil {
			t.Fatalf("decoded an invalid transaction %+v", ops)
		}
		again, err := encodeTxn(ops)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", ops, err)
		}
		ops2, err := decodeTxn(again)
		if err != nil || !reflect.DeepEqual(normalize(ops), normalize(ops2)) {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", ops, again, ops2, err)
		}
		// The FSM applies what decodes without panicking.
		fs := newFSM(slog.New(slog.DiscardHandler))
		fs.Apply(&raft.Log{Index: 1, Data: b})
		json.Marshal(fs.list(""))
	})
}

// normalize makes empty and nil values equal.
func normalize(ops []Op) []Op {
	out := make([]Op, len(ops))
	for i, op := range ops {
		if len(op.Value) == 0 {
			op.Value = nil
		}
		out[i] = op
	}
	return out
}
