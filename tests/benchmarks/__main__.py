"""``python -m tests.benchmarks run``: the whole suite, or a quick part of it.

Examples::

    .venv/bin/python -m tests.benchmarks run                  # full run (~25 min)
    .venv/bin/python -m tests.benchmarks run --quick          # small sizes, 1 round
    .venv/bin/python -m tests.benchmarks run --targets hub-memory,raw-twisted --no-peers
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from pathlib import Path

from . import _report, _run, _targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the targets, measure, write RESULTS.md")
    run.add_argument("--quick", action="store_true",
                     help="1 round, 200/2,000 subscribers, 3,000 max held, 2 s rates")
    run.add_argument("--rounds", type=int)
    run.add_argument("--small", type=int)
    run.add_argument("--large", type=int)
    run.add_argument("--max-held", type=int)
    run.add_argument("--templates", type=int)
    run.add_argument("--publishes", type=int, help="timed publishes per round")
    run.add_argument("--seconds", type=float, help="length of each publish-rate window")
    run.add_argument("--phases", help="comma-separated: rate,large,max,small,matching")
    run.add_argument("--targets", help="comma-separated target names (default: all)")
    run.add_argument("--no-peers", action="store_true", help="skip installing and running the peers")
    run.add_argument("--before", metavar="REV",
                     help="also run this hub as of git revision REV (memory:// and SQLite): before and after")
    run.add_argument("--out", type=Path, default=_targets.HERE / "RESULTS.md")
    run.add_argument("--workdir", type=Path, default=_targets.PEERS / "run")
    sub.add_parser("setup", help="install the peers into tests/benchmarks/.peers/")
    again = sub.add_parser("report", help="rewrite RESULTS.md and the plot from RESULTS.json")
    again.add_argument("--out", type=Path, default=_targets.HERE / "RESULTS.md")
    again.add_argument("--command", dest="command_",
                       help="the command that produced RESULTS.json (default: the one it records)")
    args = parser.parse_args(argv)

    if args.command == "setup":
        errors = _targets.setup_peers(_run.log)
        for name, error in errors.items():
            print(f"{name}: {error}", file=sys.stderr)
        return 1 if errors else 0

    if args.command == "report":
        import json
        path = args.out.with_suffix(".json")
        result = json.loads(path.read_text())
        _report.write(result, args.command_ or result["command"], args.out, _plot_path(args.out),
                      path.stat().st_mtime)
        return 0

    settings = _run.Settings()
    if args.quick:
        settings = _run.Settings(rounds=1, small=200, large=2_000, max_held=3_000, templates=200,
                                 probes=50, publishes=10, seconds=2.0)
    for name in ("rounds", "small", "large", "max_held", "templates", "publishes", "seconds"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings, name, value)
    if args.phases:
        settings.phases = tuple(args.phases.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        print("uvloop is not installed (pip install -e '.[bench]'): plain asyncio", file=sys.stderr)
    started = time.time()
    json_path = args.out.with_suffix(".json")
    only = args.targets.split(",") if args.targets else None
    asyncio.run(_run.run(settings, only, not args.no_peers, args.workdir, json_path, args.before))
    import json
    command = ".venv/bin/python -m tests.benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    result = json.loads(json_path.read_text())
    result.update(started=started, finished=time.time(), command=command)
    json_path.write_text(json.dumps(result, indent=1))
    _report.write(result, command, args.out, _plot_path(args.out), started)
    print(f"wrote {args.out}")
    return 0


def _plot_path(out: Path) -> Path:
    """latency.png beside RESULTS.md, latency-redis.png beside RESULTS-redis.md."""
    return out.with_name(out.stem.replace("RESULTS", "latency", 1) + ".png")


if __name__ == "__main__":
    sys.exit(main())
