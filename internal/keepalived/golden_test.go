package keepalived

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden converts every testdata/*.conf that has a .golden.yaml beside
// it and compares the YAML and the warnings.
func TestGolden(t *testing.T) {
	confs, err := filepath.Glob("testdata/*.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, conf := range confs {
		base := strings.TrimSuffix(conf, ".conf")
		golden := base + ".golden.yaml"
		if _, err := os.Stat(golden); err != nil && !*update {
			continue
		}
		t.Run(filepath.Base(base), func(t *testing.T) {
			res, err := ConvertFile(conf, Options{})
			if err != nil {
				if *update {
					return
				}
				t.Fatalf("ConvertFile(%s): %v", conf, err)
			}
			var got bytes.Buffer
			got.Write(res.YAML)
			got.WriteString("# warnings:\n")
			for _, w := range res.Warnings {
				got.WriteString("#   " + w.String() + "\n")
			}
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s: output differs from %s (run go test -update):\n--- got\n%s\n--- want\n%s", conf, golden, got.Bytes(), want)
			}
		})
	}
}
