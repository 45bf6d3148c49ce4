package vrrp

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotifierRunsScriptsInOrder(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	n := newNotifier(Notify{
		Master: "echo master >> " + out,
		Backup: "echo backup >> " + out,
		Fault:  "echo fault >> " + out,
		Stop:   "echo stop >> " + out,
		// Any gets keepalived's arguments appended.
		Any: `f() { echo "any $*" >> ` + out + `; }; f`,
	}, "INSTANCE", "vi", slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.run(ctx) }()
	for _, s := range []State{StateBackup, StateMaster, StateFault, StateInit} {
		n.changed(s, 100)
	}
	cancel() // run drains the queue before it returns
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("notifier did not finish")
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"backup", "any INSTANCE vi BACKUP 100",
		"master", "any INSTANCE vi MASTER 100",
		"fault", "any INSTANCE vi FAULT 100",
		"stop", "any INSTANCE vi STOP 100",
	}, "\n") + "\n"
	if string(b) != want {
		t.Fatalf("scripts ran:\n%s\nwant:\n%s", b, want)
	}
}

func TestMailbox(t *testing.T) {
	m := newMailbox[int]()
	for i := range 1000 {
		m.put(i) // never blocks
	}
	<-m.wake
	if got := m.take(); len(got) != 1000 || got[999] != 999 {
		t.Fatalf("took %d items", len(got))
	}
	if got := m.take(); len(got) != 0 {
		t.Fatalf("second take: %v", got)
	}
}
