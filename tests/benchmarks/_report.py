"""RESULTS.md and the latency plot, from a run's JSON."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._run import summarize

NOTES_MARKER = "<!-- Everything below this line is kept when the suite rewrites this file. -->"


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
            f"{mem:.0f} GiB RAM; Python {platform.python_version()}, Node {node or 'n/a'}")


def _values(rounds: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[float]:
    return [r[key] * scale for r in rounds if key in r and r[key] is not None]


def _cell(rounds: list[dict[str, Any]], key: str, scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    s = summarize(_values(rounds, key, scale))
    if s is None:
        return "—"
    med, lo, hi = s
    if len(_values(rounds, key)) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(lo)}–{fmt.format(hi)})"


def _ratio(data: dict[str, list[dict[str, Any]]], a: str, b: str, key: str, key_b: str | None = None) -> float | None:
    """Median over rounds of a[key] / b[key_b], rounds paired in order."""
    ra, rb = data.get(a, []), data.get(b, [])
    ratios = [x[key] / y[key_b or key] for x, y in zip(ra, rb)
              if x.get(key) and y.get(key_b or key)]
    s = summarize(ratios)
    return s[0] if s else None


def _r(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def write(result: dict[str, Any], command: str, out: Path, png: Path, started: float) -> None:
    data: dict[str, list[dict[str, Any]]] = result["rounds"]
    settings = result["settings"]
    names = [n for n in data if data[n]]
    hubs = [n for n in names if n.startswith("hub-") and "@" not in n]
    peers = [n for n in names if n in ("flask-mercure-sse", "mercure-npm", "sse-starlette")]
    small, large = settings["small"], settings["large"]
    lines: list[str] = []
    add = lines.append
    add("# Benchmark results")
    add("")
    started = result.get("started", started)
    add(f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"{(result.get('finished', time.time()) - started) / 60:.0f} minutes")
    add(f"- Machine: {_machine()}. **Shared** with other engineers running tests at the same "
        "time: absolute figures are noisy, ratios measured in the same run are the ones to read.")
    add(f"- Command: `{command}`")
    add(f"- {settings['rounds']} round(s) per target, each a fresh server process; a cell is "
        "the median over rounds (min–max). Latency: "
        f"{settings['publishes']} publishes per round, each timed at {settings['probes']} probe "
        "subscribers spread across the connection order (p50/p99/max over every probe arrival "
        f"of the round). Publishes/s: {settings['publishers']} keep-alive publishers for "
        f"{settings['seconds']:g} s, HS256 bearer token on every request.")
    add("")
    add("Targets: " + "; ".join(f"**{n}**: {result['notes'].get(n, '')}".rstrip(": ") for n in names))
    add("")
    if result["errors"]:
        add("Not measured:")
        add("")
        for name, error in result["errors"].items():
            add(f"- **{name}**: `{error.splitlines()[-1] if error else ''}`"[:600])
        add("")

    add(f"## 1. Idle subscribers held and memory per idle subscriber")
    add("")
    add(f"RSS growth of the server process(es) divided by the subscribers held, at {large} "
        f"and at the most held (attempted: {settings['max_held']}; the hard open-file limit is 20,000).")
    add("")
    add(f"| target | KB per idle subscriber at {large} | held | KB each at that count | "
        f"KB per subscriber added past {large} |")
    add("|---|---|---|---|---|")
    for n in names:
        for r in data[n]:
            if r.get("held_max", 0) > r.get("held_large", 0) > 0 and "mem_per_sub_max" in r:
                r["mem_added"] = ((r["mem_per_sub_max"] * r["held_max"] - r["mem_per_sub"] * r["held_large"])
                                  / (r["held_max"] - r["held_large"]))
        add(f"| {n} | {_cell(data[n], 'mem_per_sub', 1 / 1024, '{:.2f}')} | "
            f"{_cell(data[n], 'held_max', 1, '{:.0f}')} | {_cell(data[n], 'mem_per_sub_max', 1 / 1024, '{:.2f}')} | "
            f"{_cell(data[n], 'mem_added', 1 / 1024, '{:.2f}')} |")
    add("")
    add(f"The last column is the RSS growth from {large} to the most held, divided by the "
        "subscribers added: the cost of one more subscriber, without what a process had "
        "reserved (or left as garbage) before the first.")
    add("")

    add("## 2. Publish-to-receive latency, one topic (ms)")
    add("")
    add(f"| target | {small}: p50 | p99 | max | {large}: p50 | p99 | max | p50@{large} / raw-twisted | p99@{large} / raw-node |")
    add("|---|---|---|---|---|---|---|---|---|")
    for n in names:
        add(f"| {n} | {_cell(data[n], 'small_p50')} | {_cell(data[n], 'small_p99')} | {_cell(data[n], 'small_max')} | "
            f"{_cell(data[n], 'large_p50')} | {_cell(data[n], 'large_p99')} | {_cell(data[n], 'large_max')} | "
            f"{_r(_ratio(data, n, 'raw-twisted', 'large_p50'))} | {_r(_ratio(data, n, 'raw-node', 'large_p99'))} |")
    add("")
    for n in names:
        short = [r["incomplete"] for r in data[n] if "incomplete" in r]
        if short:
            add(f"{n}: {short[0]}, so its {large} columns are at that count (left out of the plot).")
            add("")
    add(f"![latency against subscribers]({png.name})")
    add("")

    add("## 3. Authenticated publishes per second (HS256)")
    add("")
    add(f"| target | 0 subscribers | {small} subscribers | events/s delivered at {small} | 0 subs / raw-twisted | {small} subs / raw-twisted |")
    add("|---|---|---|---|---|---|")
    for n in names:
        add(f"| {n} | {_cell(data[n], 'rate_0', 1, '{:.0f}')} | {_cell(data[n], 'rate_small', 1, '{:.0f}')} | "
            f"{_cell(data[n], 'delivered_small', 1, '{:.0f}')} | {_r(_ratio(data, n, 'raw-twisted', 'rate_0'))} | "
            f"{_r(_ratio(data, n, 'raw-twisted', 'rate_small'))} |")
    add("")
    add("raw-twisted's POST handler is the bare twisted.web baseline: it parses the form, checks "
        "the HS256 token with pyjwt and writes the frame to its streams, nothing else.")
    add("")

    add("## 4. Cost of matching (ms)")
    add("")
    add(f"{small} subscribers of the published topic, alone (figure 2) and next to {large} subscribers "
        f"of {large} distinct topics plus {settings['templates']} URI-template subscribers (each "
        "its own template, none matching). Targets without templates get that many more distinct "
        "exact topics instead.")
    add("")
    add(f"| target | {small} alone: p50 | with {large}+{settings['templates']}: p50 | p99 | max | p50 ratio |")
    add("|---|---|---|---|---|---|")
    for n in names:
        add(f"| {n} | {_cell(data[n], 'small_p50')} | {_cell(data[n], 'matching_p50')} | "
            f"{_cell(data[n], 'matching_p99')} | {_cell(data[n], 'matching_max')} | "
            f"{_r(_ratio(data, n, n, 'matching_p50', 'small_p50'))} |")
    add("")

    add("## 5. Durability and scale")
    add("")
    add("| figure | value | ratio |")
    add("|---|---|---|")
    if "hub-sqlite" in data and "hub-memory" in data:
        add(f"| publishes/s, SQLite / memory | {_cell(data['hub-sqlite'], 'rate_0', 1, '{:.0f}')} / "
            f"{_cell(data['hub-memory'], 'rate_0', 1, '{:.0f}')} | {_r(_ratio(data, 'hub-sqlite', 'hub-memory', 'rate_0'))} |")
    else:
        add("| publishes/s, SQLite / memory | not measured | — |")
    if "hub-redis-2" in data and "hub-redis-1" in data:
        add(f"| events/s delivered at {small}, Redis 2 processes / 1 | "
            f"{_cell(data['hub-redis-2'], 'delivered_small', 1, '{:.0f}')} / "
            f"{_cell(data['hub-redis-1'], 'delivered_small', 1, '{:.0f}')} | "
            f"{_r(_ratio(data, 'hub-redis-2', 'hub-redis-1', 'delivered_small'))} |")
    else:
        add("| events/s delivered, Redis 2 processes / 1 | not measured | — |")
    add("")
    _cpu_table(add, data, hubs + [n for n in ("raw-twisted", "raw-node") if n in data], small)

    add("## The hub's targets")
    add("")
    add("| target | figure | goal | met |")
    add("|---|---|---|---|")
    for h in hubs:
        mem = summarize(_values(data[h], "mem_per_sub", 1 / 1024))
        _goal(add, h, "KB per idle subscriber", mem and mem[0], 8.0, "<=")
        _goal(add, h, f"p50@{large} / raw-twisted", _ratio(data, h, "raw-twisted", "large_p50"), 1.3, "<=")
        _goal(add, h, f"p99@{large} / raw-node", _ratio(data, h, "raw-node", "large_p99"), 1.0, "<=")
        _goal(add, h, "publishes/s / raw-twisted", _ratio(data, h, "raw-twisted", "rate_0"), 0.8, ">=")
        _goal(add, h, f"publishes/s with {small} / raw-twisted",
              _ratio(data, h, "raw-twisted", "rate_small"), 0.8, ">=")
        _goal(add, h, "matching p50 ratio", _ratio(data, h, h, "matching_p50", "small_p50"), 1.2, "<=")
        for p in peers:
            better = _ahead(data, h, p)
            add(f"| {h} | ahead of {p} | every figure | {better} |")
    if "hub-sqlite" in data and "hub-memory" in data:
        _goal(add, "hub-sqlite", "publishes/s / memory", _ratio(data, "hub-sqlite", "hub-memory", "rate_0"), 0.7, ">=")
    if "hub-redis-2" in data and "hub-redis-1" in data:
        _goal(add, "hub-redis-2", "delivered / 1 process",
              _ratio(data, "hub-redis-2", "hub-redis-1", "delivered_small"), 1.6, ">=")
    add("")

    add("## Subscriber counts checked against the servers")
    add("")
    lost = [c for c in result["checks"] if c["lost"] or c["failed"]]
    sources = sorted({f"{c['target']}: {c['source']}" for c in result["checks"]})
    add("Where the count came from: " + "; ".join(sources) + ".")
    add("")
    if lost:
        add("| target | phase | client holds | server counts | failed to open | statuses |")
        add("|---|---|---|---|---|---|")
        for c in lost:
            add(f"| {c['target']} | {c['phase']} | {c['client']} | {c['server']} | {c['failed']} | {c['statuses']} |")
    else:
        add("Every phase: the server counted every subscriber the client held; none failed to open.")
    add("")

    _plot(data, settings, png)
    notes = ""
    if out.exists():
        old = out.read_text()
        if NOTES_MARKER in old:
            notes = old.split(NOTES_MARKER, 1)[1]
    out.write_text("\n".join(lines) + "\n" + NOTES_MARKER + (notes or "\n"))


def _per_round(rounds: list[dict[str, Any]], f: Any) -> float | None:
    values = []
    for r in rounds:
        try:
            values.append(f(r))
        except (KeyError, TypeError, ZeroDivisionError):
            continue
    s = summarize(values)
    return s[0] if s else None


def _cpu_table(add: Any, data: dict[str, list[dict[str, Any]]], names: list[str], small: int) -> None:
    """Where the CPU went while events were delivered to ``small`` subscribers."""
    if not any("small_cpu_server" in r for n in names for r in data.get(n, [])):
        return
    cores = os.cpu_count() or 1
    add(f"CPU while delivering to {small} subscribers (figure 3's second column), in cores "
        f"of this machine's {cores}: the target's processes, the services it uses (Redis), "
        "the load client, and the whole machine (other users included). "
        "Events per CPU-second counts the target's and its services' CPU.")
    add("")
    add("| target | events/s delivered | target | services | client | machine | events per CPU-second |")
    add("|---|---|---|---|---|---|---|")
    for n in names:
        rounds = data.get(n, [])
        if not any("small_cpu_server" in r for r in rounds):
            continue
        per_cpu = _per_round(rounds, lambda r: r["delivered_small"] / (r["small_cpu_server"] + r["small_cpu_helpers"]))
        add(f"| {n} | {_cell(rounds, 'delivered_small', 1, '{:.0f}')} | {_cell(rounds, 'small_cpu_server', 1, '{:.2f}')} | "
            f"{_cell(rounds, 'small_cpu_helpers', 1, '{:.2f}')} | {_cell(rounds, 'small_cpu_client', 1, '{:.2f}')} | "
            f"{_cell(rounds, 'small_cpu_machine', 1, '{:.2f}')} | "
            f"{'—' if per_cpu is None else f'{per_cpu:.0f}'} |")
    add("")
    two, one = data.get("hub-redis-2", []), data.get("hub-redis-1", [])
    if two and one:
        # What the 2-process run would deliver if every core of the machine
        # did its work at its measured cost per event (hubs, Redis and client).
        ceiling = _per_round(two, lambda r: cores * r["delivered_small"] / (
            r["small_cpu_server"] + r["small_cpu_helpers"] + r["small_cpu_client"]))
        single = summarize(_values(one, "delivered_small"))
        if ceiling is not None and single is not None:
            add(f"Ceiling of the Redis 2 / 1 figure on this machine: {cores} cores at the 2-process "
                f"run's cost per delivered event (its hubs, Redis and the client together) deliver "
                f"{ceiling:.0f} events/s, **{ceiling / single[0]:.2f}x** the single process's "
                f"{single[0]:.0f}.")
            add("")
        if any("parallel_speedup" in r for r in two):
            add("Measured right before each 2-process round: two CPU-bound processes did "
                f"{_cell(two, 'parallel_speedup', 1, '{:.2f}')}x the work of one on this machine "
                "(2.00x on two free cores; the spread is other users' load on the machine).")
            add("")


def _goal(add: Any, target: str, what: str, value: float | None, goal: float, op: str) -> None:
    if value is None:
        add(f"| {target} | {what} | {op} {goal:g} | not measured |")
        return
    ok = value <= goal if op == "<=" else value >= goal
    add(f"| {target} | {what} | {op} {goal:g} | {value:.2f}: {'yes' if ok else '**no**'} |")


def _ahead(data: dict[str, list[dict[str, Any]]], hub: str, peer: str) -> str:
    """Which figures the hub wins against ``peer`` (median over rounds)."""
    lower = ["mem_per_sub", "mem_per_sub_max", "mem_added", "small_p50", "small_p99", "large_p50", "large_p99", "matching_p50"]
    higher = ["rate_0", "rate_small", "held_max"]
    lost = []
    uncompared = []
    for key in lower + higher:
        peer_rounds = data.get(peer, [])
        if key.startswith("large_"):
            # A peer that opened fewer subscribers than asked was timed at
            # that count: its figure is not one to compare with.
            complete = [r for r in peer_rounds if "incomplete" not in r]
            if len(complete) < len(peer_rounds):
                uncompared.append(key)
            peer_rounds = complete
        a = summarize(_values(data[hub], key))
        b = summarize(_values(peer_rounds, key))
        if a is None or b is None:
            continue
        if (key in lower and a[0] > b[0]) or (key in higher and a[0] < b[0]):
            lost.append(key)
    verdict = "yes" if not lost else "**no**: behind on " + ", ".join(lost)
    if uncompared:
        verdict += f" ({', '.join(uncompared)} not compared: it held fewer subscribers)"
    return verdict


def _plot(data: dict[str, list[dict[str, Any]]], settings: dict[str, Any], png: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    sizes = [settings["small"], settings["large"]]
    for n, rounds in data.items():
        if not rounds:
            continue
        for ax, q in zip(axes, ("p50", "p99")):
            ys, lo, hi, xs = [], [], [], []
            for size, prefix in zip(sizes, ("small", "large")):
                complete = [r for r in rounds if prefix == "small" or "incomplete" not in r]
                s = summarize(_values(complete, f"{prefix}_{q}"))
                if s is None:
                    continue
                xs.append(size)
                ys.append(s[0])
                lo.append(s[0] - s[1])
                hi.append(s[2] - s[0])
            if xs:
                style = "-o" if n.startswith("hub-") else ("--s" if n.startswith("raw-") else ":^")
                ax.errorbar(xs, ys, yerr=[lo, hi], fmt=style, label=n, capsize=3)
    for ax, q in zip(axes, ("p50", "p99")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("subscribers of the topic")
        ax.set_ylabel(f"publish-to-receive latency {q} (ms)")
        ax.set_title(f"{q} (median over rounds, bars min–max)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
