"""ETag: the first page in full against the same request from a client that holds its tag, a
304 (`--only etag`).

Three interleaved rounds, the run of median rate of each, and the server's CPU time per
request (printed to stderr), which a loaded machine disturbs much less than the rate. Target:
the 304 at least 1.5 times the rate of the full page.
"""

import statistics
import sys

import httpx
from runner import Result, Target, run_wrk, server_cpu_seconds

ETAG_ROUNDS = 3
SCENARIOS = {
    "list_200": "first page, in full (its ETag computed)",
    "list_304": "first page with If-None-Match: its ETag (a 304)",
}
TARGETS = [Target("list_304 / list_200", "list_304", "list_200", 1.5)]


def bench_etag(first_page: str, seconds: int, connections: int, pid: int) -> dict[str, Result]:
    """The first page in full, then asked by clients that hold it: a 304 that reads the
    database snapshot only (caching.py), as long as nothing commits on the server meanwhile
    (on a shared server, what others commit turns some of them into a render and a hash).

    Interleaved rounds, the run of median rate of each; and the server's CPU time per request,
    which swings much less than the rate on a machine where other work competes for the cores.
    """
    tag = httpx.get(first_page).headers["etag"]
    conditional = httpx.get(first_page, headers={"If-None-Match": tag})
    if conditional.status_code != 304:
        sys.exit(f"expected a 304 for the first page's own ETag, got {conditional.status_code}")
    headers = {"list_200": "", "list_304": f"If-None-Match: {tag}"}
    runs: dict[str, list[Result]] = {name: [] for name in headers}
    cpu_us: dict[str, list[float]] = {name: [] for name in headers}
    for round_ in range(ETAG_ROUNDS):
        for name in sorted(headers, reverse=round_ % 2 == 1):  # alternate who goes first
            before = server_cpu_seconds(pid)
            result = run_wrk(first_page, seconds, connections, header=headers[name])
            runs[name].append(result)
            cpu_us[name].append((server_cpu_seconds(pid) - before) / (result.rps * seconds) * 1e6)
    cpu = {name: statistics.median(values) for name, values in cpu_us.items()}
    rates = {name: " ".join(f"{r.rps:.0f}" for r in results) for name, results in runs.items()}
    sys.stderr.write(
        f"etag: CPU us per request in the server: 200 {cpu['list_200']:.0f}, 304"
        f" {cpu['list_304']:.0f}, 200/304 {cpu['list_200'] / cpu['list_304']:.2f};"
        f" runs (req/s): 200 {rates['list_200']}, 304 {rates['list_304']}\n"
    )
    return {
        name: sorted(results, key=lambda r: r.rps)[len(results) // 2]
        for name, results in runs.items()
    }
