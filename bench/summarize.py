#!/usr/bin/python3
"""Turns the suite's raw switchboard-bench JSON (DIR/raw/*.json, from bench/run.sh) into
DIR/latest.md, a Markdown report, and PNG plots drawn with gnuplot. Usage: summarize.py DIR"""

import datetime
import glob
import json
import os
import platform
import subprocess
import sys

SCENARIOS = [
    ("single-200", "1 node, 200 B"),
    ("single-webrtc", "1 node, webrtc mix"),
    ("cluster-200", "2 nodes + Redis, 200 B"),
    ("cluster-2k", "2 nodes + Redis, 2 KB"),
    ("cluster-webrtc", "2 nodes + Redis, webrtc mix"),
    ("baseline-200", "bare hiredis, 200 B"),
    ("baseline-2k", "bare hiredis, 2 KB"),
    ("baseline-webrtc", "bare hiredis, webrtc mix"),
]


def load(out):
    runs = {}
    for path in glob.glob(os.path.join(out, "raw", "*.json")):
        name = os.path.basename(path)[:-5]
        try:
            with open(path) as f:
                runs[name] = json.load(f)
        except (OSError, ValueError):
            runs[name] = None  # the run failed before writing its figures
    return runs


def ms(us):
    return "-" if us is None else f"{us / 1000:.2f}"


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def cpu(run, part):
    c = (run or {}).get("cpu") or {}
    p = c.get(part)
    return p.get("us_per_msg") if isinstance(p, dict) else None


def answered(run):
    if not run or "messages" not in run:
        return "no figures"
    m = run["messages"]
    if run.get("ok"):
        return "all" if m["refused"] == 0 else f"all ({m['refused']} refused)"
    return f"{m['never_answered']} unanswered"


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = "?"
    try:
        rev = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse",
                              "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        pass
    return (f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, commit {rev}, "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")


def gnuplot(script):
    try:
        p = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"summarize: gnuplot failed: {e}", file=sys.stderr)
        return False
    if p.returncode != 0:
        print(f"summarize: gnuplot failed: {p.stderr}", file=sys.stderr)
        return False
    return True


def plot_sweep(out, sweep):
    data = os.path.join(out, "raw", "sweep.dat")
    with open(data, "w") as f:
        for run in sweep:
            lat = run["latency_us"]
            f.write(f"{run['rate']} {run['throughput']['delivered_per_s']} {lat['p50'] / 1000} "
                    f"{lat['p99'] / 1000} {lat['p999'] / 1000} {lat['max'] / 1000}\n")
    return gnuplot(f"""
set terminal png size 900,540
set output '{os.path.join(out, "latency_vs_load.png")}'
set title 'Latency against offered load (2 nodes + Redis, 200 B, open loop, from intended send time)'
set xlabel 'offered load (messages/s)'
set ylabel 'latency (ms, log scale)'
set logscale y
set grid
set key top left
plot '{data}' using 1:3 with linespoints title 'p50', \\
     '' using 1:4 with linespoints title 'p99', \\
     '' using 1:5 with linespoints title 'p99.9', \\
     '' using 1:6 with linespoints title 'max'
""")


