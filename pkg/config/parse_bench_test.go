package config

import (
	"fmt"
	"strings"
	"testing"
)

// tenThousand is a file with 10,000 virtual services of 4 real servers.
func tenThousand() []byte {
	var b strings.Builder
	b.WriteString("virtual_services:\n")
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&b, "  - vip: 10.%d.%d.1\n    port: 80\n    scheduler: rr\n    reals:\n", i/256, i%256)
		for r := 1; r <= 4; r++ {
			fmt.Fprintf(&b, "      - {address: 172.16.%d.%d, weight: 1}\n", i%256, r)
		}
	}
	return []byte(b.String())
}

// BenchmarkParse10k measures reading a 10,000-service file, the parsing
// part of a reload at that scale.
func BenchmarkParse10k(b *testing.B) {
	data := tenThousand()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data, "10k.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}
