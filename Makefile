# hermes-s6 — build, test, install. `make help` lists the targets.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
DESTDIR    ?=
SHEBANGDIR ?= /command
SERVICE_STYLE ?= s6-rc
# Where the `hermes` front goes (a link to hermes-s6, SPEC §8): it must come
# before upstream's CLI on PATH. Empty: not installed.
FRONTDIR ?= $(BINDIR)
# Where the s6-rc `user` bundle lives: s6-rc.d/user up to s6-overlay 3.2.3.1;
# from 3.2.3.2 use USER_BUNDLE=user-bundles.d/user (s6-overlay ignores
# user-bundles.d entirely once s6-rc.d/user exists).
USER_BUNDLE ?= s6-rc.d/user
# with-contenv exists only under s6-overlay (/command); elsewhere the
# scripts do without it.
WITH_CONTENV ?= $(if $(filter /command,$(SHEBANGDIR)),$(SHEBANGDIR)/with-contenv,)

# The default build is the stable toolchain as released: nothing unstable,
# and RUSTFLAGS left to the packager. Cargo.toml's release profile: opt-level
# z, LTO, one codegen unit, panic=abort, stripped.
#   ARCH=aarch64   the arm64 binary (linked by rust-lld: .cargo/config.toml)
#   STRIP=0        keep the debug symbols (and add full debug info)
#   `make small`   the opt-in size build, below
ARCH    ?= x86_64
TARGET  := $(ARCH)-unknown-linux-musl
STRIP   ?= 1
ifeq ($(STRIP),0)
BUILD_ENV := CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=true
endif
BIN     := target/$(TARGET)/release/hermes-s6
# The real gateway for the tests, demo and bench: hermes-agent from PyPI in a
# venv outside the repository, readable by the container's hermes (uid 10000).
HERMES_AGENT_VERSION ?= 0.19.0
HERMES_VENV ?= /opt/hermes-agent-$(HERMES_AGENT_VERSION)
export HERMES_AGENT_VERSION HERMES_VENV
CARGO   ?= cargo

SMALL_DIR := target/small
SMALL   := $(SMALL_DIR)/$(TARGET)/release/hermes-s6

.PHONY: all deps venv build small test test-unit test-e2e test-aarch64 test-s6-versions demo install bench stress clean help

all: build

help:
	@echo "make            build $(BIN) (static, musl; stable toolchain; ARCH=aarch64, STRIP=0)"
	@echo "make small      opt-in smaller build (std rebuilt without its backtrace symbolizer) -> $(SMALL)"
	@echo "make deps       install what building and testing need (apt, rustup): the README's commands run it"
	@echo "make test       every test: unit, real-s6 integration, container end-to-end"
	@echo "make demo       boot the test container, show gateways surviving a restart"
	@echo "make bench      benchmarks (docs/PERFORMANCE.md)"
	@echo "make install DESTDIR= PREFIX= SHEBANGDIR= SERVICE_STYLE=s6-rc|services.d FRONTDIR="

# Install what a fresh Debian machine lacks (or say exactly what to run).
deps:
	@sh tools/deps.sh

# hermes-agent $(HERMES_AGENT_VERSION) into $(HERMES_VENV) (cached; tools/venv.sh).
venv:
	@sh tools/venv.sh

# cargo decides what is stale; make always asks it. Installs nothing: a
# missing target is an error that names `make deps`.
build:
	@rustup target list --installed 2>/dev/null | grep -qx $(TARGET) || \
	  ! command -v rustup >/dev/null || { echo "make: the $(TARGET) target is missing: run make deps" >&2; exit 1; }
	HERMES_S6_SHEBANGDIR=$(SHEBANGDIR) $(BUILD_ENV) $(CARGO) build --release --locked --target $(TARGET)

