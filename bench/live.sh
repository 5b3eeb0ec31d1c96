#!/usr/bin/env bash
# bench/live.sh [--file PCAP] [--rates "R1 R2 ..."] [--seconds S]
#
# Live-capture benchmark (needs root). Builds two network namespaces of its own joined
# by a veth pair (MTU 1600 both ends, IPv6 off, IPv4 addresses from 198.18.0.0/15),
# then, for each rate, replays the capture with tcpreplay from the sending namespace
# at that rate (bounded in packets and time) while one capturer listens on the veth end
# of the receiving namespace:
#   ours     infrawatch-agent run --config <generated agent.toml> --summary-json F,
#            stopped with SIGTERM (by its PID) once tcpreplay is done; captured = the
#            summary's `packets`;
#   tcpdump  tcpdump -i <veth> -w /dev/null, stopped with SIGTERM; captured = its
#            "packets captured", with its "dropped by kernel" line beside.
# The two never run at the same time. Reports per rate: packets sent (tcpreplay's
# successful packets), the rate tcpreplay achieved, captured and lost % (sent -
# captured) of each, then the first rate at which each loses more than 0.1 %.
# When this build of the agent has no live capture yet, ours is skipped (said so
# clearly) and the tcpdump side still runs.
# No traffic leaves the script's namespaces: the interfaces exist only inside them.
# The namespaces (and any capturer left) are removed on exit, error or interrupt.
#
#   --file PCAP     what to replay (default target/bench/small64.pcap, generated with
#                   ../shared/bench/gen_small.py if missing; the mix works too)
#   --rates "..."   packets/s to try, ascending (default "50000 100000 200000 400000
#                   800000 1600000")
#   --seconds S     length of each step (default 2): packets = rate x S, at most 20 M
#
# Output: a table on stdout, target/bench/live/live.json, logs in target/bench/live/.
# Exit status: 0 done, 1 tool error or not root, 2 bad usage.
# Environment: TCPDUMP_BUFFER_KIB (tcpdump -B; default: tcpdump's own, 2 MiB).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

FILE=""
RATES="50000 100000 200000 400000 800000 1600000"
SECONDS_PER_STEP=2
while [ $# -gt 0 ]; do
  case "$1" in
    --file) [ $# -ge 2 ] || { echo "live.sh: --file needs a path" >&2; exit 2; }; FILE=$2; shift ;;
    --rates) [ $# -ge 2 ] || { echo "live.sh: --rates needs a list" >&2; exit 2; }; RATES=$2; shift ;;
    --seconds) [ $# -ge 2 ] || { echo "live.sh: --seconds needs a number" >&2; exit 2; }; SECONDS_PER_STEP=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "live.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$SECONDS_PER_STEP" in
  ''|*[!0-9]*|0) echo "live.sh: --seconds wants a whole number from 1 to 60" >&2; exit 2 ;;
