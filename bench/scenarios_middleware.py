"""The cost of the operations middleware: the first page with and without the metrics and
request-ID middleware (`--middleware-cost ROUNDS`, instead of every other scenario).

Two servers on one seeded database, the app and `bare_app.py` (the same app without them), in
interleaved runs; then the same comparison in one process, without the network or wrk
(`middleware_cpu.py`). Target: with the middleware at least 90 % of the rate without.
"""

import json
import statistics
import subprocess
import sys
from pathlib import Path

from runner import BENCH_DIR, PROJECT_DIR, Result, cpu_seconds, run_wrk, seed, uvicorn


def bench_middleware_cost(env: dict, dsn: str, args, tmp: Path) -> str:
    """The first page from the app and from `bare_app.py` (the same app without the metrics
    and request-ID middleware), side by side, in interleaved runs: the median of each.

    Besides the rate, each run's CPU time per request in the server: on a machine where other
    work competes for the cores, the rate swings from run to run, the CPU a request costs
    much less so.
    """
    bare_env = {**env, "METRICS_ENABLED": "false"}
    with (
        uvicorn("main:app", PROJECT_DIR, env, 1, tmp / "with.log") as (with_base, with_pid),
        uvicorn("bench.bare_app:app", PROJECT_DIR, bare_env, 1, tmp / "bare.log") as (bare, pid),
    ):
        seed(with_base, dsn, args.users, args.posts)
        servers = {
            "with": (f"{with_base}/api/posts?limit=10", with_pid),
            "without": (f"{bare}/api/posts?limit=10", pid),
        }
        for url, _pid in servers.values():
            run_wrk(url, 1, args.connections)  # warm up
        runs: dict[str, list[Result]] = {"with": [], "without": []}
        cpu_us: dict[str, list[float]] = {"with": [], "without": []}
        for round_ in range(args.middleware_cost):
            order = ["with", "without"] if round_ % 2 == 0 else ["without", "with"]
            for name in order:  # alternate who goes first: drift hits both alike
                url, server_pid = servers[name]
                before = cpu_seconds(server_pid)
                result = run_wrk(url, args.seconds, args.connections)
                used = cpu_seconds(server_pid) - before
                runs[name].append(result)
                cpu_us[name].append(used / (result.rps * args.seconds) * 1e6)

    def median(name: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs[name])

    lines = [f"first page, {args.middleware_cost} interleaved runs of {args.seconds} s each, "
             f"{args.connections} connections, 1 worker"]  # fmt: skip
    lines.append(
        f"{'':24}{'median req/s':>13}{'p50 ms':>8}{'p99 ms':>8}{'CPU us/req':>11}   runs (req/s)"
    )
    for name, label in (("with", "metrics + request IDs"), ("without", "without them")):
        rates = " ".join(f"{r.rps:.0f}" for r in runs[name])
        lines.append(
            f"{label:24}{median(name, 'rps'):13.0f}{median(name, 'p50_ms'):8.1f}"
            f"{median(name, 'p99_ms'):8.1f}{statistics.median(cpu_us[name]):11.0f}   {rates}"
        )
    ratio = median("with", "rps") / median("without", "rps")
    verdict = "ok" if ratio >= 0.9 else "MISSED"
    lines.append(f"with / without, median rates: {ratio:.3f} (target >= 0.90) {verdict}")
    # Each round's two runs are seconds apart: their ratio cancels most of the machine's drift.
    pairs = [w.rps / b.rps for w, b in zip(runs["with"], runs["without"], strict=True)]
    lines.append(f"with / without, median of each round's ratio: {statistics.median(pairs):.3f}")
    cpu = statistics.median(cpu_us["with"]) / statistics.median(cpu_us["without"])
    lines.append(f"CPU per request in the server, with / without: {cpu:.3f}")

    # The same comparison without the network or wrk: ASGI calls in one process, its CPU time.
    in_process = [sys.executable, str(BENCH_DIR / "middleware_cpu.py"), str(args.middleware_cost),
                  "500"]  # fmt: skip
    measured = subprocess.run(
        in_process, cwd=PROJECT_DIR, env={**env, "PYTHONPATH": str(PROJECT_DIR)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    cpu_us = json.loads(measured.stdout.splitlines()[-1])["cpu_us"]
    lines.append(
        f"in one process, CPU us per request: with {cpu_us['with']:.0f}, without "
        f"{cpu_us['without']:.0f}, ratio {cpu_us['with'] / cpu_us['without']:.3f}"
    )
    return "\n".join(lines)
