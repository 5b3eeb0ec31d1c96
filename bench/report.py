#!/usr/bin/env python3
"""bench/report.py - the report of bench/compare.sh (not meant to be run by hand).

Reads the runs table compare.sh wrote (one line per run: file, tool, run index,
start/end wall clock, exit status, log prefix), the GNU `time -v` log and the output of
every run; checks that each tool ran cleanly and read the whole file; prints one table
per file and the ratios against the targets; writes the same as JSON.
Exit status: 0 when no tool error, 1 otherwise. Targets never change the exit status.
Standard library only.
"""
import argparse
import json
import os
import re
import statistics
import sys

TOOLS = ["ours", "ours_detect", "ndpiReader", "softflowd", "tshark", "c_floor"]
NAMES = {
    "ours": "infrawatch (ours)",
    "ours_detect": "infrawatch, detectors on",
    "ndpiReader": "ndpiReader",
    "softflowd": "softflowd",
    "tshark": "tshark",
    "c_floor": "C floor",
}
RSS_LIMIT_MB = 64.0


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def time_log(path):
    """Peak RSS (KiB), user+sys CPU (s), exit status or signal from a GNU time -v log."""
    text = read(path)
    out = {"rss_kib": None, "cpu_s": None, "signal": None}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["rss_kib"] = int(m.group(1))
    u = re.search(r"User time \(seconds\): ([\d.]+)", text)
    s = re.search(r"System time \(seconds\): ([\d.]+)", text)
    if u and s:
        out["cpu_s"] = float(u.group(1)) + float(s.group(1))
    m = re.search(r"Command terminated by signal (\d+)", text)
    if m:
        out["signal"] = int(m.group(1))
    return out


def packets_seen(tool, out, err):
    """Packets the tool says it read, or None when its output does not tell; plus an
    error message when the output shows a failure the exit status hides."""
    if tool in ("ours", "ours_detect"):
        try:
            j = json.loads(out)
        except ValueError:
            return None, "its output is not JSON"
        if j.get("file_errors"):
            return j.get("packets"), "file errors: %s" % j["file_errors"]
        return j.get("packets"), None
    if tool == "ndpiReader":
        # ndpiReader exits 0 even when it cannot open the file.
        if "ERROR" in err or "ERROR" in out:
            line = next(l for l in (err + "\n" + out).splitlines() if "ERROR" in l)
            return None, line.strip()
        m = re.search(r"of (\d+) packets total", out)
        return (int(m.group(1)) if m else None), None
    if tool == "softflowd":
        p = re.search(r"Packets processed: (\d+)", out + err)
        i = re.search(r"Ignored packets: (\d+)", out + err)
        if p and i:
            return int(p.group(1)) + int(i.group(1)), None
        return None, None
    if tool == "tshark":
        m = re.search(r"^eth\s+frames:(\d+)", out, re.M)
        return (int(m.group(1)) if m else None), None
    if tool == "c_floor":
        m = re.search(r"^packets=(\d+)", out, re.M)
        return (int(m.group(1)) if m else None), None
    return None, None


def fmt_rate(pps):
    if pps is None:
        return "-"
    if pps >= 1e6:
        return "%.2f M" % (pps / 1e6)
    return "%.0f k" % (pps / 1e3)


