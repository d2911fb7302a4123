"""Benchmark: tierflow against a hand-written script and a naive Prefect flow, on the same data.

Workload: N text objects of 30 words in S3 (moto's server in its own process, or any endpoint
given with --endpoint), a two-tier DAG (text_extractor by words, 3-word chunks, then
passthrough_extractor), a fresh SQLite catalog for each contender. Each contender runs in its own
process so that its peak RSS is its own:

- tierflow:     `trigger_collection` end to end (discovery, selection, two tier subflows);
- hand-written: one plain script doing the same listing, the same GETs (same I/O concurrency),
                the same splitting and bulk inserts into the same tables, no orchestration;
- naive:        the same work as one Prefect task per object (tier 1) and per object's chunks
                (tier 2): what a first attempt looks like.

    python bench/pipeline.py [--objects 1000 10000] [--large] [--repeat 3] [--skip-naive-above 2000]

Prints a table and writes bench/results/pipeline.json. CPU s is the processor time of the
contender's own process while it ran (all its threads; not moto's, not Prefect's API server's):
on two cores shared with moto, what tierflow spends beyond the hand-written script's figure is
what it costs in throughput. For tierflow it also reports each tier's
orchestration overhead (from the moment the tier could start to its first chunk, plus from its
last chunk to its close) and the time from the trigger to the first committed document. Prefect's API is
the temporary local one unless PREFECT_API_URL points at a server, and Prefect's other settings are
the environment's (its logs at INFO by default). Under each row: the C heap in
use, freed but kept, and SQLite's memory, lowest and highest over the run (bench/heap.py).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import default_credentials, print_result, run_contender, save_results  # noqa: E402
from bench.heap import HeapSampler  # noqa: E402
from cli.demo import free_port  # noqa: E402
from tierflow.process import MALLOC_ARENAS  # noqa: E402

S3_BUCKET = os.environ.get("TIERFLOW_BENCH_S3_BUCKET", "tierflow-bench")
PREFIX = os.environ.get("TIERFLOW_BENCH_PREFIX", "texts/")
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
         "sigma tau upsilon phi chi psi omega").split()
DEFINITIONS = {
    "namespace": "bench",
    "buckets": [{"bucket_name": "texts", "storage": {"s3_bucket": S3_BUCKET, "prefix": PREFIX},
                 "bucket_schema": {"properties": {"content": {"type": "text"}}}, "unique_key": {"fields": ["key"]}}],
    "collections": [
        {"collection_name": "chunks", "source": {"type": "bucket", "bucket_ids": ["texts"]},
         "feature_extractor": {"feature_extractor_name": "text_extractor",
                               "parameters": {"split_by": "words", "chunk_size": 3, "embedding_dimension": 0}}},
        {"collection_name": "copies", "source": {"type": "collection", "collection_ids": ["chunks"]},
         "feature_extractor": {"feature_extractor_name": "passthrough_extractor"}},
    ],
}


def seed(endpoint: str, count: int) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    try:
        s3.create_bucket(Bucket=S3_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass  # a real store's bench bucket from an earlier run: each size has its own prefix

    def put(i: int) -> None:
        text = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(30))
        s3.put_object(Bucket=S3_BUCKET, Key=f"{PREFIX}{i:07d}.txt", Body=text.encode(), ContentType="text/plain")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def _apply(tmp: str) -> dict[str, str]:
    import yaml

    from tierflow.catalog import resources
    from tierflow.catalog.engine import open_session
    from tierflow.definitions import apply_file
    from tierflow.settings import get_settings

    path = Path(tmp) / "bench.yaml"
    path.write_text(yaml.safe_dump(DEFINITIONS))
    report = apply_file(path)
    with open_session(get_settings().database_url) as session:
        return {c["collection_name"]: c["collection_id"]
                for c in resources.list_collections(session, namespace_id=report.namespace_id)}


def _warm_up() -> None:
    """Start Prefect's temporary API (about 4 s) before the clock runs."""
    from prefect import flow

    @flow(name="warm-up")
    def warm_up() -> None:
        """Nothing: its run starts the API."""

    warm_up()


def _count_documents() -> int:
    from sqlalchemy import func, select

    from tierflow.catalog.engine import open_session
    from tierflow.catalog.schema import documents
    from tierflow.settings import get_settings

    with open_session(get_settings().database_url) as session:
        return int(session.execute(select(func.count()).select_from(documents)).scalar_one())


