package statefile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	var got map[string]int
	if ok, err := Load(path, &got); ok || err != nil {
		t.Fatalf("missing file: ok=%v err=%v", ok, err)
	}
	if err := Save(path, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, map[string]int{"a": 2}); err != nil {
		t.Fatal(err)
	}
	if ok, err := Load(path, &got); !ok || err != nil || got["a"] != 2 {
		t.Fatalf("got %v ok=%v err=%v", got, ok, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	os.WriteFile(path, []byte("{torn"), 0o600)
	if _, err := Load(path, &got); err == nil {
		t.Error("corrupt file accepted")
	}
}
