package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLocalPersists(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Propose(ctx, Op{Key: KeyConfig, Value: []byte("a"), IfVersion: Version(0)}, Op{Key: KeyOverlay, Value: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	// A refused write changes no entry but is still an index.
	if _, err := l.Propose(ctx, Op{Key: KeyConfig, Value: []byte("b"), IfVersion: Version(0)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write: %v, want ErrConflict", err)
	}
	idx, err := l.Propose(ctx, Op{Key: KeyOverlay, Value: []byte(`{"x":1}`), IfVersion: Version(1)})
	if err != nil || idx != 3 {
		t.Fatalf("propose: %d, %v", idx, err)
	}
	re, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if re.AppliedIndex() != 3 {
		t.Fatalf("reopened at %d, want 3", re.AppliedIndex())
	}
	if e, ok := re.Get(KeyConfig); !ok || string(e.Value) != "a" || e.Version != 1 {
		t.Fatalf("config = %+v %v", e, ok)
	}
	if e, ok := re.Get(KeyOverlay); !ok || string(e.Value) != `{"x":1}` || e.Version != 3 {
		t.Fatalf("overlay = %+v %v", e, ok)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("files left behind: %v", entries)
	}
}

func TestLocalFailedWriteChangesNothing(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Propose(ctx, Op{Key: "k", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	// The file's directory becomes a file: the next write cannot land.
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	if _, err := l.Propose(ctx, Op{Key: "k", Value: []byte("2")}); err == nil {
		t.Fatal("a write that could not be saved succeeded")
	}
	if e, _ := l.Get("k"); string(e.Value) != "1" || l.AppliedIndex() != 1 {
		t.Fatalf("state moved after a failed write: %+v at %d", e, l.AppliedIndex())
	}
}

func TestLocalRejectsBadFile(t *testing.T) {
	for name, body := range map[string]string{
		"torn":   `{"index": 2, "entr`,
		"no key": `{"index": 2, "entries": [{"key": "", "version": 1}]}`,
		"twice":  `{"index": 2, "entries": [{"key": "a", "version": 1}, {"key": "a", "version": 2}]}`,
		"future": `{"index": 2, "entries": [{"key": "a", "version": 3}]}`,
		"zero":   `{"index": 2, "entries": [{"key": "a", "version": 0}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, LocalFile), []byte(body), 0o600)
			if _, err := OpenLocal(dir); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzDecodeLocal(f *testing.F) {
	f.Add([]byte(`{"index": 2, "entries": [{"key": "a", "value": "eA==", "version": 1}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		lf, err := decodeLocal(data)
		if err != nil {
			return
		}
		s := NewState()
		s.Restore(lf.Index, lf.Entries)
		for _, e := range s.Entries() {
			if e.Version == 0 || e.Version > s.Index() {
				t.Fatalf("accepted entry %+v at index %d", e, s.Index())
			}
		}
	})
}