class _Clock:
    """Timestamps of tierflow's steps, taken by wrapping the core functions the flows call (the
    chunk tasks run in this process's threads), so the bench sees where a tier's time goes."""

    def __init__(self) -> None:
        self.chunks: dict[int, list[tuple[float, float]]] = {}
        self.roots_selected = 0.0
        self.finished: dict[int, float] = {}

    def install(self) -> None:
        from tierflow import batches, processing, selection

        run_chunk, select, finish = processing.process_chunk, selection.select_tier_inputs, batches.finish_tier

        def timed_chunk(**kwargs: Any) -> Any:
            started = time.perf_counter()
            result = run_chunk(**kwargs)
            self.chunks.setdefault(kwargs["tier_num"], []).append((started, time.perf_counter()))
            return result

        def timed_select(**kwargs: Any) -> Any:
            result = select(**kwargs)
            if kwargs["tier_num"] == 0:
                self.roots_selected = time.perf_counter()  # tier 0 can start once its inputs are chosen
            return result

        def timed_finish(**kwargs: Any) -> Any:
            result = finish(**kwargs)
            self.finished[kwargs["tier_num"]] = time.perf_counter()
            return result

        processing.process_chunk = timed_chunk  # the tasks call the core through its modules
        selection.select_tier_inputs = timed_select
        batches.finish_tier = timed_finish

    def overhead(self) -> list[float]:
        """Per tier, the time it could have worked and did not: from the moment it could start
        (tier 0: its inputs chosen; a lower tier: the first chunk of the tier above ended) to its
        first chunk, plus from its last chunk to its close."""
        out = []
        for tier, spans in sorted(self.chunks.items()):
            ready = self.roots_selected if tier == 0 else min(end for _, end in self.chunks[tier - 1])
            first, last = min(s for s, _ in spans), max(e for _, e in spans)
            out.append(round(max(first - ready, 0.0) + self.finished[tier] - last, 3))
        return out


POLL_SECONDS = 0.2


class _Poller:
    """Reads the running batch's view (what `GET /v1/batches/{id}` answers) every `every`
    seconds in a thread of the batch's own process, the harshest place for it: it competes with
    the batch for the interpreter as well as for the catalog."""

    def __init__(self, every: float) -> None:
        import threading

        self.every, self.reads_ms = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from sqlalchemy import select

        from tierflow.batch_view import batch_view
        from tierflow.catalog.engine import open_session
        from tierflow.catalog.schema import batches
        from tierflow.settings import get_settings

        batch_id = None
        while not self._stop.wait(self.every):
            started = time.perf_counter()
            if batch_id is None:
                with open_session(get_settings().database_url) as session:
                    batch_id = session.execute(select(batches.c.batch_id)).scalar()
            if batch_id is not None:
                batch_view(batch_id)
                self.reads_ms.append((time.perf_counter() - started) * 1000)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        reads = sorted(self.reads_ms)
        return {"polls": len(reads), "poll_p95_ms": round(reads[int(len(reads) * 0.95)], 1) if reads else None}


def run_tierflow(tmp: str, poll: float | None = None) -> dict[str, Any]:
    import asyncio

    from flows.trigger import trigger_collection
    from tierflow.batch_view import batch_view

    _warm_up()
    _apply(tmp)
    clock = _Clock()
    clock.install()
    started, cpu = time.perf_counter(), time.process_time()
    poller = _Poller(poll) if poll else None
    response = asyncio.run(trigger_collection("bench", "chunks"))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    polled = poller.stop() if poller else {}
    view = batch_view(response["batch_id"])
    first = min(end for spans in clock.chunks.values() for _, end in spans)  # a chunk's documents commit at its end
    return {"seconds": seconds, "cpu_s": round(cpu, 2), "documents": _count_documents(), "status": view["status"],
            "tier_ms": [t["duration_ms"] for t in view["tier_tasks"]],
            "tier_overhead_s": clock.overhead(), "first_document_s": round(first - started, 3),
            "tier_chunk_s": [round(sum(e - s for s, e in spans), 3) for _, spans in sorted(clock.chunks.items())],
            "tier_chunks": [len(spans) for _, spans in sorted(clock.chunks.items())], **polled}


def _split(text: str) -> list[str]:
    from tierflow.extractors.text import TextParameters, split_text

    return split_text(text, TextParameters(split_by="words", chunk_size=3))


def _document(collection_id: str, document_id: str, fields: dict[str, Any], source: str, root: str) -> dict[str, Any]:
    now = "2026-01-01T00:00:00.000000+00:00"
    return {"document_id": document_id, "collection_id": collection_id, "namespace_id": "bench", "batch_id": None,
            "root_object_id": root, "source_id": source, "fields": fields, "lineage": {"root_object_id": root},
            "created_at": now, "updated_at": now}


