#!/usr/bin/env bash
# Builds every fuzz target (stable Rust: no sanitizer) and runs each for N seconds
# (default 5), seeded with payloads of ../shared/pcaps when present. A crash fails.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-5}
cargo fuzz build -s none >/dev/null
scripts_dir=$(cd .. && pwd)/scripts
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3; "$PY" "$scripts_dir/fuzz_seeds.py" corpus >/dev/null 2>&1 || echo "fuzz: no seeds from ../shared/pcaps (continuing with empty corpora)"
# The config targets start from the shipped examples.
mkdir -p corpus/policy corpus/agent_config
cp ../deploy/examples/policy*.toml corpus/policy/ 2>/dev/null || true
cp ../deploy/examples/agent*.toml corpus/agent_config/ 2>/dev/null || true
for t in $(cargo fuzz list); do
  mkdir -p "corpus/$t"
  echo "fuzz: $t (${secs}s)"
  cargo fuzz run -s none "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=0 >"target/fuzz-$t.log" 2>&1 || {
    echo "fuzz: $t FAILED"; tail -40 "target/fuzz-$t.log"; exit 1; }
done
