#!/usr/bin/env bash
# bench/callgrind.sh [FILE]
#
# Instructions per packet of `infrawatch-agent replay --no-detect`, counted by
# valgrind's callgrind (instructions executed, Ir): a figure that does not move with
# the machine's load, clock or cache, unlike wall time. Start-up is taken out: each
# measurement is the instructions of a run on FILE minus those of a run on an empty
# capture (FILE's 24-byte pcap header alone), divided by the packets of FILE.
# The measurement is made twice and both figures are printed: they should be equal or
# nearly (the flow table's hash is randomly seeded, so probing differs a little).
#
#   FILE   a classic pcap file; default: a 20 000-packet mix generated with
#          ../shared/bench/gen_mix.py --packets 20000 --seed 1 into target/bench/.
#
# Writes the callgrind profiles and target/bench/callgrind/callgrind.json. Exit status:
# 0 when every run worked, 1 on a tool error, 2 on bad usage.
# Look at where the instructions go: callgrind_annotate target/bench/callgrind/file.1.out
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
[ $# -le 1 ] || { echo "callgrind.sh: one FILE at most (see --help)" >&2; exit 2; }

OUT=target/bench
CG=$OUT/callgrind
PY=/usr/bin/python3
AGENT=target/release/infrawatch-agent
RUNS=2

missing=()
command -v cargo >/dev/null 2>&1 || missing+=("cargo (rustup)")
command -v valgrind >/dev/null 2>&1 || missing+=("valgrind (Debian package valgrind)")
command -v timeout >/dev/null 2>&1 || missing+=("timeout (Debian package coreutils)")
[ -x "$PY" ] || missing+=("$PY (Debian package python3)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'callgrind.sh: missing tool: %s\n' "${missing[@]}" >&2
  echo "callgrind.sh: run scripts/setup-test-deps.sh (as root) to install them" >&2
  exit 1
fi

tmpfiles=()
cleanup() {
  local f
  for f in "${tmpfiles[@]}"; do rm -f -- "$f"; done
}
trap cleanup EXIT
trap 'echo "callgrind.sh: interrupted" >&2; exit 130' INT TERM

mkdir -p "$CG"

if [ $# -eq 1 ]; then
  FILE=$1
  [ -r "$FILE" ] || { echo "callgrind.sh: cannot read $FILE" >&2; exit 2; }
else
  FILE=$OUT/mix20k_seed1.pcap
  if [ ! -s "$FILE" ]; then
    if ! "$PY" -c 'import scapy' 2>/dev/null; then
      echo "callgrind.sh: $PY cannot import scapy (Debian package python3-scapy): run scripts/setup-test-deps.sh" >&2
      exit 1
    fi
    echo "callgrind.sh: generating $FILE (gen_mix.py --packets 20000 --seed 1)"
    tmpfiles+=("$FILE.partial")
    "$PY" ../shared/bench/gen_mix.py --packets 20000 --seed 1 --out "$FILE.partial" >"$CG/gen.log" 2>&1 || {
      echo "callgrind.sh: gen_mix.py failed; see $CG/gen.log" >&2
      exit 1
    }
    mv -f -- "$FILE.partial" "$FILE"
  fi
fi

# The empty capture: FILE's own header (same link type), no record.
magic=$(od -An -N4 -tx1 "$FILE" | tr -d ' \n')
case "$magic" in
  d4c3b2a1|a1b2c3d4|4d3cb2a1|a1b23c4d) ;;
  *) echo "callgrind.sh: $FILE is not a classic pcap file (pcapng? convert it: editcap -F pcap IN OUT)" >&2; exit 2 ;;
esac
EMPTY=$CG/empty.pcap
head -c 24 "$FILE" >"$EMPTY"

echo "callgrind.sh: building the agent (cargo build --release --locked -p infrawatch-agent)"
cargo build --release --locked -p infrawatch-agent

# Runs the agent under callgrind on $2, profile to $CG/$1.out, report to $CG/$1.json.
count() {
  local name=$1 file=$2 rc=0
  timeout -k 10 600 valgrind --tool=callgrind --callgrind-out-file="$CG/$name.out" \
    "$AGENT" replay --no-detect --format json "$file" >"$CG/$name.json" 2>"$CG/$name.log" </dev/null || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "callgrind.sh: the run $name on $file failed (status $rc); see $CG/$name.log" >&2
    exit 1
  fi
}

echo "callgrind.sh: $RUNS x (empty capture, $FILE) under valgrind --tool=callgrind"
for ((i = 1; i <= RUNS; i++)); do
  count "empty.$i" "$EMPTY"
  count "file.$i" "$FILE"
done

"$PY" - "$CG" "$FILE" "$RUNS" <<'PY'
import json, re, subprocess, sys
cg, path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

def instructions(name):
    # the "summary:" (or "totals:") line of a callgrind profile: events = Ir only
    text = open("%s/%s.out" % (cg, name)).read()
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if not m:
        sys.exit("callgrind.sh: no instruction total in %s/%s.out" % (cg, name))
    return int(m.group(1))

def packets(name):
    try:
        j = json.load(open("%s/%s.json" % (cg, name)))
    except ValueError:
        sys.exit("callgrind.sh: the output of run %s is not JSON" % name)
    if j.get("file_errors"):
        sys.exit("callgrind.sh: run %s: %s" % (name, j["file_errors"]))
    return j["packets"]

res = []
for i in range(1, runs + 1):
    e, f, n = instructions("empty.%d" % i), instructions("file.%d" % i), packets("file.%d" % i)
    if n <= 0:
        sys.exit("callgrind.sh: %s holds no packet" % path)
    res.append({"run": i, "empty_instructions": e, "file_instructions": f, "packets": n,
                "instructions_per_packet": (f - e) / n})
print("file: %s, %d packets" % (path, res[0]["packets"]))
for r in res:
    print("run %d: %14d instructions, start-up (empty capture) %12d -> %10.1f instructions/packet"
          % (r["run"], r["file_instructions"], r["empty_instructions"], r["instructions_per_packet"]))
ipp = [r["instructions_per_packet"] for r in res]
spread = (max(ipp) - min(ipp)) / min(ipp) * 100 if min(ipp) > 0 else 0.0
print("instructions/packet: %s (difference between runs %.3f %%)"
      % (", ".join("%.1f" % v for v in ipp), spread))
if spread > 1.0:
    print("warning: the runs differ by more than 1 %: something in the packet path is not deterministic")

# Where they go (approximate: inclusive costs of a few functions, by callgrind_annotate;
# a renamed function shows as n/a). The report built at the end (Summary::build) grows
# with flows and assets, not packets: on a small file it weighs a lot per packet.
def inclusive(name):
    try:
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                               "%s/%s.out" % (cg, name)], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    best = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*?)(?: \[[^\]]*\])?$", line)
        if not m:
            continue
        fn, n = m.group(2), int(m.group(1).replace(",", ""))
        for key, pat in PARTS.items():
            if re.search(pat, fn):
                best[key] = max(best.get(key, 0), n)
    return best