def run_handwritten(tmp: str, endpoint: str) -> dict[str, Any]:
    import boto3
    from sqlalchemy import insert

    from tierflow.catalog.engine import get_engine
    from tierflow.catalog.schema import documents
    from tierflow.ids import new_id
    from tierflow.settings import get_settings

    ids = _apply(tmp)
    engine = get_engine(get_settings().database_url)
    started, cpu = time.perf_counter(), time.process_time()
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = [e["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET, Prefix=PREFIX)
            for e in page.get("Contents", [])]

    def get(key: str) -> tuple[str, str]:
        return key, s3.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read().decode()

    for start in range(0, len(keys), 200):
        with ThreadPoolExecutor(16) as pool:
            texts = list(pool.map(get, keys[start:start + 200]))
        tier1 = [_document(ids["chunks"], new_id("doc"), {"text": c, "chunk_index": i}, key, key)
                 for key, text in texts for i, c in enumerate(_split(text))]
        tier2 = [_document(ids["copies"], new_id("doc"), d["fields"], d["document_id"], d["root_object_id"])
                 for d in tier1]
        with engine.begin() as conn:
            conn.execute(insert(documents), tier1)
            conn.execute(insert(documents), tier2)
    return {"seconds": time.perf_counter() - started, "cpu_s": round(time.process_time() - cpu, 2),
            "documents": _count_documents(), "status": "COMPLETED"}


def run_naive(tmp: str, endpoint: str) -> dict[str, Any]:
    import boto3
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner
    from sqlalchemy import insert

    from tierflow.catalog.engine import get_engine
    from tierflow.catalog.schema import documents
    from tierflow.ids import new_id
    from tierflow.settings import get_settings

    ids = _apply(tmp)
    engine = get_engine(get_settings().database_url)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    @task
    def chunk_object(key: str) -> list[dict[str, Any]]:
        text = s3.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read().decode()
        rows = [_document(ids["chunks"], new_id("doc"), {"text": c, "chunk_index": i}, key, key)
                for i, c in enumerate(_split(text))]
        with engine.begin() as conn:
            conn.execute(insert(documents), rows)
        return rows

    @task
    def copy_documents(rows: list[dict[str, Any]]) -> None:
        with engine.begin() as conn:
            conn.execute(insert(documents), [
                _document(ids["copies"], new_id("doc"), d["fields"], d["document_id"], d["root_object_id"])
                for d in rows])

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=16))
    def naive() -> None:
        keys = [e["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET, Prefix=PREFIX)
                for e in page.get("Contents", [])]
        chunks = chunk_object.map(keys)
        copy_documents.map(chunks).wait()

    _warm_up()
    started, cpu = time.perf_counter(), time.process_time()
    naive()
    return {"seconds": time.perf_counter() - started, "cpu_s": round(time.process_time() - cpu, 2),
            "documents": _count_documents(), "status": "COMPLETED"}


def child(contender: str, endpoint: str) -> None:
    """Run one contender in this process and print its figures as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TIERFLOW_DATABASE_URL"] = f"sqlite:///{tmp}/catalog.db"
        os.environ["TIERFLOW_S3_ENDPOINT_URL"] = endpoint
        runner = {"tierflow": lambda: run_tierflow(tmp), "handwritten": lambda: run_handwritten(tmp, endpoint),
                  "naive": lambda: run_naive(tmp, endpoint), "polled": lambda: run_tierflow(tmp, poll=POLL_SECONDS)
                  }[contender]
        heap = HeapSampler().start()
        result = runner()
        result["heap"] = heap.summary()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print_result(result)


def measure(contender: str, endpoint: str) -> dict[str, Any]:
    """One contender's run in a process of its own, on Prefect's settings as the user has them:
    logs at Prefect's default level (INFO) unless PREFECT_LOGGING_LEVEL says otherwise. Naive
    Prefect logs a line per task run (4,000 at 2,000 objects, printed and sent to the API), as a
    first attempt would; at WARNING it took 13% less time (37.3 against 42.9 s at 2,000 objects,
    medians of two alternating runs) and tierflow the same (6.82 against 6.61 s)."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    if contender in ("tierflow", "polled"):  # as `tierflow` and the flows configure their process (tierflow/process.py)
        env.setdefault("MALLOC_ARENA_MAX", str(MALLOC_ARENAS))
    else:  # a script of one's own runs on glibc's default arenas
        env.pop("MALLOC_ARENA_MAX", None)
    return run_contender([sys.executable, __file__, "--child", contender, "--endpoint", endpoint], env, contender)


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall time (of two, the faster), with every run's seconds beside it."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    return {**ordered[(len(ordered) - 1) // 2], "all_seconds": [round(r["seconds"], 2) for r in runs]}


def _wait_for_port(port: int) -> None:
    """Until moto's server accepts connections (it starts in about a second)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """Moto's S3 server in a process of its own on a free port, once it accepts connections."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port)
    except OSError:
        server.terminate()
        raise
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    global PREFIX
    default_credentials()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--large", action="store_true", help="also run 100,000 objects (about fifteen minutes)")
    parser.add_argument("--contenders", nargs="+", default=["handwritten", "tierflow", "naive"],
                        choices=["handwritten", "tierflow", "naive", "polled"],
                        help="polled: tierflow while a thread of its process reads the batch's view every 0.2 s")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every contender per size; the table shows each one's median run")
    parser.add_argument("--skip-naive-above", type=int, default=2000,
                        help="naive Prefect takes minutes per thousand objects beyond this")
    parser.add_argument("--child")
    parser.add_argument("--endpoint", help="an S3 endpoint to use instead of moto's server (credentials from AWS_*)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.endpoint)
        return
    results = []
    for count in [*args.objects, *([100_000] if args.large else [])]:
        server = None
        if args.endpoint:  # a configured store (MinIO, S3): this size gets its own prefix
            endpoint = args.endpoint
            os.environ["TIERFLOW_BENCH_PREFIX"] = PREFIX = f"bench-{count}-{int(time.time())}/"
        else:
            server, endpoint = start_moto()
        try:
            seed(endpoint, count)
            row: dict[str, Any] = {"objects": count}
            contenders = [c for c in args.contenders if not (c == "naive" and count > args.skip_naive_above)]
            runs: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
            for _ in range(args.repeat):  # rounds of every contender, so that drift hits each alike
                for contender in contenders:
                    runs[contender].append(measure(contender, endpoint))
            for contender, measured in runs.items():
                row[contender] = _median_run(measured)
            results.append(row)
        finally:
            if server is not None:
                server.terminate()
                server.wait()
    report(results)


TARGETS = ("tierflow >= 0.8x hand-written at 10k, >= 6x naive, RSS 100k <= 1.2x 10k, tier overhead <= 0.3 s, "
           "first document <= 2 s")


def report(results: list[dict[str, Any]]) -> None:
    """Print the table and the targets, and write bench/results/pipeline.json."""
    print(f"{'objects':>8} {'contender':<12} {'seconds':>8} {'CPU s':>7} {'obj/s':>7} {'docs/s':>7} {'RSS MB':>7} "
          f"{'vs hand':>8} {'vs naive':>8}  {'tier overhead s':<16} {'1st doc s':>9}")
    for row in results:
        for contender in ("handwritten", "tierflow", "polled", "naive"):
            if contender not in row:
                continue
            r = row[contender]
            r["objects_per_s"] = round(row["objects"] / r["seconds"], 1)
            r["documents_per_s"] = round(r["documents"] / r["seconds"], 1)
            if "handwritten" in row:
                r["vs_handwritten"] = round(row["handwritten"]["seconds"] / r["seconds"], 3)
            if "naive" in row:
                r["vs_naive"] = round(row["naive"]["seconds"] / r["seconds"], 2)
            overhead = " ".join(f"{o:.2f}" for o in r.get("tier_overhead_s", [])) or "-"
            first = f"{r['first_document_s']:.2f}" if "first_document_s" in r else "-"
            vs_naive = f"{r['vs_naive']:.1f}x" if "vs_naive" in r else "-"
            vs_hand = f"{r['vs_handwritten']:.2f}x" if "vs_handwritten" in r else "-"
            print(f"{row['objects']:>8} {contender:<12} {r['seconds']:>8.2f} {r['cpu_s']:>7.1f} "
                  f"{r['objects_per_s']:>7.0f} "
                  f"{r['documents_per_s']:>7.0f} {r['peak_rss_mb']:>7} {vs_hand:>8} {vs_naive:>8}  "
                  f"{overhead:<16} {first:>9}")
            if len(r["all_seconds"]) > 1:
                print(f"{'':>8} {'':<12} seconds of each run: {', '.join(map(str, r['all_seconds']))}")
            if r.get("polls"):
                print(f"{'':>8} {'':<12} batch view read {r['polls']} times, p95 {r['poll_p95_ms']} ms")
            if r.get("heap"):
                print(f"{'':>8} {'':<12} MB, min-max: " + ", ".join(
                    f"{name[:-3].replace('_', ' ')} {low}-{high}" for name, (low, high) in r["heap"].items()))
    rss = {row["objects"]: row["tierflow"]["peak_rss_mb"] for row in results if "tierflow" in row}
    if 10_000 in rss and 100_000 in rss:
        print(f"peak RSS 100k / 10k: {rss[100_000] / rss[10_000]:.2f}x")
    print(f"targets: {TARGETS}")
    save_results("pipeline", {"targets": TARGETS, "runs": results})


if __name__ == "__main__":
    main()
