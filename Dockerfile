# syntax=docker/dockerfile:1
#
# hermes-s6 on a pinned s6-overlay, with the real gateway: hermes-agent
# 0.19.0 from PyPI in /opt/hermes/.venv (upstream's path), run as upstream
# runs it (`hermes gateway run --replace`, `hermes -p P …`). The same install
# is what `make test` supervises end to end (tools/venv.sh).
#
# NOT BUILT: it was written on a machine without a Docker engine. The steps it
# relies on (make install into a DESTDIR, the cont-init.d hooks, the nested
# s6-svscan as the hermes user) are the ones `make test` runs on real s6.
#
#   docker build -t hermes-s6 .
#   docker run -d --name hermes -v hermes-data:/opt/data --stop-timeout 30 hermes-s6
#   docker exec -u hermes hermes hermes-s6 start default --wait   # returns when ready
#   docker exec -u hermes hermes hermes-s6 status
#
# s6-overlay 3.2.1.0 ships s6 2.13.2.0 (43-byte supervise/status) and keeps the
# `user` bundle in /etc/s6-overlay/s6-rc.d, where `make install` puts it. Before
# moving to >= 3.2.3.2, read docs/install.md ("user bundles moved").
ARG S6_OVERLAY_VERSION=3.2.1.0
ARG HERMES_AGENT_VERSION=0.19.0

# Multi-arch: `docker buildx build --platform linux/amd64,linux/arm64 .`
# TARGETARCH (amd64, arm64) picks the musl target and the s6-overlay tarball;
# the build stage runs on the builder's own platform and cross-links the
# static binary with rust-lld (.cargo/config.toml), no emulation needed.

# ---- build: static musl binary and filled-in scripts under /out -------------
FROM --platform=$BUILDPLATFORM rust:1.95 AS build
ARG TARGETARCH
WORKDIR /src
COPY Cargo.toml Cargo.lock Makefile ./
COPY .cargo/ .cargo/
COPY src/ src/
COPY execline/ execline/
COPY cont-init.d/ cont-init.d/
# The stable toolchain as released; `make` installs nothing (no apt-get).
RUN case "$TARGETARCH" in amd64) a=x86_64 ;; arm64) a=aarch64 ;; *) echo "unsupported $TARGETARCH" >&2; exit 1 ;; esac \
 && rustup target add "$a-unknown-linux-musl" \
 && make install ARCH="$a" DESTDIR=/out PREFIX=/usr/local SHEBANGDIR=/command SERVICE_STYLE=s6-rc

# ---- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim
ARG S6_OVERLAY_VERSION
ARG HERMES_AGENT_VERSION
ARG TARGETARCH

RUN apt-get update \
 && apt-get install -y --no-install-recommends xz-utils python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

# The gateway, with its `messaging` extra (Telegram, Discord, the API server).
RUN python3 -m venv /opt/hermes/.venv \
 && /opt/hermes/.venv/bin/python -m pip install --no-cache-dir \
      "hermes-agent[messaging]==${HERMES_AGENT_VERSION}"

# The published .sha256 files catch a corrupt download. For protection against
# a tampered release, pin the hashes themselves (ADD --checksum=sha256:...).
ADD https://github.com/just-containers/s6-overlay/releases/download/v${S6_OVERLAY_VERSION}/s6-overlay-noarch.tar.xz /tmp/
ADD https://github.com/just-containers/s6-overlay/releases/download/v${S6_OVERLAY_VERSION}/s6-overlay-noarch.tar.xz.sha256 /tmp/
ADD https://github.com/just-containers/s6-overlay/releases/download/v${S6_OVERLAY_VERSION}/s6-overlay-x86_64.tar.xz /tmp/
ADD https://github.com/just-containers/s6-overlay/releases/download/v${S6_OVERLAY_VERSION}/s6-overlay-x86_64.tar.xz.sha256 /tmp/
ADD https://github.com/just-containers/s6-overlay/releases/download/v${S6_OVERLAY_VERSION}/s6-overlay-aarch64.tar.xz /tmp/
ADD https://github.com/just-containers/s6-overlay/releases/download/v${S6_OVERLAY_VERSION}/s6-overlay-aarch64.tar.xz.sha256 /tmp/
RUN case "$TARGETARCH" in amd64) a=x86_64 ;; arm64) a=aarch64 ;; *) echo "unsupported $TARGETARCH" >&2; exit 1 ;; esac \
 && cd /tmp \
 && sha256sum -c s6-overlay-noarch.tar.xz.sha256 "s6-overlay-$a.tar.xz.sha256" \
 && tar -C / -Jxpf s6-overlay-noarch.tar.xz \
 && tar -C / -Jxpf "s6-overlay-$a.tar.xz" \
 && rm -f s6-overlay-*

# The unprivileged account and its data volume. USER stays root: s6-overlay
# and the one root cont-init.d step need it, and everything else drops to
# hermes. The names are resolved at boot, so a stage-2 uid remap works.
RUN groupadd -g 10000 hermes \
 && useradd -u 10000 -g hermes -d /opt/data -M -s /usr/sbin/nologin hermes \
 && install -d -o hermes -g hermes -m 0755 /opt/data

COPY --from=build /out/ /

# A cont-init.d failure (e.g. the scan directory cannot be prepared) stops
# the container rather than booting it without supervised gateways.
# /usr/local/bin first: its `hermes` is hermes-s6's front of upstream's CLI
# (docs/install.md), which chain-loads HERMES_S6_HERMES.
ENV HERMES_HOME=/opt/data \
    PATH="/usr/local/bin:/opt/hermes/.venv/bin:${PATH}" \
    HERMES_S6_HERMES=/opt/hermes/.venv/bin/hermes \
    S6_BEHAVIOUR_IF_STAGE2_FAILS=2
VOLUME ["/opt/data"]
# Healthy when every gateway meant to run is ready here or held by a live
# gateway in another container sharing the volume (SPEC §8): reads files,
# spawns nothing per profile. The start period covers the gateway's own
# 1.5-5 s startup.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/hermes-s6", "health"]
ENTRYPOINT ["/init"]
