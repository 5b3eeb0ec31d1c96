#!/usr/bin/env bash
# Builds the Debian packages infrawatch-agent and infrawatch-collector from the release
# build: `cargo build --release` of each binary (nothing is rebuilt when it is fresh),
# then `cargo deb --no-build` per package, which only packs (metadata:
# [package.metadata.deb] in agent/Cargo.toml and collector/Cargo.toml; maintainer
# scripts and sysusers files in deploy/debian/, units in deploy/systemd/).
# Prints the paths of the two .deb files (target/debian/*.deb); the debug symbols are
# in target/debian/*-dbgsym_*.ddeb beside them.
#   scripts/package.sh           quick compression (about 5 s a package, 10 % larger)
#   scripts/package.sh --small   xz's best (about 25 s a package here): for a release
# Needs cargo-deb (scripts/setup-test-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

compression=(--fast)
case "${1:-}" in
  "") ;;
  --small) compression=() ;;
  *) echo "usage: scripts/package.sh [--small]" >&2; exit 2 ;;
esac

if ! cargo deb --version >/dev/null 2>&1; then
  echo "package: cargo-deb is missing; run scripts/setup-test-deps.sh (or: cargo install --locked cargo-deb)" >&2
  exit 1
fi

# One package per build, not `-p infrawatch-agent -p infrawatch-collector`: built together,
# the collector's tokio features (net, rt-multi-thread, io-util) would be unified into the
# agent's build, which then differs from the `cargo build --release --locked -p
# infrawatch-agent` of bench/ and deploy/quickstart.sh and is built again. Built alone,
# the agent we package is the agent the benchmark measured, built once.
cargo build --release --locked -p infrawatch-agent
cargo build --release --locked -p infrawatch-collector

debs=()
for pkg in infrawatch-agent infrawatch-collector; do
  # --no-build: pack the binary built above. cargo-deb prints the .deb's path last.
  deb=$(cargo deb --locked --no-build "${compression[@]}" -p "$pkg" | tail -n 1)
  [ -f "$deb" ] || { echo "package: cargo deb -p $pkg made no .deb ($deb)" >&2; exit 1; }
  debs+=("$deb")
done
printf '%s\n' "${debs[@]}"