PARTS = {
    "read (PcapFile::next)": r"PcapFile as infrawatch_agent::capture::PacketSource>::next$",
    "packet path (Engine::process)": r"engine::Engine::process$",
    "end-of-run report (Summary::build)": r"summary::Summary::build$",
}
parts = inclusive("file.1")
breakdown = {}
if parts:
    n = res[0]["packets"]
    print("breakdown of run 1 (approximate, inclusive, per packet of this file):")
    for key in PARTS:
        v = parts.get(key)
        breakdown[key] = None if v is None else v / n
        print("  %-36s %s" % (key, "n/a" if v is None else "%10.1f" % (v / n)))
path_ipp = None
if breakdown.get("read (PcapFile::next)") is not None and breakdown.get("packet path (Engine::process)") is not None:
    path_ipp = breakdown["read (PcapFile::next)"] + breakdown["packet path (Engine::process)"]
    print("per packet, read + packet path (the figure to compare between builds): %.1f instructions" % path_ipp)
json.dump({"file": path, "runs": res, "instructions_per_packet": ipp, "spread_percent": round(spread, 4),
           "breakdown_per_packet": breakdown, "packet_path_instructions_per_packet": path_ipp},
          open("%s/callgrind.json" % cg, "w"), indent=2)
print("JSON in %s/callgrind.json; profiles %s/file.N.out (callgrind_annotate)" % (cg, cg))
PY