def plot_bars(out, rows):
    data = os.path.join(out, "raw", "bars.dat")
    with open(data, "w") as f:
        for label, run in rows:
            tput = run["throughput"]["delivered_per_s"]
            vals = [cpu(run, p) for p in ("nodes", "redis", "bench")]
            f.write(f'"{label}" {tput} ' + " ".join("0" if v is None else str(v) for v in vals)
                    + "\n")
    ok = gnuplot(f"""
set terminal png size 1000,540
set output '{os.path.join(out, "throughput.png")}'
set title 'Messages delivered per second (closed loop, 50 pairs, window 4)'
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set xtics rotate by -30
set bmargin 9
set rmargin 12
set ylabel 'messages/s'
set grid ytics
set yrange [0:*]
plot '{data}' using 2:xtic(1) notitle
""")
    return ok and gnuplot(f"""
set terminal png size 1000,540
set output '{os.path.join(out, "cpu_per_msg.png")}'
set title 'CPU microseconds per delivered message'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30
set bmargin 9
set rmargin 12
set ylabel 'CPU us / message'
set grid ytics
set yrange [0:*]
plot '{data}' using 3:xtic(1) title 'nodes', '' using 4 title 'Redis', '' using 5 title 'bench'
""")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")
    runs = load(out)
    md = ["# Switchboard benchmark", "", f"Machine: {machine()}.", "",
          "Everything ran on this one machine over loopback: the nodes, redis-server and the "
          "bench share its CPUs, so the figures are a floor for a real deployment, and they "
          "move with whatever else the machine is doing. Latency is from each message's "
          "intended send time to its delivery to the other peer; CPU is utime+stime over the "
          "measured interval, per message delivered in it.", ""]

    md += ["## Relay and the Redis floor", "",
           "Closed loop: 50 pairs, 4 messages in flight per pair.", "",
           "| scenario | msg/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | node us/msg "
           "| Redis us/msg | bench us/msg | node/Redis | answered |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    bars = []
    for name, label in SCENARIOS:
        run = runs.get(name)
        if not run or "throughput" not in run:
            if name in runs:
                md.append(f"| {label} | failed | | | | | | | | | | {answered(run)} |")
            continue
        lat = run["latency_us"]
        ratio = (run.get("cpu") or {}).get("node_over_redis")
        md.append(f"| {label} | {fmt(run['throughput']['delivered_per_s'])} | {ms(lat['p50'])} "
                  f"| {ms(lat['p90'])} | {ms(lat['p99'])} | {ms(lat['p999'])} | {ms(lat['max'])} "
                  f"| {fmt(cpu(run, 'nodes'))} | {fmt(cpu(run, 'redis'))} "
                  f"| {fmt(cpu(run, 'bench'))} | {fmt(ratio, 2)} | {answered(run)} |")
        bars.append((label, run))

    sweep = sorted((r for n, r in runs.items() if n.startswith("sweep-") and r and "rate" in r),
                   key=lambda r: r["rate"])
    if sweep:
        md += ["", "## Latency against offered load", "",
               "Open loop through 2 nodes and Redis, 200 B, 50 pairs (window 64): each message "
               "is timed from when it was due, so a stall shows instead of slowing the sender.",
               "", "| offered msg/s | delivered msg/s | p50 ms | p99 ms | p99.9 ms | max ms "
               "| never sent (behind) | node us/msg |",
               "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in sweep:
            lat = r["latency_us"]
            md.append(f"| {fmt(r['rate'])} | {fmt(r['throughput']['delivered_per_s'])} "
                      f"| {ms(lat['p50'])} | {ms(lat['p99'])} | {ms(lat['p999'])} "
                      f"| {ms(lat['max'])} | {r['messages']['unsent_behind_schedule']:,} "
                      f"| {fmt(cpu(r, 'nodes'))} |")

    conns = sorted((r for n, r in runs.items() if n.startswith("conns-") and r),
                   key=lambda r: r.get("connections", 0))
    if conns:
        md += ["", "## Idle connections", "",
               "Welcomed WebSocket peers held open on one clustered node (from 8 source "
               "addresses), then 10 pairs relaying 200 B before and while they are open.", "",
               "| connections | ready | setup/s | node RSS MiB before / after | bytes per "
               "connection | node us per handshake | relay msg/s before / during | node us/msg "
               "before / during |",
               "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in conns:
            if "ready" not in r or "setup_per_s" not in r:
                md.append(f"| {r.get('connections', '?')} | failed | | | | | | |")
                continue
            b, d = r.get("relay_before") or {}, r.get("relay_during") or {}

            def tput(x):
                return fmt((x.get("throughput") or {}).get("delivered_per_s"))

            rss = "-"
            if r.get("node_rss_kb_before") is not None:
                rss = (f"{r['node_rss_kb_before'] / 1024:.1f} / "
                       f"{r['node_rss_kb_after'] / 1024:.1f}")
            md.append(f"| {r['connections']:,} | {r['ready']:,} | {fmt(r['setup_per_s'])} "
                      f"| {rss} | {fmt(r.get('node_rss_bytes_per_conn'), 0)} "
                      f"| {fmt(r.get('node_cpu_us_per_conn'))} | {tput(b)} / {tput(d)} "
                      f"| {fmt(cpu(b, 'nodes'))} / {fmt(cpu(d, 'nodes'))} |")

    plots = []
    if bars and plot_bars(out, bars):
        plots += ["throughput.png", "cpu_per_msg.png"]
    if sweep and plot_sweep(out, sweep):
        plots.append("latency_vs_load.png")
    if plots:
        md += ["", "## Plots", ""] + [f"![{p[:-4]}]({p})" for p in plots]
    md += ["", "Raw figures: `raw/*.json` (switchboard-bench --json), one file per run.", ""]
    with open(os.path.join(out, "latest.md"), "w") as f:
        f.write("\n".join(md))


if __name__ == "__main__":
    main()
