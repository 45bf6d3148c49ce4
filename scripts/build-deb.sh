#!/usr/bin/env bash
# Builds the Debian package of lbd and lbctl with dpkg-deb (no debhelper, no
# network): OUTDIR/lbd_VERSION_ARCH.deb, OUTDIR defaulting to bin/. Prints
# the package's path. Used by `make deb` and by packaging's test.
#
# Contents: /usr/sbin/lbd and lbctl, the systemd unit, /etc/lbd/lbd.yaml
# and /etc/default/lbd (conffiles), /var/lib/lbd, lbd(8) and lbctl(8)
# generated from the commands' own help, bash and zsh completion, and the
# maintainer scripts of packaging/deb.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bin}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

arch="$(dpkg --print-architecture)"
if git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  version="0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d.%H%M%S)+$(git rev-parse --short=10 HEAD)"
  date="$(git log -1 --format=%cd --date=format:%Y-%m-%d)"
else
  version="0.0~dev"
  date="$(date -u +%Y-%m-%d)"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pkg="$work/lbd"

install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/sbin" "$pkg/usr/lib/systemd/system" \
  "$pkg/etc/lbd" "$pkg/etc/default" "$pkg/usr/share/man/man8" "$pkg/usr/share/doc/lbd" \
  "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions"
install -d -m 0700 "$pkg/var/lib/lbd"

# The same build as `make build`, so that the build cache serves both.
go build -o "$pkg/usr/sbin/lbd" ./cmd/lbd
go build -o "$pkg/usr/sbin/lbctl" ./cmd/lbctl

go run ./internal/manpage/mangen -lbd "$pkg/usr/sbin/lbd" -lbctl "$pkg/usr/sbin/lbctl" \
  -out "$work" -date "$date" -version "$version"
for page in lbd.8 lbctl.8; do
  gzip -9n -c "$work/$page" > "$pkg/usr/share/man/man8/$page.gz"
done
"$pkg/usr/sbin/lbctl" completion bash > "$pkg/usr/share/bash-completion/completions/lbctl"
"$pkg/usr/sbin/lbctl" completion zsh > "$pkg/usr/share/zsh/vendor-completions/_lbctl"

install -m 0644 packaging/lbd.service "$pkg/usr/lib/systemd/system/lbd.service"
install -m 0644 packaging/lbd.yaml "$pkg/etc/lbd/lbd.yaml"
install -m 0644 packaging/lbd.default "$pkg/etc/default/lbd"
install -m 0644 README.md "$pkg/usr/share/doc/lbd/README.md"

# The binaries use cgo (the durable store's zstd): depend on the newest
# glibc symbol version they reference.
libc="libc6"
if command -v objdump >/dev/null; then
  glibc="$(objdump -T "$pkg/usr/sbin/lbd" "$pkg/usr/sbin/lbctl" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1 | cut -d_ -f2)"
  [ -n "$glibc" ] && libc="libc6 (>= $glibc)"
fi
size="$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@LIBC@/$libc/" \
  packaging/deb/control.in > "$pkg/DEBIAN/control"
install -m 0644 packaging/deb/conffiles "$pkg/DEBIAN/conffiles"
for s in postinst prerm postrm; do
  install -m 0755 "packaging/deb/$s" "$pkg/DEBIAN/$s"
done

deb="$out/lbd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
