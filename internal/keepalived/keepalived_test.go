package keepalived

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestKeepalivedAgrees runs the real keepalived's config check (`keepalived
// -t`) on the testdata, so the files this package is tested with are files
// keepalived itself accepts (or, for the broken one, refuses). Files with a
// vrrp_instance are left out: keepalived checks their interfaces exist.
func TestKeepalivedAgrees(t *testing.T) {
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived is not installed (Debian package keepalived)")
	}
	tests := []struct {
		file string
		ok   bool
	}{
		{"testdata/seed000.conf", true},
		{"testdata/misc_fwmark.conf", true},
		{"testdata/unclosed.conf", false},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			abs, err := filepath.Abs(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "-t", "-l", "-D", "-f", abs).CombinedOutput()
			if (err == nil) != tt.ok {
				t.Errorf("keepalived -t %s: err = %v, want ok = %v\n%s", tt.file, err, tt.ok, out)
			}
		})
	}
}
