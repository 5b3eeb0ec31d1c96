#!/usr/bin/env bash
# bench/compare.sh [--smoke] [--runs N]
#
# Times `infrawatch-agent replay --no-detect` (and `replay` with the site-independent
# detectors on, tool `ours_detect`, on the mix) against the peer tools (ndpiReader,
# softflowd -r, tshark io,phs) and a bare C loop (bench/c_floor.c: read + 5-tuple flow
# hash) on the captures of ../shared/bench/, all in this one invocation: one untimed
# warm-up run of every tool (page cache, and the run whose output proves each tool read
# the whole file), then N timed rounds, tools interleaved, order rotated each round.
# Reports per file: median wall time, packets/s (file's packet count / median wall),
# median CPU time, peak RSS (GNU time, max over the timed runs), then the ratios against
# the targets of the benchmark issue, PASS/FAIL. The same goes to target/bench/compare.json.
#
#   --smoke    20 000-packet files (*_smoke.pcap), 1 timed run: proves the script and
#              the tools work, in well under a minute once the agent is built.
#   --runs N   timed runs per tool and file (default 5; 1 with --smoke).
#
# Exit status: 0 when every tool ran cleanly over the whole file, 1 on a tool error
# (missing tool, non-zero exit, time-out, a file not read to its end), 2 on bad usage.
# Missed targets are reported, never turned into a failing exit status.
# Environment: BENCH_TIMEOUT (seconds per run; default 60 with --smoke, 1800 otherwise),
# SOFTFLOWD_MAX_FLOWS (softflowd -m, default 262144 = the agent's default max_flows).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

SMOKE=0
RUNS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --runs)
      [ $# -ge 2 ] || { echo "compare.sh: --runs needs a number" >&2; exit 2; }
      RUNS=$2; shift ;;
    --runs=*) RUNS=${1#--runs=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$RUNS" ]; then
  if [ "$SMOKE" -eq 1 ]; then RUNS=1; else RUNS=5; fi
fi
case "$RUNS" in
  ''|*[!0-9]*) echo "compare.sh: --runs wants a whole number from 1 to 50, not '$RUNS'" >&2; exit 2 ;;
esac
if [ "$RUNS" -lt 1 ] || [ "$RUNS" -gt 50 ]; then
  echo "compare.sh: --runs wants a whole number from 1 to 50, not '$RUNS'" >&2; exit 2
fi

OUT=target/bench
GEN=../shared/bench
PY=/usr/bin/python3
AGENT=target/release/infrawatch-agent
SOFTFLOWD_MAX_FLOWS=${SOFTFLOWD_MAX_FLOWS:-262144}
if [ "$SMOKE" -eq 1 ]; then
  MODE=smoke
  TIMEOUT=${BENCH_TIMEOUT:-60}
  GEN_PACKETS=(--packets 20000)
  MIX=$OUT/mix_smoke.pcap
  SMALL=$OUT/small64_smoke.pcap
else
  MODE=full
  TIMEOUT=${BENCH_TIMEOUT:-1800}
  GEN_PACKETS=()
  MIX=$OUT/mix.pcap
  SMALL=$OUT/small64.pcap
fi
RUNDIR=$OUT/runs-$MODE
TSV=$RUNDIR/runs.tsv

