# lbd — build, test, benchmark and demo.
#
# `make demo` and `make test` are the two commands of the README; both install
# what they need (Debian packages via apt-get) through `make deps`.

GO      ?= go
BIN     := bin
GOFLAGS ?=

.PHONY: all build deps test unit integration vmtest bench bench-kvs bench-acl \
        bench-vrrp bench-ipvs bench-rest bench-cluster bench-cluster-state demo lint fmt clean deb

all: build

build:
	$(GO) build -o $(BIN)/lbd ./cmd/lbd
	$(GO) build -o $(BIN)/lbctl ./cmd/lbctl

deps:
	./scripts/deps.sh

# Unit tests, then tests on this kernel with real packets between network
# namespaces (root, tag "integration": the unit tests run again with them),
# then the IPVS tests inside a VM.
test: deps lint integration vmtest

unit:
	$(GO) test -count=1 ./...

integration: deps build
	$(GO) test -count=1 -tags integration ./...

# Tests that need kernel IPVS (tag "vm", named TestVM*) run as root inside a VM
# that boots Debian's stock kernel; see scripts/vmtest.sh.
vmtest: deps build
	./scripts/vmtest.sh

# A Debian package of lbd and lbctl (dpkg-deb, no network): bin/lbd_*.deb.
deb:
	./scripts/build-deb.sh bin

bench: bench-kvs bench-acl bench-vrrp bench-ipvs

bench-kvs: deps build
	./scripts/bench-kvs.sh

bench-cluster: deps build
	./scripts/bench-cluster.sh

bench-acl: deps build
	./scripts/bench-acl.sh

bench-vrrp: deps build
	./scripts/bench-vrrp.sh

bench-ipvs: deps build
	./scripts/bench-ipvs.sh

bench-cluster-state: deps build
	./scripts/bench-cluster-state.sh

bench-rest: deps build
	./scripts/bench-rest.sh

demo: deps build
	./scripts/demo.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) vet -tags vm ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
