#!/usr/bin/env bash
# The test gate: installs what the tests need, then formatting, lints, every test, the
# fuzz targets (built and run briefly) and a benchmark smoke run. `.ci/run` runs exactly
# this. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-test-deps.sh

# Property tests draw the same cases on every run of the gate (a failure reproduces);
# run `cargo test` without it locally to explore new ones.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261126}"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "release build, once (the quick start test, the benchmarks and the packages reuse it)"
# One binary per build: built together, the collector's tokio features would be unified
# into a second, different agent build (see scripts/package.sh).
cargo build --release --locked -p infrawatch-agent
cargo build --release --locked -p infrawatch-collector

step "cargo test"
cargo test --locked --workspace

step "bounded detector memory under a spoofed flood of 10 M sources (slow in debug: ~25 s)"
cargo test --locked -p infrawatch-agent --lib -- --ignored --exact detect::tests::a_spoofed_flood_of_10m_does_not_grow_memory

step "fuzz targets: build, then ${FUZZ_SECONDS:-5} s each"
scripts/fuzz.sh "${FUZZ_SECONDS:-5}"

step "benchmark smoke run"
bench/compare.sh --smoke

step "collector benchmark smoke run (20 agents x 50 series, beside the Pushgateway)"
bench/collector.sh --smoke

step "Debian packages: build, install, check, purge (root; skipped otherwise)"
scripts/package.sh
scripts/check-packages.sh

step "the README's quick start from a fresh clone (last: its release build shares target/)"
cargo test --locked -p infrawatch-tests --test quickstart -- --ignored

step "all checks passed"
