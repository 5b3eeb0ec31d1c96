#!/usr/bin/env bash
# bench/collector.sh [--smoke] [--agents N] [--series S] [--rounds R] [--interval SECS]
#
# Collector scale benchmark (issue 5): N simulated agents x S series reporting into one
# infrawatch-collector, beside the Prometheus Pushgateway (Debian
# prometheus-pushgateway) holding the same series, in the same run.
#
# Builds once (release; debug with --smoke: the collector and the load generator,
# collector/examples/load.rs), then starts both servers pinned to core 1 (taskset -c 1):
#   collector    infrawatch-collector run, config and state in a temp dir, plain HTTP
#                ingest ([ingest] insecure = true: the mTLS cost is not measured here);
#   pushgateway  prometheus-pushgateway --persistence.file= (memory only)
#                --push.disable-consistency-check (see "Pushgateway flags" in
#                bench/README.md; PGW_CONSISTENCY_CHECK=1 keeps its default check).
# The load generator runs on core 0 and loads one server at a time, in three phases,
# each sending the same bodies to both (gzip'd JSON reports to the collector, gzip'd
# text-format PUTs to /metrics/job/infrawatch/agent/<id> on the Pushgateway):
#   first   round 1, back to back (4 requests in flight): every agent is new;
#   paced   R rounds, one every SECS, the agents spread over the interval (the agent's
#           [report] interval; SECS = 0: back to back);
#   burst   one more round, back to back: the ingest rate of known agents.
# Per server and phase: CPU seconds the server used (utime + stime from /proc/PID/stat)
# per report, and the wall time of the rounds. Then 5 scrapes of /metrics each
# uncompressed and with Accept-Encoding: gzip (median time, size, CPU per scrape), the
# series exposed (sample lines) and the agent series among them, which must be the same
# N x S series with the same values on both; peak and steady RSS (VmHWM, VmRSS).
#
#   --smoke          20 agents x 50 series, 1 round per phase, back to back: a few
#                    seconds; proves the tools work and both hold the same series
#                    (figures mean nothing). This is what the CI gate runs.
#   --agents N       default 1000      --series S   default 500
#   --rounds R       default 3         --interval SECS   default 10
#
# Output: a table on stdout, target/bench/collector/collector.json (collector_smoke.json
# with --smoke), logs beside it. Exit status: 0 done (targets are reported, never
# enforced), 1 a tool failed or the two servers do not hold the same series, 2 bad
# usage. Every process started is killed by its PID on exit.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

SMOKE=0
AGENTS=1000
SERIES=500
ROUNDS=3
INTERVAL=10
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --agents) [ $# -ge 2 ] || { echo "collector.sh: --agents needs a number" >&2; exit 2; }; AGENTS=$2; shift ;;
    --series) [ $# -ge 2 ] || { echo "collector.sh: --series needs a number" >&2; exit 2; }; SERIES=$2; shift ;;
    --rounds) [ $# -ge 2 ] || { echo "collector.sh: --rounds needs a number" >&2; exit 2; }; ROUNDS=$2; shift ;;
    --interval) [ $# -ge 2 ] || { echo "collector.sh: --interval needs a number" >&2; exit 2; }; INTERVAL=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "collector.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$SMOKE" = 1 ]; then
  AGENTS=20; SERIES=50; ROUNDS=1; INTERVAL=0
fi
for v in AGENTS SERIES ROUNDS INTERVAL; do
  case "${!v}" in
    ''|*[!0-9]*) echo "collector.sh: --${v,,} wants a whole number" >&2; exit 2 ;;
  esac
done
[ "$AGENTS" -ge 1 ] && [ "$AGENTS" -le 10000 ] || { echo "collector.sh: --agents: 1 to 10000" >&2; exit 2; }
[ "$SERIES" -ge 1 ] && [ "$SERIES" -le 5000 ] || { echo "collector.sh: --series: 1 to 5000" >&2; exit 2; }
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] || { echo "collector.sh: --rounds: 1 to 20" >&2; exit 2; }
[ "$INTERVAL" -le 120 ] || { echo "collector.sh: --interval: 0 to 120" >&2; exit 2; }

