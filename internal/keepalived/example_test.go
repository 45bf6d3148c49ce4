package keepalived_test

import (
	"fmt"
	"os"

	"github.com/lbd-project/lbd/internal/keepalived"
)

// `lbctl import keepalived FILE` in a few lines: convert, print the YAML,
// and tell the operator what was not converted.
func ExampleConvert() {
	src := []byte(`
virtual_server 203.0.113.10 13101 {
    delay_loop 10
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 192.168.12.233 13101 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
`)
	res, err := keepalived.Convert(src, "keepalived.conf", keepalived.Options{NodeAddress: "192.168.12.231"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	os.Stdout.Write(res.YAML)
	for _, w := range res.Warnings {
		fmt.Println("#", w)
	}
	// Output:
	// nodes:
	//   - name: lb1
	//     role: director
	//     address: 192.168.12.231
	// defaults:
	//   health:
	//     type: tcp
	//     connect_timeout: 3s
	//     delay_loop: 10s
	// virtual_services:
	//   - vip: 203.0.113.10
	//     port: 13101
	//     protocol: tcp
	//     scheduler: rr
	//     forward: dr
	//     reals:
	//       - address: 192.168.12.233
	//         weight: 1
	// # keepalived.conf: note: keepalived.conf has no tenants: its virtual servers become plain virtual_services open to every source; per-port allow-lists kept in iptables are not read by this import
}
