#!/usr/bin/env bash
# make demo: runs the lbd lab (scripts/demo-lab.sh). The lab needs kernel
# IPVS; when this kernel has none, it runs inside a VM booting Debian's stock
# kernel (scripts/vm/run.sh), which the Makefile's deps installed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x bin/lbd ] && [ -x bin/lbctl ] || { echo "demo: run make build first" >&2; exit 1; }
if modprobe ip_vs 2>/dev/null && [ -e /proc/net/ip_vs ]; then
	exec scripts/demo-lab.sh
fi
echo "demo: this kernel ($(uname -r)) has no IPVS; running the lab in a VM with Debian's kernel"
exec scripts/vm/run.sh --mem 1536 --timeout 900 -- scripts/demo-lab.sh