PY=/usr/bin/python3
missing=()
for t in prometheus-pushgateway:prometheus-pushgateway taskset:util-linux curl:curl cargo:rustup; do
  command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t%%:*} (Debian package ${t#*:})")
done
[ -x "$PY" ] || missing+=("$PY (Debian package python3)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "collector.sh: missing: ${missing[*]}; scripts/setup-test-deps.sh installs them" >&2
  exit 1
fi

OUT=target/bench/collector
mkdir -p "$OUT"
NAME=collector; [ "$SMOKE" = 1 ] && NAME=collector_smoke
JSON=$OUT/$NAME.json
LOGS=$OUT/$NAME-logs
rm -rf "$LOGS"; mkdir -p "$LOGS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/infrawatch-bench-collector.XXXXXX")

# Servers on core 1, the generator on core 0; one core: both on it (said in the JSON).
CORES=$(nproc)
if [ "$CORES" -ge 2 ]; then SERVER_CPU=1; LOAD_CPU=0; else SERVER_CPU=0; LOAD_CPU=0; fi

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "collector.sh: interrupted" >&2; exit 130' INT TERM

# The smoke run takes the debug build (`cargo test` in the gate has built it already);
# the full run the release build.
if [ "$SMOKE" = 1 ]; then
  echo "collector.sh: building (debug) the collector and the load generator" >&2
  cargo build --locked -q -p infrawatch-collector --bin infrawatch-collector --example load
  BUILD=target/debug
else
  echo "collector.sh: building (release) the collector and the load generator" >&2
  cargo build --release --locked -q -p infrawatch-collector --bin infrawatch-collector --example load
  BUILD=target/release
fi
COLLECTOR=$BUILD/infrawatch-collector
LOAD=$BUILD/examples/load

# ---- start both servers ------------------------------------------------------------
cat >"$TMP/collector.toml" <<EOF
[ingest]
listen = "127.0.0.1:0"
insecure = true

[metrics]
listen = "127.0.0.1:0"

[agents]
max_agents = $((AGENTS + 10))
max_series_per_agent = $((SERIES + 10))

[storage]
state_dir = "$TMP/collector-state"
EOF
INFRAWATCH_LOG=warn,infrawatch_collector=info taskset -c "$SERVER_CPU" "$COLLECTOR" run --config "$TMP/collector.toml" \
  >"$LOGS/collector.out" 2>"$LOGS/collector.log" &
CPID=$!
PIDS+=("$CPID")

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
PGW_PORT=$(free_port)
PGW_FLAGS=(--web.listen-address="127.0.0.1:$PGW_PORT" --persistence.file= --log.level=warn)
[ "${PGW_CONSISTENCY_CHECK:-0}" = 1 ] || PGW_FLAGS+=(--push.disable-consistency-check)
taskset -c "$SERVER_CPU" prometheus-pushgateway "${PGW_FLAGS[@]}" >"$LOGS/pushgateway.out" 2>"$LOGS/pushgateway.log" &
PPID_=$!
PIDS+=("$PPID_")

# Wait (bounded) for the collector's addresses in its log and for both to answer.
INGEST="" METRICS=""
for _ in $(seq 100); do
  kill -0 "$CPID" 2>/dev/null || { echo "collector.sh: the collector exited; see $LOGS/collector.log" >&2; cat "$LOGS/collector.log" >&2; exit 1; }
  INGEST=$(sed -n 's/.*ingest listening on \([0-9.:]*\).*/\1/p' "$LOGS/collector.log" | head -1)
  METRICS=$(sed -n 's/.*metrics listening on \([0-9.:]*\).*/\1/p' "$LOGS/collector.log" | head -1)
  [ -n "$INGEST" ] && [ -n "$METRICS" ] && break
  sleep 0.1
done
[ -n "$INGEST" ] && [ -n "$METRICS" ] || { echo "collector.sh: the collector did not start listening in 10 s" >&2; exit 1; }
PGW=127.0.0.1:$PGW_PORT
for _ in $(seq 100); do
  kill -0 "$PPID_" 2>/dev/null || { echo "collector.sh: the Pushgateway exited; see $LOGS/pushgateway.log" >&2; cat "$LOGS/pushgateway.log" >&2; exit 1; }
  curl -sf -o /dev/null --max-time 2 "http://$PGW/-/ready" && break
  sleep 0.1
done
curl -sf -o /dev/null --max-time 2 "http://$PGW/-/ready" || { echo "collector.sh: the Pushgateway is not ready after 10 s" >&2; exit 1; }
curl -sf -o /dev/null --max-time 2 "http://$METRICS/readyz" || { echo "collector.sh: the collector is not ready" >&2; exit 1; }

TCK=$(getconf CLK_TCK)
# utime + stime (clock ticks) of a process: fields 14 and 15 of /proc/PID/stat, counted
# after the command name (which may hold spaces) and its parenthesis.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

MEAS=$LOGS/measures.tsv
printf 'server\tkey\tvalue\n' >"$MEAS"
m() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$MEAS"; }
m host cores "$CORES"
m host loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
m host server_cpu "$SERVER_CPU"
m host load_cpu "$LOAD_CPU"
m host clk_tck "$TCK"
m host pgw_consistency_check "${PGW_CONSISTENCY_CHECK:-0}"
m host pgw_version "$(prometheus-pushgateway --version 2>&1 | head -1)"
m host collector_version "$("$COLLECTOR" --version 2>&1 | head -1)"

# phase SERVER PID TARGET URL NAME FIRST_ROUND ROUNDS INTERVAL
phase() {
  local server=$1 pid=$2 target=$3 url=$4 name=$5 first=$6 rounds=$7 interval=$8 before after rc=0
  before=$(cpu_ticks "$pid")
  taskset -c "$LOAD_CPU" "$LOAD" --target "$target" --url "$url" --agents "$AGENTS" --series "$SERIES" \
    --first-round "$first" --clock "$CLOCK" --rounds "$rounds" --interval "$interval" --max-seconds 1800 \
    >"$LOGS/load-$server-$name.json" 2>"$LOGS/load-$server-$name.err" || rc=$?
  after=$(cpu_ticks "$pid")
  m "$server" "phase_${name}_cpu_ticks" "$((after - before))"
  m "$server" "phase_${name}_rc" "$rc"
  if [ "$rc" != 0 ]; then
    echo "collector.sh: load on $server ($name) failed (exit $rc); see $LOGS/load-$server-$name.{json,err}" >&2
    cat "$LOGS/load-$server-$name.err" "$LOGS/load-$server-$name.json" >&2 || true
  fi
}

scrapes() {
  local server=$1 pid=$2 url=$3 before after i
  # One untimed scrape first (the body the series are counted on).
  curl -s --max-time 120 -o "$LOGS/scrape-$server.txt" "$url" || { m "$server" scrape_error 1; return; }
  for mode in plain gzip; do
    local hdr=()
    [ "$mode" = gzip ] && hdr=(-H "Accept-Encoding: gzip")
    before=$(cpu_ticks "$pid")
    for i in 1 2 3 4 5; do
      curl -s --max-time 120 "${hdr[@]}" -D "$LOGS/scrape-$server-$mode.head" -o /dev/null \
        -w '%{time_total} %{size_download} %{http_code}\n' "$url" >>"$LOGS/scrape-$server-$mode.times"
    done
    after=$(cpu_ticks "$pid")
    m "$server" "scrape_${mode}_cpu_ticks_5" "$((after - before))"
    m "$server" "scrape_${mode}_content_encoding" \
      "$(tr -d '\r' <"$LOGS/scrape-$server-$mode.head" | awk -F': ' 'tolower($1) == "content-encoding" {print $2}')"
  done
}

N_PACED=$ROUNDS
CLOCK=$(date +%s)   # one clock for both targets: the same timestamps in their gauges
for server in collector pushgateway; do
  if [ "$server" = collector ]; then pid=$CPID url=http://$INGEST; else pid=$PPID_ url=http://$PGW; fi
  echo "collector.sh: loading the $server ($AGENTS agents x $SERIES series)" >&2
  phase "$server" "$pid" "$server" "$url" first 1 1 0
  phase "$server" "$pid" "$server" "$url" paced 2 "$N_PACED" "$INTERVAL"
  phase "$server" "$pid" "$server" "$url" burst $((2 + N_PACED)) 1 0
done
sleep 1
for server in collector pushgateway; do
  if [ "$server" = collector ]; then pid=$CPID url=http://$METRICS/metrics; else pid=$PPID_ url=http://$PGW/metrics; fi
  echo "collector.sh: scraping the $server" >&2
  scrapes "$server" "$pid" "$url"
done
sleep 2
for server in collector pushgateway; do
  if [ "$server" = collector ]; then pid=$CPID; else pid=$PPID_; fi
  m "$server" vmhwm_kib "$(status_kib "$pid" VmHWM)"
  m "$server" vmrss_kib "$(status_kib "$pid" VmRSS)"
  m "$server" threads "$(status_kib "$pid" Threads)"
done
m host loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$MEAS" "$LOGS" "$JSON" "$SMOKE" "$AGENTS" "$SERIES" "$ROUNDS" "$INTERVAL" <<'PY'
import json, os, re, statistics, sys

meas, logs, out, smoke, agents, series, rounds, interval = sys.argv[1:]
smoke = smoke == "1"
agents, series, rounds, interval = int(agents), int(series), int(rounds), int(interval)
M = {}
with open(meas) as f:
    next(f)
    for line in f:
        s, k, v = line.rstrip("\n").split("\t", 2)
        M.setdefault(s, {})[k] = v
host = M["host"]
tck = int(host["clk_tck"])
errors = []

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

def agent_series(server, path):
    """Sample lines; the agent series among them as {(name, labels): value}."""
    samples, series = 0, {}
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except OSError:
        return None, None
    with f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            samples += 1
            m = LINE.match(line.rstrip("\n"))
            if not m or not m.group(1).startswith("infrawatch_"):
                continue
            name = m.group(1)
            if server == "collector" and (name.startswith("infrawatch_collector_") or name in (
                    "infrawatch_agent_up", "infrawatch_agent_last_report_timestamp_seconds")):
                continue
            labels = tuple(sorted((k, v) for k, v in LABEL.findall(m.group(2) or "")
                                  if not (server == "pushgateway" and k in ("job", "instance"))))
            series[(name, labels)] = float(m.group(3))
    return samples, series

report = {"mode": "smoke" if smoke else "full", "agents": agents, "series_per_agent": series,
          "paced_rounds": rounds, "interval_s": interval,
          "host": {"cores": int(host["cores"]), "server_cpu": int(host["server_cpu"]),
                   "load_cpu": int(host["load_cpu"]), "loadavg_start": host["loadavg_start"],
                   "loadavg_end": host["loadavg_end"]},
          "versions": {"collector": host["collector_version"], "pushgateway": host["pgw_version"]},
          "pushgateway_consistency_check": host["pgw_consistency_check"] == "1",
          "servers": {}, "targets": []}
held = {}
for server in ("collector", "pushgateway"):
    s = M.get(server, {})
    r = {"phases": {}}
    for ph in ("first", "paced", "burst"):
        try:
            j = json.load(open(os.path.join(logs, "load-%s-%s.json" % (server, ph))))
        except (OSError, ValueError):
            j = None
        rc = s.get("phase_%s_rc" % ph)
        if rc != "0" or j is None:
            errors.append("%s: load phase %s failed (exit %s)" % (server, ph, rc))
        ticks = int(s.get("phase_%s_cpu_ticks" % ph, "0"))
        reports = j["reports"] if j else None
        r["phases"][ph] = {
            "reports": reports, "failed": j["failed"] if j else None,
            "cpu_s": ticks / tck,
            "cpu_ms_per_report": (ticks / tck * 1000 / reports) if reports else None,
            "round_wall_s": j["round_wall_s"] if j else None,
            "reports_per_s": (reports / sum(j["round_wall_s"])) if j and sum(j["round_wall_s"]) else None,
            "latency_ms_mean": j["latency_ms_mean"] if j else None,
            "latency_ms_max": j["latency_ms_max"] if j else None,
            "body_bytes_per_report": j["body_bytes_per_report"] if j else None,
        }
    for mode in ("plain", "gzip"):
        times, sizes = [], []
        try:
            for line in open(os.path.join(logs, "scrape-%s-%s.times" % (server, mode))):
                t, size, code = line.split()
                if code != "200":
                    errors.append("%s: /metrics (%s) answered %s" % (server, mode, code))
                times.append(float(t)); sizes.append(int(size))
        except (OSError, ValueError):
            errors.append("%s: no /metrics timings (%s)" % (server, mode))
        ticks = int(s.get("scrape_%s_cpu_ticks_5" % mode, "0"))
        r["scrape_" + mode] = {
            "median_s": statistics.median(times) if times else None,
            "times_s": times, "bytes": sizes[-1] if sizes else None,
            "content_encoding": s.get("scrape_%s_content_encoding" % mode) or None,
            "cpu_ms_per_scrape": ticks / tck * 1000 / 5,
        }
    samples, ser = agent_series(server, os.path.join(logs, "scrape-%s.txt" % server))
    r["samples_exposed"] = samples
    r["agent_series"] = len(ser) if ser is not None else None
    held[server] = ser
    r["vmhwm_mb"] = int(s.get("vmhwm_kib", "0")) / 1024
    r["vmrss_mb"] = int(s.get("vmrss_kib", "0")) / 1024
    r["threads"] = int(s.get("threads", "0"))
    report["servers"][server] = r

c, p = held.get("collector"), held.get("pushgateway")
want = agents * series
same = None
if c is None or p is None:
    errors.append("a scrape failed: cannot compare the series")
else:
    if len(c) != want:
        errors.append("the collector exposes %d agent series, expected %d" % (len(c), want))
    if len(p) != want:
        errors.append("the Pushgateway exposes %d agent series, expected %d" % (len(p), want))
    diff_keys = set(c) ^ set(p)
    diff_vals = [k for k in set(c) & set(p) if c[k] != p[k] and not (c[k] != c[k] and p[k] != p[k])]
    same = not diff_keys and not diff_vals
    if not same:
        ex = sorted(diff_keys)[:3] or sorted(diff_vals)[:3]
        errors.append("the two servers differ: %d series in one only, %d values differ (e.g. %s)"
                      % (len(diff_keys), len(diff_vals), ex))
report["same_series_and_values"] = same

C, P = report["servers"]["collector"], report["servers"]["pushgateway"]
def ratio(a, b):
    return a / b if (a is not None and b) else None
def target(name, value, op, limit, unit="x"):
    if value is None:
        verdict = "n/a"
    elif smoke:
        verdict = "info"
    else:
        verdict = "PASS" if (value >= limit if op == ">=" else value <= limit) else "FAIL"
    report["targets"].append({"name": name, "value": value, "op": op, "limit": limit,
                              "unit": unit, "verdict": verdict})
for ph in ("paced", "burst", "first"):
    target("ingest CPU/report, %s: Pushgateway / collector" % ph,
           ratio(P["phases"][ph]["cpu_ms_per_report"], C["phases"][ph]["cpu_ms_per_report"]), ">=", 3)
target("scrape time, plain: Pushgateway / collector",
       ratio(P["scrape_plain"]["median_s"], C["scrape_plain"]["median_s"]), ">=", 3)
target("scrape time, gzip: Pushgateway / collector",
       ratio(P["scrape_gzip"]["median_s"], C["scrape_gzip"]["median_s"]), ">=", 3)
target("steady RSS: collector / Pushgateway", ratio(C["vmrss_mb"], P["vmrss_mb"]), "<=", 1)
target("peak RSS: collector / Pushgateway", ratio(C["vmhwm_mb"], P["vmhwm_mb"]), "<=", 1)
report["errors"] = errors

def f(v, spec):
    return "-" if v is None else spec % v
print()
print("== %d agents x %d series (%d series), servers on core %d, generator on core %d%s ==" % (
    agents, series, want, report["host"]["server_cpu"], report["host"]["load_cpu"],
    "; SMOKE: figures mean nothing" if smoke else ""))
print("load average: %s at start, %s at end" % (host["loadavg_start"], host["loadavg_end"]))
print("Pushgateway: %s, consistency check %s" % (host["pgw_version"],
      "on (its default)" if report["pushgateway_consistency_check"] else "off (--push.disable-consistency-check)"))
print()
hdr = "%-44s %14s %14s" % ("", "collector", "Pushgateway")
print(hdr); print("-" * len(hdr))
def row(label, key, spec):
    print("%-44s %14s %14s" % (label, f(key(C), spec), f(key(P), spec)))
for ph, what in (("first", "first round (new agents), back to back"),
                 ("paced", "%d round(s) every %d s" % (rounds, interval)),
                 ("burst", "one round back to back (known agents)")):
    print(what + ":")
    row("  CPU ms per report", lambda s: s["phases"][ph]["cpu_ms_per_report"], "%.3f")
    row("  wall s of the round(s)", lambda s: sum(s["phases"][ph]["round_wall_s"] or [0]), "%.2f")
    row("  reports/s", lambda s: s["phases"][ph]["reports_per_s"], "%.0f")
    row("  latency ms, mean", lambda s: s["phases"][ph]["latency_ms_mean"], "%.2f")
    row("  latency ms, max", lambda s: s["phases"][ph]["latency_ms_max"], "%.1f")
    row("  request body bytes (gzip)", lambda s: s["phases"][ph]["body_bytes_per_report"], "%.0f")
print("/metrics (median of 5):")
row("  scrape s, uncompressed", lambda s: s["scrape_plain"]["median_s"], "%.3f")
row("  bytes, uncompressed", lambda s: s["scrape_plain"]["bytes"], "%d")
row("  server CPU ms per scrape, uncompressed", lambda s: s["scrape_plain"]["cpu_ms_per_scrape"], "%.0f")
row("  scrape s, Accept-Encoding: gzip", lambda s: s["scrape_gzip"]["median_s"], "%.3f")
row("  bytes, gzip", lambda s: s["scrape_gzip"]["bytes"], "%d")
row("  Content-Encoding answered", lambda s: s["scrape_gzip"]["content_encoding"] or "none", "%s")
row("  server CPU ms per scrape, gzip", lambda s: s["scrape_gzip"]["cpu_ms_per_scrape"], "%.0f")
row("  sample lines exposed", lambda s: s["samples_exposed"], "%d")
row("  agent series exposed", lambda s: s["agent_series"], "%d")
print("memory:")
row("  peak RSS MB (VmHWM)", lambda s: s["vmhwm_mb"], "%.1f")
row("  steady RSS MB (VmRSS, after the scrapes)", lambda s: s["vmrss_mb"], "%.1f")
print()
print("same agent series and values on both: %s" % {True: "yes", False: "NO", None: "unknown"}[same])
print("targets%s:" % (" (smoke: not judged)" if smoke else ""))
for t in report["targets"]:
    print("  %-52s %8s   target %s %g%s   %s" % (t["name"], f(t["value"], "%.2f") + t["unit"], t["op"],
                                                t["limit"], t["unit"], t["verdict"]))
with open(out, "w") as fh:
    json.dump(report, fh, indent=2)
    fh.write("\n")
for e in errors:
    print("ERROR: " + e)
print("Targets are reported, not enforced. JSON in %s" % out)
sys.exit(1 if errors else 0)
PY
