package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/pkg/config"
)

func TestApplyAsks(t *testing.T) {
	good := writeFile(t, "good.yaml", goodYAML)
	tests := []struct {
		answer     string
		wantCode   int
		wantMutate int
	}{
		{"y\n", 0, 1},
		{"yes\n", 0, 1},
		{"n\n", 1, 0},
		{"\n", 1, 0},
		{"", 1, 0},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.answer), func(t *testing.T) {
			fx := newFixture(t)
			fx.fake.DiffResult = api.Diff{Changes: []api.Change{{Op: "add", Kind: "tenant", Name: "t1"}}}
			var out, errb bytes.Buffer
			a := &app{stdin: strings.NewReader(tt.answer), stdout: &out, stderr: &errb, stdinTTY: true,
				getenv: func(string) string { return "" }, now: time.Now}
			code := a.run(context.Background(), []string{"--socket", fx.sock, "apply", "-f", good})
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d: %s", code, tt.wantCode, errb.String())
			}
			if !strings.Contains(errb.String(), "Apply 1 change(s)? [y/N]") {
				t.Errorf("no question: %q", errb.String())
			}
			if n := len(fx.fake.Mutations()); n != tt.wantMutate {
				t.Errorf("%d mutations, want %d", n, tt.wantMutate)
			}
		})
	}
}

func TestApplyNoChanges(t *testing.T) {
	fx := newFixture(t)
	code, out, _ := fx.lbctl(t, "", "apply", "-f", writeFile(t, "good.yaml", goodYAML))
	if code != 0 || !strings.Contains(out, "no changes") || len(fx.fake.Mutations()) != 0 {
		t.Fatalf("exit %d, out %q, mutations %v", code, out, fx.fake.Mutations())
	}
}

func TestEvents(t *testing.T) {
	fx := newFixture(t)
	fx.fake.Bus.Publish(events.Health, "real server down", "addr", "10.0.0.1")
	fx.fake.Bus.Publish(events.VRRP, "master")
	tests := []struct {
		output string
		want   []string
	}{
		{"table", []string{`health    real server down addr="10.0.0.1"`, "vrrp      master"}},
		{"json", []string{`"kind":"health","message":"real server down","attrs":{"addr":"10.0.0.1"}`}},
		{"yaml", []string{"---\ntime:", "message: master"}},
	}
	for _, tt := range tests {
		t.Run(tt.output, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The writer ends the stream once the replay is through.
			w := &cancelAfter{n: 2, cancel: cancel}
			a := &app{stdin: strings.NewReader(""), stdout: w, stderr: &bytes.Buffer{},
				getenv: func(string) string { return fx.sock }, now: time.Now}
			if code := a.run(ctx, []string{"events", "--recent", "-o", tt.output}); code != 0 {
				t.Fatalf("exit %d", code)
			}
			for _, s := range tt.want {
				if !strings.Contains(w.buf.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, w.buf.String())
				}
			}
		})
	}
}

// cancelAfter cancels after n events were written.
type cancelAfter struct {
	buf    bytes.Buffer
	n      int
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.buf.Write(p)
	if bytes.Contains(p, []byte("master")) {
		c.cancel()
	}
	return len(p), nil
}

func TestImportKeepalived(t *testing.T) {
	src := filepath.Join("..", "..", "internal", "keepalived", "testdata", "seed000.conf")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no keepalived test data: %v", err)
	}
	fx := newFixture(t)
	code, out, errs := fx.lbctl(t, "", "import", "keepalived", src)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	cfg, err := config.Parse([]byte(out), "converted.yaml")
	if err != nil {
		t.Fatalf("converted file refused: %v\n%s", err, out)
	}
	if len(cfg.Services()) == 0 {
		t.Errorf("no services in\n%s", out)
	}
	// -o writes a file lbctl validate accepts.
	dst := filepath.Join(t.TempDir(), "lbd.yaml")
	if code, _, errs := fx.lbctl(t, "", "import", "keepalived", "-o", dst, src); code != 0 {
		t.Fatalf("import -o: exit %d: %s", code, errs)
	}
	if code, _, errs := fx.lbctl(t, "", "validate", "-f", dst); code != 0 {
		t.Fatalf("validate: exit %d: %s", code, errs)
	}
	// A broken file is invalid input.
	broken := writeFile(t, "broken.conf", "virtual_server 10.0.0.1 80 {\n")
	if code, _, errs := fx.lbctl(t, "", "import", "keepalived", broken); code != exitInvalid || !strings.Contains(errs, "broken.conf:") {
		t.Errorf("broken: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := fx.lbctl(t, "", "import", "keepalived", "/nonexistent.conf"); code != exitFailed {
		t.Errorf("missing file: exit %d", code)
	}
}
