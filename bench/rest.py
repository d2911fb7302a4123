"""Benchmark: tierflow through its front door, `tierflow serve` with its defaults, driven over
HTTP as a user drives it, against the hand-written script of bench/pipeline.py on the same data.

`tierflow serve` runs in a process of its own, with its own Prefect API (no PREFECT_API_URL, a
fresh PREFECT_HOME as a new user has) and a fresh SQLite catalog; moto's S3 server in another.
The workload is bench/pipeline.py's: text objects of 30 words, split in 3-word chunks, then copied
by a second tier.

- small:      a 20-object batch triggered over REST, one after another: from the request to
              the first document written and to the batch COMPLETED (the catalog's timestamps);
- concurrent: twenty 20-object batches (twenty namespaces) triggered at once: the time until all
              are COMPLETED;
- N objects:  one batch of N objects over REST while a client reads `GET /v1/batches/{id}`
              every 0.2 s (each read's time kept), against the hand-written script.

    python bench/rest.py [--objects 2000 10000] [--small 5] [--concurrent 20] [--repeat 1]

Prints a table and writes bench/results/rest.json.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import pipeline  # noqa: E402
from bench.harness import default_credentials, save_results  # noqa: E402
from cli.demo import free_port  # noqa: E402

TIERFLOW = [sys.executable, "-c", "from cli.main import app; app()"]
TERMINAL = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"}
POLL_SECONDS = 0.2
SMALL = 20
TARGETS = ("small batch: first document <= 1 s, COMPLETED <= 1.5 s after the request; REST >= 0.9x hand-written "
           "at 2k and 10k while polled every 0.2 s; GET /v1/batches/{id} p95 <= 20 ms")


class Served:
    """`tierflow serve` on a free port with a fresh catalog and Prefect home, until `stop()`; the
    code of the checkout at `root` (this one by default)."""

    def __init__(self, tmp: Path, endpoint: str, root: Path = ROOT) -> None:
        self.catalog = tmp / "catalog.db"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TIERFLOW_"))}
        self.env.update({"TIERFLOW_DATABASE_URL": f"sqlite:///{self.catalog}", "TIERFLOW_S3_ENDPOINT_URL": endpoint,
                         "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
        key = subprocess.run([*TIERFLOW, "keys", "create", "--name", "bench"], env=self.env, cwd=root,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        port = free_port()
        self.log = (tmp / "serve.log").open("wb")
        self.process = subprocess.Popen([*TIERFLOW, "serve", "--port", str(port)], env=self.env, cwd=root,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300,
                                   headers={"Authorization": f"Bearer {key}"})
        deadline = time.monotonic() + 180
        while not self._ready():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"tierflow serve did not become ready; its log: {tmp / 'serve.log'}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            return self.client.get("/ready").status_code == 200
        except httpx.TransportError:
            return False

    def define(self, namespace: str, prefix: str) -> dict[str, str]:
        """bench/pipeline.py's bucket and two collections, in a namespace of their own."""
        headers = {"X-Namespace": namespace}
        bucket, chunks, copies = pipeline.DEFINITIONS["buckets"][0], *pipeline.DEFINITIONS["collections"]
        for path, body, extra in (("/v1/namespaces", {"namespace_name": namespace}, {}),
                                  ("/v1/buckets", {**bucket, "storage": {**bucket["storage"], "prefix": prefix}},
                                   headers),
                                  ("/v1/collections", chunks, headers), ("/v1/collections", copies, headers)):
            answer = self.client.post(path, json=body, headers=extra)
            if answer.status_code != 200:
                raise SystemExit(f"POST {path}: {answer.status_code} {answer.text}")
        return headers

    def trigger(self, headers: dict[str, str]) -> tuple[float, str]:
        """Trigger `chunks`: (the wall-clock time of the request, the batch id)."""
        sent = time.time()
        answer = self.client.post("/v1/collections/chunks/trigger", json={}, headers=headers)
        if answer.status_code != 202:
            raise SystemExit(f"trigger: {answer.status_code} {answer.text}")
        return sent, str(answer.json()["batch_id"])

    def wait(self, headers: dict[str, str], batch_id: str, every: float, reads_ms: list[float] | None = None
             ) -> dict[str, Any]:
        """Read the batch every `every` seconds until it has ended (each read's time into `reads_ms`)."""
        while True:
            started = time.perf_counter()
            view = self.client.get(f"/v1/batches/{batch_id}", headers=headers).json()
            if reads_ms is not None:
                reads_ms.append((time.perf_counter() - started) * 1000)
            if view["status"] in TERMINAL:
                return dict(view)
            time.sleep(every)

    def timings(self, batch_id: str, sent: float) -> dict[str, float]:
        """From the request to the batch's first document and to its close, by the catalog's clock."""
        with sqlite3.connect(self.catalog) as db:
            first = db.execute("SELECT min(updated_at) FROM documents WHERE batch_id = ?", (batch_id,)).fetchone()[0]
            closed = db.execute("SELECT updated_at FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()[0]
        return {"first_document_s": round(_stamp(first) - sent, 3) if first else None,
                "completed_s": round(_stamp(closed) - sent, 3)}

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _p95(values: list[float]) -> float | None:
    ordered = sorted(values)
    return round(ordered[int(len(ordered) * 0.95)], 1) if ordered else None


def _seed(endpoint: str, prefix: str, count: int) -> None:
    pipeline.PREFIX = prefix
    pipeline.seed(endpoint, count)


def run_small(served: Served, endpoint: str, rounds: int) -> dict[str, Any]:
    """`rounds` 20-object batches, one after another."""
    _seed(endpoint, "small/", SMALL)
    headers = served.define("small", "small/")
    runs = []
    for _ in range(rounds):
        sent, batch_id = served.trigger(headers)
        view = served.wait(headers, batch_id, every=0.05)
        runs.append({**served.timings(batch_id, sent), "status": view["status"], "documents": view["document_count"]})
    return {"runs": runs, **{f"{k}_median": sorted(r[k] for r in runs)[(len(runs) - 1) // 2]
                             for k in ("first_document_s", "completed_s")},
            **{f"{k}_max": max(r[k] for r in runs) for k in ("first_document_s", "completed_s")}}


def run_concurrent(served: Served, endpoint: str, count: int) -> dict[str, Any]:
    """`count` 20-object batches of `count` namespaces, triggered at once."""
    spaces = [f"tenant-{i:02d}" for i in range(count)]
    for space in spaces:
        _seed(endpoint, f"{space}/", SMALL)
    headers = [served.define(space, f"{space}/") for space in spaces]
    start = threading.Barrier(count)

    def one(h: dict[str, str]) -> dict[str, Any]:
        start.wait()
        sent, batch_id = served.trigger(h)
        view = served.wait(h, batch_id, every=0.1)
        return {**served.timings(batch_id, sent), "status": view["status"]}

    with ThreadPoolExecutor(count) as pool:
        runs = list(pool.map(one, headers))
    return {"batches": count, "statuses": sorted({r["status"] for r in runs}),
            "all_completed_s": max(r["completed_s"] for r in runs),
            "completed_s_median": sorted(r["completed_s"] for r in runs)[(count - 1) // 2]}


def run_big(served: Served, count: int, round_num: int) -> dict[str, Any]:
    """One batch of the `count` objects seeded under big-{count}/, polled every 0.2 s; each round
    in a namespace of its own, so that each writes every document anew as the first did."""
    headers = served.define(f"big-{count}-{round_num}", f"big-{count}/")
    reads_ms: list[float] = []
    sent, batch_id = served.trigger(headers)
    view = served.wait(headers, batch_id, every=POLL_SECONDS, reads_ms=reads_ms)
    timings = served.timings(batch_id, sent)
    return {"seconds": timings["completed_s"], "first_document_s": timings["first_document_s"],
            "status": view["status"], "documents": view["document_count"], "polls": len(reads_ms),
            "poll_p95_ms": _p95(reads_ms), "poll_max_ms": round(max(reads_ms), 1)}


def main() -> None:
    default_credentials()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, nargs="*", default=[2000, 10_000])
    parser.add_argument("--small", type=int, default=5, help="20-object batches, one after another")
    parser.add_argument("--concurrent", type=int, default=20, help="20-object batches sent at once")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of REST and hand-written per size")
    args = parser.parse_args()
    moto, endpoint = pipeline.start_moto()
    results: dict[str, Any] = {"targets": TARGETS}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            served = Served(Path(os.environ.get("TIERFLOW_BENCH_KEEP") or tmp), endpoint)
            try:
                if args.small:
                    results["small"] = run_small(served, endpoint, args.small)
                if args.concurrent:
                    results["concurrent"] = run_concurrent(served, endpoint, args.concurrent)
                results["sizes"] = []
                for count in args.objects:
                    _seed(endpoint, f"big-{count}/", count)
                    os.environ["TIERFLOW_BENCH_PREFIX"] = f"big-{count}/"  # the hand-written script's prefix
                    rest, hand = [], []
                    for round_num in range(args.repeat):  # alternated, so that drift hits both alike
                        hand.append(pipeline.measure("handwritten", endpoint))
                        rest.append(run_big(served, count, round_num))
                    results["sizes"].append({"objects": count, "handwritten": pipeline._median_run(hand),
                                             "rest": pipeline._median_run(rest)})
            finally:
                served.stop()
    finally:
        moto.terminate()
        moto.wait()
    report(results)


def report(results: dict[str, Any]) -> None:
    """Print the figures and the targets, and write bench/results/rest.json."""
    small = results.get("small")
    if small:
        print(f"small ({SMALL} objects, 2 tiers, {len(small['runs'])} in a row): first document "
              f"{small['first_document_s_median']:.2f} s median, {small['first_document_s_max']:.2f} s max; "
              f"COMPLETED {small['completed_s_median']:.2f} s median, {small['completed_s_max']:.2f} s max")
        print("    each: " + ", ".join(f"{r['first_document_s']:.2f}/{r['completed_s']:.2f}" for r in small["runs"]))
    if "concurrent" in results:
        c = results["concurrent"]
        print(f"concurrent: {c['batches']} batches of {SMALL} sent at once, all {'/'.join(c['statuses'])} "
              f"{c['all_completed_s']:.2f} s after the requests (median batch {c['completed_s_median']:.2f} s)")
    print(f"{'objects':>8} {'contender':<12} {'seconds':>8} {'obj/s':>7} {'vs hand':>8} {'1st doc s':>9} "
          f"{'GET p95 ms':>10}")
    for row in results.get("sizes", []):
        hand, rest = row["handwritten"], row["rest"]
        rest["vs_handwritten"] = round(hand["seconds"] / rest["seconds"], 3)
        for name, r in (("handwritten", hand), ("REST", rest)):
            vs = f"{r['vs_handwritten']:.2f}x" if "vs_handwritten" in r else "-"
            print(f"{row['objects']:>8} {name:<12} {r['seconds']:>8.2f} {row['objects'] / r['seconds']:>7.0f} "
                  f"{vs:>8} {r.get('first_document_s', '-'):>9} {r.get('poll_p95_ms', '-'):>10}")
            if len(r["all_seconds"]) > 1:
                print(f"{'':>8} {'':<12} seconds of each run: {', '.join(map(str, r['all_seconds']))}")
    print(f"targets: {TARGETS}")
    save_results("rest", results)


if __name__ == "__main__":
    main()
