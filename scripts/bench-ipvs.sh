#!/usr/bin/env bash
# make bench-ipvs: lbd's IPVS reconciler against ipvsadm, in the same run,
# inside a VM whose kernel has IPVS (scripts/vm/run.sh): converge N virtual
# services x M real servers into an empty table (lbd vs `ipvsadm -R`), then
# one changed weight at N services (netlink work, and end to end from the
# YAML file). The YAML load is also timed on the host, whose CPU is not
# emulated. See pkg/ipvs/internal/ipvsbench for what is measured.
#
#   scripts/bench-ipvs.sh [-services 10000] [-reals 4] [-rounds 2] [-changes 20]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO="${GO:-go}"
mkdir -p bin
"$GO" build -o bin/ipvsbench ./pkg/ipvs/internal/ipvsbench
echo "== host ($(nproc) CPUs): the YAML part of a reload"
bin/ipvsbench -parse-only "$@"
echo "== VM (Debian kernel under qemu TCG, $(nproc) vCPUs): kernel work"
exec scripts/vm/run.sh --mem 2048 --timeout 1200 -- bin/ipvsbench "$@"
