package sysmem

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Total agrees with /proc/meminfo's MemTotal.
func TestTotal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			if got := Total(); got != kib<<10 {
				t.Fatalf("Total() = %d, MemTotal %d KiB", got, kib)
			}
			return
		}
	}
	t.Skip("no MemTotal")
}