# ---- tools --------------------------------------------------------------------------
missing=()
need_tool() { # command, Debian package
  command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package $2)")
}
need_tool cargo "rustup/cargo"
need_tool gcc gcc
need_tool ndpiReader libndpi-bin
need_tool softflowd softflowd
need_tool tshark tshark
need_tool timeout coreutils
[ -x /usr/bin/time ] || missing+=("/usr/bin/time (Debian package time; GNU time, for -v)")
[ -x "$PY" ] || missing+=("$PY (Debian package python3)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'compare.sh: missing tool: %s\n' "${missing[@]}" >&2
  echo "compare.sh: run scripts/setup-test-deps.sh (as root) to install them" >&2
  exit 1
fi
if [ ! -d "$GEN" ]; then
  echo "compare.sh: $GEN (the capture generators) not found beside the repository" >&2
  exit 1
fi

tmpfiles=()
cleanup() {
  local f
  for f in "${tmpfiles[@]}"; do rm -f -- "$f"; done
}
trap cleanup EXIT
trap 'echo "compare.sh: interrupted" >&2; exit 130' INT TERM

mkdir -p "$OUT"

# ---- captures -----------------------------------------------------------------------
gen_capture() { # generator script, output file
  local script=$1 out=$2 tmp
  [ -s "$out" ] && return 0
  if ! "$PY" -c 'import scapy' 2>/dev/null; then
    echo "compare.sh: $PY cannot import scapy (Debian package python3-scapy): run scripts/setup-test-deps.sh" >&2
    exit 1
  fi
  tmp="$out.partial"
  tmpfiles+=("$tmp")
  echo "compare.sh: generating $out (${GEN_PACKETS[*]:-3 M packets}) with $GEN/$script"
  "$PY" "$GEN/$script" "${GEN_PACKETS[@]}" --out "$tmp" >"$OUT/gen-$(basename "$out").log" 2>&1 || {
    echo "compare.sh: $script failed; see $OUT/gen-$(basename "$out").log" >&2
    exit 1
  }
  mv -f -- "$tmp" "$out"
}
gen_capture gen_mix.py "$MIX"
gen_capture gen_small.py "$SMALL"

# ---- builds -------------------------------------------------------------------------
echo "compare.sh: building the agent (cargo build --release --locked -p infrawatch-agent)"
cargo build --release --locked -p infrawatch-agent
echo "compare.sh: building the C floor (gcc -O2 bench/c_floor.c)"
gcc -O2 -Wall -o "$OUT/c_floor" bench/c_floor.c

# ---- runs ---------------------------------------------------------------------------
rm -rf -- "$RUNDIR"
mkdir -p "$RUNDIR"
printf 'file\ttool\trun\tstart\tend\trc\tlog\n' >"$TSV"

# Sets CMD to the command line of tool $1 on file $2; $3 = 1 for the warm-up run.
set_cmd() {
  local tool=$1 file=$2 warm=$3
  case "$tool" in
    ours) CMD=("$AGENT" replay --no-detect --format json "$file") ;;
    # The site-independent detectors and the no-policy rule (replay without --policy).
    ours_detect) CMD=("$AGENT" replay --format json "$file") ;;
    ndpiReader)
      # -q: no banner, no statistics (nothing printed at all). The warm-up run prints
      # its statistics, to check it read every packet ("of N packets total").
      if [ "$warm" -eq 1 ]; then CMD=(ndpiReader -i "$file"); else CMD=(ndpiReader -q -i "$file"); fi ;;
    softflowd)
      # -r: read the file; -c none: no control socket, so it exits at the end of the
      # file; -d: foreground; -6: track IPv6 too (we do); no -n: exports to nowhere;
      # -p: its pid file under target/ (else it unlinks /var/run/softflowd.pid);
      # -m: the same flow bound as our default max_flows.
      CMD=(softflowd -r "$file" -c none -d -6 -m "$SOFTFLOWD_MAX_FLOWS" -p "$RUNDIR/softflowd.pid") ;;
    tshark)
      # -n: no name resolution (no DNS look-ups, nothing leaves the machine).
      CMD=(tshark -n -q -r "$file" -z "io,phs") ;;
    c_floor) CMD=("$OUT/c_floor" "$file") ;;
    *) echo "compare.sh: internal error: unknown tool $tool" >&2; exit 1 ;;
  esac
}

run_one() { # file label, tool, run index (0 = warm-up), file
  local label=$1 tool=$2 run=$3 file=$4 log start end rc
  log="$RUNDIR/$label.$tool.$run"
  set_cmd "$tool" "$file" "$([ "$run" -eq 0 ] && echo 1 || echo 0)"
  printf '%s\n' "${CMD[*]}" >"$log.cmd"
  start=$EPOCHREALTIME
  rc=0
  timeout -k 10 "$TIMEOUT" /usr/bin/time -v -o "$log.time" "${CMD[@]}" >"$log.out" 2>"$log.err" </dev/null || rc=$?
  end=$EPOCHREALTIME
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$tool" "$run" "$start" "$end" "$rc" "$log" >>"$TSV"
  if [ "$rc" -ne 0 ]; then
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      echo "compare.sh: $tool on $label timed out after ${TIMEOUT}s (run $run)" >&2
    else
      echo "compare.sh: $tool on $label exited with status $rc (run $run); see $log.err" >&2
    fi
  fi
}

bench_file() { # file, tools...
  local file=$1 label round i n k
  shift
  local tools=("$@")
  label=$(basename "$file" .pcap)
  n=${#tools[@]}
  echo "compare.sh: $label: warm-up + $RUNS timed run(s) of: ${tools[*]}"
  for ((round = 0; round <= RUNS; round++)); do
    for ((i = 0; i < n; i++)); do
      k=$(((i + round) % n))
      run_one "$label" "${tools[$k]}" "$round" "$file"
    done
  done
}

bench_file "$MIX" ours ours_detect ndpiReader softflowd tshark c_floor
# tshark is left out on the small-frame file, as in the peer table of ../shared/bench.
bench_file "$SMALL" ours ndpiReader softflowd c_floor

versions() {
  printf 'agent\t%s%s\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$([ -z "$(git status --porcelain -- agent config Cargo.toml Cargo.lock 2>/dev/null)" ] || echo '+dirty')"
  local p
  for p in libndpi-bin softflowd tshark gcc; do
    printf '%s\t%s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo unknown)"
  done
}
versions >"$RUNDIR/versions.tsv"

"$PY" bench/report.py --mode "$MODE" --runs "$RUNS" --tsv "$TSV" \
  --versions "$RUNDIR/versions.tsv" --json "$OUT/compare.json" \
  --mix "$(basename "$MIX" .pcap)" --file "$(basename "$MIX" .pcap)=$MIX" --file "$(basename "$SMALL" .pcap)=$SMALL"