def fmt(v, spec):
    return "-" if v is None else spec % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--versions", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--mix", required=True, help="label of the mixed-traffic file")
    ap.add_argument("--file", action="append", default=[], help="LABEL=PATH, in order")
    a = ap.parse_args()

    rows = []
    with open(a.tsv, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    versions = {}
    for line in read(a.versions).splitlines():
        k, _, v = line.partition("\t")
        versions[k] = v

    errors, warnings = [], []
    report = {
        "mode": a.mode,
        "runs": a.runs,
        "warmup_runs": 1,
        "host": {"cpus": os.cpu_count(), "loadavg": list(os.getloadavg())},
        "versions": versions,
        "note": "targets are reported, not enforced by the exit status",
        "files": {},
    }
    smoke = a.mode == "smoke"

    for spec in a.file:
        label, _, path = spec.partition("=")
        runs = [r for r in rows if r["file"] == label]
        is_mix = label == a.mix
        # The file's packet count: the C floor's record walk (warm-up run), else ours.
        parsed = {}
        for r in runs:
            out = read(r["log"] + ".out")
            err = read(r["log"] + ".err")
            r["packets"], r["problem"] = packets_seen(r["tool"], out, err)
            r.update(time_log(r["log"] + ".time"))
            r["cmd"] = read(r["log"] + ".cmd").strip()
            r["wall_s"] = float(r["end"]) - float(r["start"])
            parsed.setdefault(r["tool"], []).append(r)
        total = None
        for tool in ("c_floor", "ours"):
            for r in parsed.get(tool, []):
                if r["run"] == "0" and r["rc"] == "0" and r["packets"]:
                    total = r["packets"]
                    break
            if total:
                break
        if not total:
            errors.append("%s: could not count the file's packets (C floor and ours both failed)" % label)
        size = os.path.getsize(path) if os.path.exists(path) else None
        finfo = {"path": path, "packets": total, "bytes": size, "tools": {}, "targets": []}
        report["files"][label] = finfo

        for tool in TOOLS:
            rs = parsed.get(tool)
            if not rs:
                continue
            tool_errors = []
            for r in rs:
                what = "%s on %s, %s" % (tool, label, "warm-up" if r["run"] == "0" else "run %s" % r["run"])
                if r["rc"] != "0":
                    rc = int(r["rc"])
                    if rc in (124, 137):
                        tool_errors.append("%s: timed out" % what)
                    elif r["signal"]:
                        tool_errors.append("%s: killed by signal %d" % (what, r["signal"]))
                    else:
                        tool_errors.append("%s: exit status %d (see %s.err)" % (what, rc, r["log"]))
                    continue
                if r["problem"]:
                    tool_errors.append("%s: %s" % (what, r["problem"]))
                    continue
                if total and r["packets"] is not None and r["packets"] != total:
                    msg = "%s: read %d packets of %d" % (what, r["packets"], total)
                    # ours and the C floor must read every record; peers count their own way
                    (tool_errors if tool in ("ours", "ours_detect", "c_floor") else warnings).append(msg)
                expects_count = tool != "ndpiReader" or r["run"] == "0"
                if expects_count and r["packets"] is None:
                    msg = "%s: its output does not say how many packets it read" % what
                    (tool_errors if tool in ("ours", "ours_detect", "c_floor") else warnings).append(msg)
            errors.extend(tool_errors)
            timed = [r for r in rs if r["run"] != "0" and r["rc"] == "0" and not r["problem"]]
            walls = [r["wall_s"] for r in timed]
            med = statistics.median(walls) if walls else None
            cpus = [r["cpu_s"] for r in timed if r["cpu_s"] is not None]
            rss = [r["rss_kib"] for r in timed if r["rss_kib"] is not None]
            finfo["tools"][tool] = {
                "command": next((r["cmd"] for r in rs if r["run"] != "0"), rs[0]["cmd"]),
                "ok": not tool_errors,
                "wall_s": [round(w, 6) for w in walls],
                "median_wall_s": round(med, 6) if med is not None else None,
                "packets_per_second": round(total / med) if (med and total) else None,
                "median_cpu_s": round(statistics.median(cpus), 3) if cpus else None,
                "peak_rss_kib": max(rss) if rss else None,
                "peak_rss_mb": round(max(rss) * 1024 / 1e6, 1) if rss else None,
            }

        t = finfo["tools"]

        def pps(tool):
            return (t.get(tool) or {}).get("packets_per_second")

        def target(name, value, op, limit, enforced, unit="x"):
            if value is None:
                verdict = "n/a"
            elif not enforced:
                verdict = "info"
            else:
                ok = value >= limit if op == ">=" else value <= limit
                verdict = "PASS" if ok else "FAIL"
            finfo["targets"].append({"name": name, "value": None if value is None else round(value, 2),
                                     "op": op, "limit": limit, "unit": unit, "verdict": verdict})

        def ratio(x, y):
            return x / y if (x and y) else None

        target("ours / ndpiReader (packets/s)", ratio(pps("ours"), pps("ndpiReader")), ">=", 5, is_mix)
        target("ours, detectors on / ndpiReader (packets/s)", ratio(pps("ours_detect"), pps("ndpiReader")), ">=", 5, is_mix)
        target("ours / softflowd (packets/s)", ratio(pps("ours"), pps("softflowd")), ">=", 1.5, is_mix)
        target("C floor / ours (packets/s)", ratio(pps("c_floor"), pps("ours")), "<=", 1.5, True)
        target("ours peak RSS", (t.get("ours") or {}).get("peak_rss_mb"), "<=", RSS_LIMIT_MB, True, " MB")
        if "tshark" in t:
            target("ours / tshark (packets/s)", ratio(pps("ours"), pps("tshark")), ">=", 0, False)

        # ---- print ----
        print()
        print("== %s: %s packets, %s MB; median of %d timed run(s) after 1 warm-up ==" % (
            os.path.basename(path), total if total else "?",
            fmt(size / 1e6 if size is not None else None, "%.1f"), a.runs))
        head = "%-18s %13s %19s %11s %8s %12s  %s" % (
            "tool", "median wall s", "(min - max)", "packets/s", "CPU s", "peak RSS MB", "status")
        print(head)
        print("-" * len(head))
        for tool in TOOLS:
            if tool not in t:
                continue
            d = t[tool]
            w = d["wall_s"]
            print("%-18s %13s %19s %11s %8s %12s  %s" % (
                NAMES[tool], fmt(d["median_wall_s"], "%.3f"),
                "(%.3f - %.3f)" % (min(w), max(w)) if w else "-",
                fmt_rate(d["packets_per_second"]), fmt(d["median_cpu_s"], "%.2f"),
                fmt(d["peak_rss_mb"], "%.1f"), "ok" if d["ok"] else "ERROR"))
        print()
        print("targets on %s%s:" % (label, " (smoke files: start-up dominates, figures mean nothing)" if smoke else ""))
        for tg in finfo["targets"]:
            if tg["verdict"] == "info" and tg["name"].startswith("ours / tshark"):
                goal = "(no target)"
            elif tg["verdict"] == "info":
                goal = "(target on the mix only)"
            else:
                goal = "target %s %g%s" % (tg["op"], tg["limit"], tg["unit"])
            val = "-" if tg["value"] is None else ("%.2f%s" % (tg["value"], tg["unit"]))
            print("  %-30s %10s   %-26s %s" % (tg["name"], val, goal, tg["verdict"]))

    report["errors"] = errors
    report["warnings"] = warnings
    with open(a.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print()
    for w in warnings:
        print("warning: " + w)
    for e in errors:
        print("ERROR: " + e)
    print("Targets are reported, not enforced: the exit status only reflects tool errors.")
    print("%s run: %s; JSON in %s" % (a.mode, "tool errors" if errors else "all tools ran cleanly", a.json))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
