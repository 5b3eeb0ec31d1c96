#!/usr/bin/env bash
# Builds the Debian packages infrawatch-agent and infrawatch-collector from one release
# build: `cargo build --release` of both binaries (nothing is rebuilt when the release
# build is fresh), then `cargo deb --no-build` per package, which only packs (metadata:
# [package.metadata.deb] in agent/Cargo.toml and collector/Cargo.toml; maintainer
# scripts and sysusers files in deploy/debian/, units in deploy/systemd/).
# Prints the paths of the two .deb files (target/debian/*.deb).
# Needs cargo-deb (scripts/setup-test-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "package: cargo-deb is missing; run scripts/setup-test-deps.sh (or: cargo install --locked cargo-deb)" >&2
  exit 1
fi

cargo build --release --locked -p infrawatch-agent -p infrawatch-collector

debs=()
for pkg in infrawatch-agent infrawatch-collector; do
  # --no-build: pack the binary built above. cargo-deb prints the .deb's path last.
  deb=$(cargo deb --locked --no-build -p "$pkg" | tail -n 1)
  [ -f "$deb" ] || { echo "package: cargo deb -p $pkg made no .deb ($deb)" >&2; exit 1; }
  debs+=("$deb")
done
printf '%s\n' "${debs[@]}"
