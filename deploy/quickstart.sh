#!/usr/bin/env bash
# deploy/quickstart.sh — infrawatch end to end on one machine, in a minute.
#
#   deploy/quickstart.sh                     the sample ICS captures of ../shared/pcaps
#   deploy/quickstart.sh FILE.pcap...        your own pcap/pcapng files
#   deploy/quickstart.sh --interface IF      live capture on IF (root: CAP_NET_RAW)
#
# Options (before the files):
#   --policy FILE    judge with this policy.toml (default: the no-policy mode, which
#                    still reports scans, floods, ARP spoofing and PLC stops/downloads)
#   --dir DIR        where configs, certificates, state and logs go
#                    (default: target/quickstart in this checkout)
#   --ports I,M,P    collector ingest, collector metrics, Prometheus (default
#                    19700,19701,19090: beside, not on, the ports of a real install)
#   --no-prometheus  do not install or start Prometheus
#
# What it does: builds the agent and collector (release, once), installs what is
# missing (openssl, prometheus; as root or with sudo), makes a throwaway site CA and
# certificates (deploy/pki.sh), starts a collector (mutual TLS), an agent reporting to
# it every 2 s, and a Prometheus scraping the collector with the shipped alert rules —
# all on 127.0.0.1 — waits until the agent's numbers are in, prints where to look, and
# runs until Ctrl-C (or SIGTERM), which stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DIR=$ROOT/target/quickstart
PORTS=19700,19701,19090
POLICY=""
IFACE=""
PROM=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --ports) PORTS=$2; shift 2 ;;
    --policy) POLICY=$(realpath "$2"); shift 2 ;;
    --interface) IFACE=$2; shift 2 ;;
    --no-prometheus) PROM=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) echo "quickstart: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
IFS=, read -r INGEST_PORT METRICS_PORT PROM_PORT <<<"$PORTS"
for p in "$INGEST_PORT" "$METRICS_PORT" "$PROM_PORT"; do
  [[ "$p" =~ ^[0-9]+$ ]] || { echo "quickstart: --ports wants three port numbers, e.g. 19700,19701,19090" >&2; exit 2; }
done
say() { printf 'quickstart: %s\n' "$*" >&2; }

# What the host needs.
if ! command -v cargo >/dev/null; then
  say "Rust is not installed. On Debian: apt-get install -y cargo (1.95 or later), or see https://rustup.rs"
  exit 1
fi
need=()
command -v cc >/dev/null || need+=(build-essential)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
[ "$PROM" = 1 ] && ! command -v prometheus >/dev/null && need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "need root (or sudo) to install: ${need[*]}"; exit 1; }
    SUDO=sudo
  fi
  say "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

say "building the agent and the collector (release)…"
# One binary per build, as scripts/package.sh and bench/ do: built together, the
# collector's tokio features would be unified into a second, different agent build.
cargo build --release --locked -p infrawatch-agent >&2
cargo build --release --locked -p infrawatch-collector >&2
TARGET=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
BIN=${TARGET:-$ROOT/target}/release

# What the agent captures.
if [ -z "$IFACE" ] && [ $# -eq 0 ]; then
  samples=$ROOT/../shared/pcaps
  [ -d "$samples" ] || { say "no sample captures at $samples: give capture files, or --interface IF"; exit 1; }
  set -- "$samples"/modbus/icsnpp_modbus_example.pcap "$samples"/dnp3/iti_dnp3_cold_restart.pcap \
         "$samples"/iec104/iti_iec104_diverse_commands.pcap "$samples"/s7comm/iti_snap7_s300_plc_stop.pcap \
         "$samples"/scans/ndpi_tcp_scan.pcap
fi
if [ -n "$IFACE" ]; then
  capture="interfaces = [\"$IFACE\"]"
else
  files=""
  for f in "$@"; do
    [ -r "$f" ] || { say "cannot read $f"; exit 1; }
    files+="${files:+, }\"$(realpath "$f")\""
  done
  capture="pcap = [$files]
pace = \"max\"
at_end = \"stay\""
fi

# A fresh directory for this run: configs, a throwaway CA, state, logs.
rm -rf "$DIR"
mkdir -p "$DIR"
DIR=$(realpath "$DIR")
umask 077
for step in "ca" "collector localhost 127.0.0.1" "agent quickstart"; do
  # shellcheck disable=SC2086 # the step's words are separate arguments
  deploy/pki.sh --dir "$DIR/pki" $step >/dev/null
done
cat >"$DIR/collector.toml" <<TOML
[ingest]
listen = "127.0.0.1:$INGEST_PORT"
ca = "$DIR/pki/ca.pem"
cert = "$DIR/pki/localhost.pem"
key = "$DIR/pki/localhost.key"
[metrics]
listen = "127.0.0.1:$METRICS_PORT"
[agents]
stale_after = "30s"
[storage]
state_dir = "$DIR/collector-state"
TOML
cat >"$DIR/agent.toml" <<TOML
[agent]
id = "quickstart"
state_dir = "$DIR/agent-state"
${POLICY:+policy = \"$POLICY\"}
[capture]
$capture
[report]
collectors = ["https://localhost:$INGEST_PORT"]
interval = "2s"
ca = "$DIR/pki/ca.pem"
cert = "$DIR/pki/quickstart.pem"
key = "$DIR/pki/quickstart.key"
TOML
"$BIN/infrawatch-collector" check --config "$DIR/collector.toml" >&2
"$BIN/infrawatch-agent" check --config "$DIR/agent.toml" >&2

# Everything started here is stopped on exit, by PID.
pids=()
stop_all() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  say "stopped; configs, state and logs stay in $DIR"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

"$BIN/infrawatch-collector" run --config "$DIR/collector.toml" >"$DIR/collector.log" 2>&1 &
pids+=($!)
"$BIN/infrawatch-agent" run --config "$DIR/agent.toml" >"$DIR/agent.log" 2>&1 &
pids+=($!)
if [ "$PROM" = 1 ]; then
  cat >"$DIR/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - "$ROOT/deploy/prometheus/infrawatch.rules.yml"
scrape_configs:
  - job_name: infrawatch
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
YAML
  prometheus --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$DIR/prometheus.log" 2>&1 &
  pids+=($!)
fi

METRICS=http://127.0.0.1:$METRICS_PORT
say "waiting for the agent's first report…"
for _ in $(seq 1 120); do
  if curl -sf "$METRICS/metrics" 2>/dev/null | grep -q '^infrawatch_agent_up{agent="quickstart"} 1'; then
    ready=1; break
  fi
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { say "a process ended early; see the logs in $DIR"; tail -n 5 "$DIR"/*.log >&2; exit 1; }
  done
  sleep 0.5
done
[ "${ready:-0}" = 1 ] || { say "no report after 60 s; see $DIR/agent.log and $DIR/collector.log"; exit 1; }

cat <<EOF
infrawatch is running (agent "quickstart" → collector, all on 127.0.0.1):
  metrics:    $METRICS/metrics
  events:     $METRICS/api/v1/events
  assets:     $METRICS/api/v1/assets?format=csv
  agents:     $METRICS/api/v1/agents
EOF
if [ "$PROM" = 1 ]; then
  cat <<EOF
  Prometheus: http://127.0.0.1:$PROM_PORT/alerts  (try the query: infrawatch_anomalies_total > 0)
EOF
fi
cat <<EOF
  configs, certificates, state and logs: $DIR
Ctrl-C stops everything.
EOF
while :; do
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { say "process $p ended; see the logs in $DIR"; exit 1; }
  done
  sleep 1
done
