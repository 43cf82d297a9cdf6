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

TARGET  := x86_64-unknown-linux-musl
# STD=rebuilt (default): rebuild std with panic=immediate-abort. std's panic
# hook drags in its backtrace symbolizer (gimli, addr2line, miniz: ~220 KB of
# a ~600 KB binary) even with panic=abort; the only way to drop it on the
# pinned stable toolchain is -Zbuild-std, unlocked with RUSTC_BOOTSTRAP=1
# (needs the rust-src component, which `make deps` adds). hermes-s6 never
# panics on data, so the lost panic message costs nothing.
# STD=prebuilt: the plain stable build (bigger, same behaviour).
STD     ?= rebuilt
ifeq ($(STD),rebuilt)
BUILD_ENV  := RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort"
BUILD_ARGS := -Zbuild-std=std,panic_abort
endif
BIN     := target/$(TARGET)/release/hermes-s6
# The real gateway for the tests, demo and bench: hermes-agent from PyPI in a
# venv outside the repository, readable by the container's hermes (uid 10000).
HERMES_AGENT_VERSION ?= 0.19.0
HERMES_VENV ?= /opt/hermes-agent-$(HERMES_AGENT_VERSION)
export HERMES_AGENT_VERSION HERMES_VENV
CARGO   ?= cargo

.PHONY: all deps venv build $(BIN) test test-unit test-e2e demo install bench stress clean help

all: build

help:
	@echo "make            build $(BIN) (static, musl)"
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

# cargo decides what is stale; make always asks it.
build: deps
	HERMES_S6_SHEBANGDIR=$(SHEBANGDIR) $(BUILD_ENV) $(CARGO) build --release --locked --target $(TARGET) $(BUILD_ARGS)

test: build venv
	$(CARGO) test --locked -- --test-threads=4
	bash tests/e2e/run-all.sh

test-unit: deps
	$(CARGO) test --locked --lib

test-e2e: build venv
	bash tests/e2e/run-all.sh

# The real gateway when the venv can be had; the demo says when it cannot.
demo: build
	-@sh tools/venv.sh
	bash tests/demo.sh

bench: build venv
	bash bench/run.sh

stress: build
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