# The size opt-in: std rebuilt from rust-src (`make deps` adds it) with
# -Zbuild-std on the stable toolchain (RUSTC_BOOTSTRAP=1, which is what makes
# it an opt-in), and without std's `backtrace` feature, whose symbolizer is
# most of the binary's size even with panic=abort. Panics still print their
# message. Its own target dir, so it never mixes with the default build.
small:
	HERMES_S6_SHEBANGDIR=$(SHEBANGDIR) RUSTC_BOOTSTRAP=1 $(CARGO) build --release --locked \
	  --target $(TARGET) --target-dir $(SMALL_DIR) -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size

# Every test: the README's test command. Installs what it needs first.
test: deps venv build
	$(CARGO) test --locked -- --test-threads=4
	@if [ -x /usr/bin/qemu-aarch64-static ]; then $(MAKE) --no-print-directory test-aarch64; \
	 else echo "make test: SKIPPED the aarch64 tests: no qemu-user-static (make deps installs it)"; fi
	bash tools/test-s6-versions.sh
	bash tools/check-deploy.sh
	bash tests/e2e/run-all.sh

# The live s6 tests again on s6 2.13 (Debian trixie) and 2.15 (sid), each
# mounted over /usr in a namespace of its own (tools/s6-versions.sh).
test-s6-versions:
	bash tools/test-s6-versions.sh

# The arm64 build's unit and integration tests under qemu-user.
test-aarch64:
	bash tools/test-aarch64.sh

test-unit:
	$(CARGO) test --locked --lib

test-e2e: deps venv build
	bash tests/e2e/run-all.sh

# The real gateway when the venv can be had; the demo says when it cannot.
demo: deps build
	-@sh tools/venv.sh
	bash tests/demo.sh

bench: deps venv build
	bash bench/run.sh

stress: deps build
	bash tests/stress.sh

# Fill @SHEBANGDIR@/@WITH_CONTENV@/@BINDIR@ in an installed script.
define fill
	sed -e 's|@SHEBANGDIR@|$(SHEBANGDIR)|g' \
	    -e 's|@WITH_CONTENV@|$(if $(WITH_CONTENV),$(WITH_CONTENV)\n,)|g' \
	    -e 's|@BINDIR@|$(BINDIR)|g' $(1) > $(2) && chmod 0755 $(2)
endef

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)/etc/cont-init.d
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/hermes-s6
ifneq ($(FRONTDIR),)
	install -d $(DESTDIR)$(FRONTDIR)
	ln -sfn $(BINDIR)/hermes-s6 $(DESTDIR)$(FRONTDIR)/hermes
endif
	$(call fill,cont-init.d/50-hermes-scandir,$(DESTDIR)/etc/cont-init.d/50-hermes-scandir)
	$(call fill,cont-init.d/60-hermes-reconcile,$(DESTDIR)/etc/cont-init.d/60-hermes-reconcile)
ifeq ($(SERVICE_STYLE),services.d)
	install -d $(DESTDIR)/etc/services.d/hermes-svscan
	$(call fill,execline/hermes-svscan-run,$(DESTDIR)/etc/services.d/hermes-svscan/run)
else ifeq ($(SERVICE_STYLE),s6-rc)
	install -d $(DESTDIR)/etc/s6-overlay/s6-rc.d/hermes-svscan/dependencies.d \
	           $(DESTDIR)/etc/s6-overlay/$(USER_BUNDLE)/contents.d
	$(call fill,execline/hermes-svscan-run,$(DESTDIR)/etc/s6-overlay/s6-rc.d/hermes-svscan/run)
	echo longrun > $(DESTDIR)/etc/s6-overlay/s6-rc.d/hermes-svscan/type
	: > $(DESTDIR)/etc/s6-overlay/s6-rc.d/hermes-svscan/dependencies.d/base
	: > $(DESTDIR)/etc/s6-overlay/$(USER_BUNDLE)/contents.d/hermes-svscan
else
	@echo "SERVICE_STYLE must be s6-rc or services.d" >&2; exit 100
endif

clean:
	$(CARGO) clean
