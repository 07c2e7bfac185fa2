# mcinit — quick start: `make demo` and `make test` on a fresh Debian/Ubuntu.
SHELL := /bin/bash
GO ?= go
export MCINIT_CACHE ?= $(HOME)/.cache/mcinit
OUT ?= out
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME ?= 30s

# Debian packages the tests and the demo need (interop peers and QEMU).
DEB_PACKAGES := qemu-system-x86 qemu-system-arm swtpm swtpm-tools tpm2-tools \
	cryptsetup-bin cpio device-tree-compiler gdisk erofs-utils squashfs-tools \
	busybox-static kmod e2fsprogs openssl dmidecode zstd lz4 gcc libssl-dev \
	time dmsetup debootstrap \
	ovmf qemu-efi-aarch64 systemd-boot-efi systemd sbsigntool osslsigncode mtools dosfstools \
	nix-bin

.PHONY: all deps build test unit lint e2e demo fuzz bench initramfs clean

all: build

# deps installs what is missing (apt-get as root, sudo otherwise).
deps:
	@scripts/deps.sh $(DEB_PACKAGES)

# DEVICE_ARCHS: architectures whose device payload (the initramfs /init)
# `make build` puts in out/device beside out/mcinit, so that `mcinit
# initramfs` packs images without the source tree or a Go toolchain.
DEVICE_ARCHS ?= amd64,arm64

build:
	$(GO) build ./...
	$(GO) build -o $(OUT)/mcinit ./cmds/mcinit
	@xdg=$$(mktemp -d) && trap 'rm -rf "$$xdg"' EXIT && \
		XDG_CACHE_HOME=$$xdg GOCACHE=$$($(GO) env GOCACHE) $(GO) run ./cmds/mkdevice -arch $(DEVICE_ARCHS) -o $(OUT)/device

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# unit runs every package's tests, fuzz seed corpora included (go test runs
# testdata/fuzz/* as regular cases).
unit:
	$(GO) test -count=1 -timeout 30m ./...

e2e: build
	MCINIT_E2E=1 $(GO) test -count=1 -p 1 -parallel 2 -timeout 75m -v ./e2e/...

# CI=true makes a test that misses a tool fail instead of skip
# (internal/testenv); MCINIT_E2E=1 (e2e) does the same, and e2e fails when
# no QEMU boot ran.
test: export CI = true
test: deps lint unit e2e

demo: deps
	$(GO) run ./e2e/demo

initramfs: build
	OUT=$(OUT) scripts/initramfs.sh $${ARCH:-amd64}

fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

bench: deps build
	@scripts/bench.sh

clean:
	rm -rf $(OUT)