esac
[ "$SECONDS_PER_STEP" -le 60 ] || { echo "live.sh: --seconds wants a whole number from 1 to 60" >&2; exit 2; }
read -r -a RATE_LIST <<<"$RATES"
if [ ${#RATE_LIST[@]} -lt 1 ] || [ ${#RATE_LIST[@]} -gt 20 ]; then
  echo "live.sh: --rates wants 1 to 20 rates" >&2; exit 2
fi
for r in "${RATE_LIST[@]}"; do
  case "$r" in
    ''|*[!0-9]*|0) echo "live.sh: rate '$r' is not a positive whole number of packets/s" >&2; exit 2 ;;
  esac
  [ "$r" -le 20000000 ] || { echo "live.sh: rate $r is above 20 M packets/s" >&2; exit 2; }
done

if [ "$(id -u)" -ne 0 ]; then
  echo "live.sh: needs root (network namespaces, veth, packet sockets); run it as root" >&2
  exit 1
fi

OUT=target/bench
LIVE=$OUT/live
PY=/usr/bin/python3
AGENT=target/release/infrawatch-agent
missing=()
for t in ip:iproute2 tcpreplay:tcpreplay tcpdump:tcpdump timeout:coreutils cargo:rustup; do
  command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t%%:*} (Debian package ${t#*:})")
done
[ -x "$PY" ] || missing+=("$PY (Debian package python3)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'live.sh: missing tool: %s\n' "${missing[@]}" >&2
  echo "live.sh: run scripts/setup-test-deps.sh (as root) to install them" >&2
  exit 1
fi

# ---- names, cleanup -----------------------------------------------------------------
TAG="iwb$$"                  # unique per run; interface names stay within 15 characters
NS_TX="$TAG-tx"
NS_RX="$TAG-rx"
IF_TX="${TAG}t"
IF_RX="${TAG}r"
ADDR_TX=198.18.255.249/30     # RFC 2544 benchmarking range only
ADDR_RX=198.18.255.250/30
PIDS=()                      # capturers this script started and has not reaped yet

stop_pid() { # pid: SIGTERM, wait up to 15 s, then SIGKILL; only our own children
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "live.sh: process $pid did not stop within 15 s of SIGTERM: SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

forget_pid() { # pid: drop it from PIDS once reaped
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  ip netns del "$NS_TX" 2>/dev/null || true
  ip netns del "$NS_RX" 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo "live.sh: interrupted" >&2; exit 130' INT TERM

mkdir -p "$LIVE"

# ---- capture file, agent ------------------------------------------------------------
if [ -z "$FILE" ]; then
  FILE=$OUT/small64.pcap
  if [ ! -s "$FILE" ]; then
    echo "live.sh: generating $FILE with ../shared/bench/gen_small.py (about 20 s)"
    "$PY" ../shared/bench/gen_small.py --out "$FILE.partial" >"$LIVE/gen.log" 2>&1 || {
      rm -f -- "$FILE.partial"
      echo "live.sh: gen_small.py failed; see $LIVE/gen.log" >&2
      exit 1
    }
    mv -f -- "$FILE.partial" "$FILE"
  fi
fi
[ -r "$FILE" ] || { echo "live.sh: cannot read $FILE" >&2; exit 2; }
FILE_ABS=$(cd "$(dirname "$FILE")" && pwd)/$(basename "$FILE")
FILE_BYTES=$(stat -c %s "$FILE")

echo "live.sh: building the agent (cargo build --release --locked -p infrawatch-agent)"
cargo build --release --locked -p infrawatch-agent

# ---- namespaces ---------------------------------------------------------------------
echo "live.sh: namespaces $NS_TX ($IF_TX) -> $NS_RX ($IF_RX), MTU 1600, IPv6 off"
ip netns add "$NS_TX"
ip netns add "$NS_RX"
for ns in "$NS_TX" "$NS_RX"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  # the receiving side must stay silent: no ARP answers to the replayed requests
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=8
done
# created directly inside the namespaces: the pair never exists in the host's namespace
ip link add "$IF_TX" netns "$NS_TX" mtu 1600 type veth peer name "$IF_RX" netns "$NS_RX" mtu 1600
ip -n "$NS_TX" addr add "$ADDR_TX" dev "$IF_TX"
ip -n "$NS_RX" addr add "$ADDR_RX" dev "$IF_RX"
ip -n "$NS_TX" link set lo up
ip -n "$NS_RX" link set lo up
ip -n "$NS_TX" link set "$IF_TX" up
ip -n "$NS_RX" link set "$IF_RX" up

STATE_DIR=$ROOT/$LIVE/state
mkdir -p "$STATE_DIR"
CONFIG=$LIVE/agent.toml
cat >"$CONFIG" <<EOF
# generated by bench/live.sh
[agent]
id = "bench-live"
state_dir = "$STATE_DIR"

[capture]
interfaces = ["$IF_RX"]
EOF

# ---- one step -----------------------------------------------------------------------
# replay RATE COUNT LOGPREFIX: tcpreplay from the sending namespace; sets SENT, ACHIEVED.
replay() {
  local rate=$1 count=$2 log=$3 rc=0 bound multi preload=()
  bound=$((count * 4 / rate + 30))
  # small files go to RAM first, so reading the file does not limit the rate
  if [ "$FILE_BYTES" -lt $((512 << 20)) ]; then preload=(--preload-pcap); fi
  # at high rates tcpreplay's per-packet timing is the limit: send bursts of `multi`
  # packets per interval (1 up to 100k pps, 16 at 1.6 M pps, at most 32)
  multi=$((rate / 100000))
  if [ "$multi" -lt 1 ]; then multi=1; elif [ "$multi" -gt 32 ]; then multi=32; fi
  timeout -k 5 "$bound" ip netns exec "$NS_TX" tcpreplay --intf1="$IF_TX" --pps="$rate" \
    --pps-multi="$multi" --limit="$count" --loop=1000 "${preload[@]}" "$FILE_ABS" \
    >"$log.tcpreplay" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "live.sh: tcpreplay failed (status $rc) at $rate pps; see $log.tcpreplay" >&2
    exit 1
  fi
  SENT=$(sed -n 's/^[[:space:]]*Successful packets:[[:space:]]*\([0-9]*\).*/\1/p' "$log.tcpreplay" | tail -n 1)
  ACHIEVED=$(sed -n 's/^[[:space:]]*Rated:.*[[:space:]]\([0-9.]*\) pps.*/\1/p' "$log.tcpreplay" | tail -n 1)
  [ -n "$SENT" ] || { echo "live.sh: no 'Successful packets' in $log.tcpreplay" >&2; exit 1; }
  ACHIEVED=${ACHIEVED:-0}
}

wait_for_line() { # file, fixed string, seconds, pid: 0 found, 1 process gone, 2 timed out
  local file=$1 text=$2 secs=$3 pid=$4 i
  for ((i = 0; i < secs * 10; i++)); do
    grep -qF -- "$text" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 2
}

OURS_AVAILABLE=1
OURS_SKIP_REASON=""

# step_ours RATE COUNT LOG: sets OURS_CAPTURED (empty when skipped)
step_ours() {
  local rate=$1 count=$2 log=$3 pid st=0 rc=0
  OURS_CAPTURED=""
  [ "$OURS_AVAILABLE" -eq 1 ] || return 0
  rm -f -- "$log.summary.json"
  ip netns exec "$NS_RX" "$AGENT" run --config "$CONFIG" --summary-json "$log.summary.json" \
    >"$log.agent" 2>&1 </dev/null &
  pid=$!
  PIDS+=("$pid")
  wait_for_line "$log.agent" "infrawatch-agent running" 15 "$pid" || st=$?
  if [ "$st" -ne 0 ]; then
    if [ "$st" -eq 1 ]; then wait "$pid" || rc=$?; else stop_pid "$pid"; wait "$pid" || rc=$?; fi
    forget_pid "$pid"
    if grep -q "live capture is not built" "$log.agent"; then
      OURS_AVAILABLE=0
      OURS_SKIP_REASON=$(grep -m1 -o "live capture is not built[^\"]*" "$log.agent")
      echo "live.sh: ours SKIPPED: infrawatch-agent run says \"$OURS_SKIP_REASON\"; only tcpdump is measured"
      return 0
    fi
    echo "live.sh: infrawatch-agent run did not start (status $rc); see $log.agent" >&2
    exit 1
  fi
  sleep 0.5
  replay "$rate" "$count" "$log"
  sleep 1 # let the capture drain before asking it to stop
  stop_pid "$pid"
  wait "$pid" || rc=$?
  forget_pid "$pid"
  if [ "$rc" -ne 0 ] || [ ! -s "$log.summary.json" ]; then
    echo "live.sh: infrawatch-agent run ended with status $rc without a summary; see $log.agent" >&2
    exit 1
  fi
  OURS_CAPTURED=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "$log.summary.json")
  OURS_SENT=$SENT
  OURS_ACHIEVED=$ACHIEVED
}

# step_tcpdump RATE COUNT LOG: sets TD_CAPTURED, TD_DROPPED, TD_RECEIVED
step_tcpdump() {
  local rate=$1 count=$2 log=$3 pid st=0 rc=0 buf=()
  [ -n "${TCPDUMP_BUFFER_KIB:-}" ] && buf=(-B "$TCPDUMP_BUFFER_KIB")
  ip netns exec "$NS_RX" tcpdump -i "$IF_RX" "${buf[@]}" -w /dev/null >"$log.tcpdump" 2>&1 </dev/null &
  pid=$!
  PIDS+=("$pid")
  wait_for_line "$log.tcpdump" "listening on" 15 "$pid" || st=$?
  if [ "$st" -ne 0 ]; then
    stop_pid "$pid"
    echo "live.sh: tcpdump did not start; see $log.tcpdump" >&2
    exit 1
  fi
  sleep 0.5
  replay "$rate" "$count" "$log"
  sleep 1
  stop_pid "$pid"
  wait "$pid" || rc=$?
  forget_pid "$pid"
  TD_CAPTURED=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured.*/\1/p' "$log.tcpdump" | tail -n 1)
  TD_RECEIVED=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter.*/\1/p' "$log.tcpdump" | tail -n 1)
  TD_DROPPED=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$log.tcpdump" | tail -n 1)
  if [ -z "$TD_CAPTURED" ] || [ -z "$TD_DROPPED" ]; then
    echo "live.sh: tcpdump (status $rc) printed no statistics; see $log.tcpdump" >&2
    exit 1
  fi
  TD_SENT=$SENT
  TD_ACHIEVED=$ACHIEVED
}

# ---- the steps ----------------------------------------------------------------------
RESULTS=$LIVE/results.tsv
printf 'rate\tcount\tours_sent\tours_achieved\tours_captured\ttd_sent\ttd_achieved\ttd_captured\ttd_received\ttd_dropped\n' >"$RESULTS"
for rate in "${RATE_LIST[@]}"; do
  count=$((rate * SECONDS_PER_STEP))
  [ "$count" -le 20000000 ] || count=20000000
  log=$LIVE/step-$rate
  echo "live.sh: $rate pps, $count packets: ours, then tcpdump"
  OURS_SENT="" OURS_ACHIEVED=""
  step_ours "$rate" "$count" "$log"
  step_tcpdump "$rate" "$count" "$log"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rate" "$count" "$OURS_SENT" "$OURS_ACHIEVED" \
    "$OURS_CAPTURED" "$TD_SENT" "$TD_ACHIEVED" "$TD_CAPTURED" "$TD_RECEIVED" "$TD_DROPPED" >>"$RESULTS"
done

"$PY" - "$RESULTS" "$LIVE/live.json" "$FILE" "$OURS_AVAILABLE" "$OURS_SKIP_REASON" <<'PY'
import json, sys
tsv, out, path, ours_ok, reason = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5]
rows = []
with open(tsv) as f:
    head = f.readline().rstrip("\n").split("\t")
    for line in f:
        rows.append(dict(zip(head, line.rstrip("\n").split("\t"))))

def num(v):
    return int(float(v)) if v not in ("", None) else None

def lost(sent, got):
    if sent is None or got is None or sent == 0:
        return None
    return max(sent - got, 0) / sent * 100

steps = []
for r in rows:
    s = {"rate_pps": num(r["rate"]), "packets": num(r["count"])}
    s["ours"] = None if not ours_ok else {
        "sent": num(r["ours_sent"]), "achieved_pps": num(r["ours_achieved"]),
        "captured": num(r["ours_captured"]), "lost_percent": lost(num(r["ours_sent"]), num(r["ours_captured"]))}
    s["tcpdump"] = {
        "sent": num(r["td_sent"]), "achieved_pps": num(r["td_achieved"]), "captured": num(r["td_captured"]),
        "received_by_filter": num(r["td_received"]), "dropped_by_kernel": num(r["td_dropped"]),
        "lost_percent": lost(num(r["td_sent"]), num(r["td_captured"]))}
    steps.append(s)

def first_drop(key):
    for s in steps:
        d = s[key]
        if d and d["lost_percent"] is not None and d["lost_percent"] > 0.1:
            return s["rate_pps"]
    return None

def pct(v):
    return "-" if v is None else "%.2f" % v

print()
print("live capture, %s replayed by tcpreplay through a veth pair" % path)
hdr = "%10s | %10s %10s %10s %8s | %10s %10s %10s %10s %8s" % (
    "rate pps", "sent", "achieved", "ours", "lost %", "sent", "achieved", "tcpdump", "kern drop", "lost %")
print(hdr)
print("-" * len(hdr))
for s in steps:
    o, t = s["ours"], s["tcpdump"]
    print("%10d | %10s %10s %10s %8s | %10s %10s %10s %10s %8s" % (
        s["rate_pps"],
        o["sent"] if o else "-", o["achieved_pps"] if o else "-", o["captured"] if o else "skipped",
        pct(o["lost_percent"]) if o else "-",
        t["sent"], t["achieved_pps"], t["captured"], t["dropped_by_kernel"], pct(t["lost_percent"])))
print()
fo, ft = first_drop("ours"), first_drop("tcpdump")
top = steps[-1]["rate_pps"] if steps else 0
if ours_ok:
    print("ours:    first loss > 0.1 %% at %s" % ("%d pps" % fo if fo else "none up to %d pps" % top))
else:
    print("ours:    SKIPPED, %s (this build of the agent cannot capture live)" % (reason or "live capture unavailable"))
print("tcpdump: first loss > 0.1 %% at %s" % ("%d pps" % ft if ft else "none up to %d pps" % top))
limited = [s["rate_pps"] for s in steps
           if any(d and d["achieved_pps"] is not None and d["achieved_pps"] < 0.9 * s["rate_pps"]
                  for d in (s["ours"], s["tcpdump"]))]
print("('achieved' is the rate tcpreplay reached; where it is below the rate asked, the sender")
print(" is the limit, not the capturer)")
if limited:
    print("note: sender-limited (achieved < 90 %% of the rate asked) at %s pps: a higher step does not"
          % ", ".join(str(r) for r in limited))
    print("      load the capturer more; the first-loss rate can only be read below that")
json.dump({"file": path, "ours_available": ours_ok, "ours_skip_reason": reason or None,
           "sender_limited_pps": limited,
           "first_loss_pps": {"ours": fo, "tcpdump": ft}, "steps": steps}, open(out, "w"), indent=2)
print("JSON in %s" % out)
PY
