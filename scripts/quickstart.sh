#!/usr/bin/env bash
# Quick start: build the agent and show what it sees.
#   scripts/quickstart.sh                  replay the sample ICS captures of ../shared/pcaps
#   scripts/quickstart.sh FILE.pcap...     replay your own capture files
#   scripts/quickstart.sh --interface IF   capture live on IF until Ctrl-C (needs root or CAP_NET_RAW)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "quickstart: Rust is not installed. On Debian: apt-get install -y cargo (1.95 or later), or see https://rustup.rs" >&2
  exit 1
fi
if ! command -v cc >/dev/null; then
  echo "quickstart: installing a C compiler (build-essential)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq build-essential >/dev/null
fi
echo "quickstart: building the agent (release)…" >&2
cargo build --release --locked -p infrawatch-agent >&2
AGENT=target/release/infrawatch-agent

if [ "${1:-}" = "--interface" ]; then
  IF=${2:?usage: quickstart.sh --interface IF}
  dir=$(mktemp -d target/quickstart.XXXXXX)
  cat >"$dir/agent.toml" <<TOML
[agent]
id = "quickstart"
state_dir = "$PWD/$dir/state"
[capture]
interfaces = ["$IF"]
TOML
  echo "quickstart: capturing on $IF; Ctrl-C to stop and print the summary" >&2
  "$AGENT" check --config "$dir/agent.toml"
  "$AGENT" run --config "$dir/agent.toml" --summary-json "$dir/summary.json" || true
  echo "quickstart: summary of the capture ($dir/summary.json):" >&2
  exec cat "$dir/summary.json"
fi

if [ $# -eq 0 ]; then
  samples=../shared/pcaps
  [ -d "$samples" ] || { echo "quickstart: give capture files, or --interface IF" >&2; exit 1; }
  set -- "$samples"/modbus/icsnpp_modbus_example.pcap "$samples"/dnp3/icsnpp_dnp3_example.pcap \
         "$samples"/iec104/iti_iec104_diverse_commands.pcap "$samples"/s7comm/iti_s7comm_read_write_var.pcap \
         "$samples"/s7comm/iti_snap7_s300_plc_stop.pcap
fi
exec "$AGENT" replay "$@"
