"""Benchmark: a CPU-bound tier on threads, on one Dask worker and on two.

Workload: N long text objects (20,000 words each) in moto's S3 server, one collection that splits
them into 200-word chunks and computes a 64-dimension hashing embedding per chunk: Python work
that one interpreter lock serialises on threads. Each contender runs in its own process on the
same data with a fresh SQLite catalog:

- threads:  the default task runner (chunk tasks on threads of the flow's process);
- dask-1:   `TIERFLOW_TASK_RUNNER=dask` on a LocalCluster of 1 single-threaded worker process;
- dask-2:   the same with 2 worker processes.

The cluster is started before the clock, as a long-lived cluster would be
(`TIERFLOW_DASK_ADDRESS`). Speed-ups are ratios of wall times within this run.

    python bench/scale_out.py [--objects 150]

Prints a table and writes bench/results/scale_out.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline import _wait_for_port, _warm_up  # noqa: E402

from bench.harness import default_credentials, print_result, run_contender, save_results  # noqa: E402
from cli.demo import free_port  # noqa: E402

S3_BUCKET = "tierflow-scale"
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
         "sigma tau upsilon phi chi psi omega").split()
DEFINITIONS = {
    "namespace": "scale",
    "buckets": [{"bucket_name": "texts", "storage": {"s3_bucket": S3_BUCKET, "prefix": "texts/"},
                 "bucket_schema": {"properties": {"content": {"type": "text"}}}, "unique_key": {"fields": ["key"]}}],
    "collections": [
        {"collection_name": "embedded", "source": {"type": "bucket", "bucket_ids": ["texts"]},
         "feature_extractor": {"feature_extractor_name": "text_extractor",
                               "parameters": {"split_by": "words", "chunk_size": 200, "embedding_dimension": 64}}},
    ],
}
WORDS_PER_OBJECT = 20_000
"""About 0.1 s of splitting and hashing per object on one core: the tier is CPU-bound."""
CHUNK = 10
"""Objects per chunk task: enough tasks for two workers to share (150 objects: 15 tasks)."""
CONTENDERS = {"threads": {}, "dask-1": {"workers": 1}, "dask-2": {"workers": 2}}


def seed(endpoint: str, count: int) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=S3_BUCKET)

    def put(i: int) -> None:
        text = " ".join(f"{WORDS[(i * 7 + j) % len(WORDS)]}{j % 97}" for j in range(WORDS_PER_OBJECT))
        s3.put_object(Bucket=S3_BUCKET, Key=f"texts/{i:06d}.txt", Body=text.encode(), ContentType="text/plain")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def child(contender: str) -> None:
    """Run one contender in this process and print its figures as JSON."""
    import asyncio

    import yaml

    from flows.trigger import trigger_collection
    from tierflow.batch_view import batch_view
    from tierflow.definitions import apply_file
    from tierflow.settings import get_settings

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TIERFLOW_DATABASE_URL"] = f"sqlite:///{tmp}/catalog.db"
        path = Path(tmp) / "scale.yaml"
        path.write_text(yaml.safe_dump(DEFINITIONS))
        apply_file(path)
        _warm_up()
        workers = CONTENDERS[contender].get("workers")
        cluster = None
        if workers:
            from distributed import LocalCluster

            # Started after the settings are in the environment: its processes inherit them.
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            os.environ.update(TIERFLOW_TASK_RUNNER="dask", TIERFLOW_DASK_ADDRESS=cluster.scheduler_address)
            get_settings.cache_clear()
        started = time.perf_counter()
        response = asyncio.run(trigger_collection("scale", "embedded"))
        seconds = time.perf_counter() - started
        view = batch_view(response["batch_id"])
        if cluster is not None:
            ran = sum(p.state_counts["memory"] for p in cluster.scheduler.task_prefixes.values())
            assert ran, "no task ran on the Dask cluster"
            cluster.close()
    print_result({"seconds": seconds, "status": view["status"], "documents": response["document_count"],
                  "tier_ms": [t["duration_ms"] for t in view["tier_tasks"]]})


def measure(contender: str, endpoint: str) -> dict[str, Any]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
           "TIERFLOW_S3_ENDPOINT_URL": endpoint, "TIERFLOW_CHUNK_SIZE": str(CHUNK)}
    return run_contender([sys.executable, __file__, "--child", contender], env, contender)


def main() -> None:
    default_credentials()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=150)
    parser.add_argument("--child", choices=sorted(CONTENDERS))
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        seed(endpoint, args.objects)
        results = {name: measure(name, endpoint) for name in CONTENDERS}
    finally:
        server.terminate()
        server.wait()
    base = results["threads"]["seconds"]
    print(f"{args.objects} objects of {WORDS_PER_OBJECT:,} words, {CHUNK} per task, 200-word chunks, "
          f"64-dimension embeddings; {os.cpu_count()} cores")
    print(f"{'contender':<9} {'seconds':>8} {'documents':>9} {'tier s':>7}  speed-up vs threads")
    for name, r in results.items():
        tier = r["tier_ms"][0] / 1000
        print(f"{name:<9} {r['seconds']:>8.2f} {r['documents']:>9} {tier:>7.2f}  {base / r['seconds']:.2f}x")
    print(f"dask-2 vs dask-1: {results['dask-1']['seconds'] / results['dask-2']['seconds']:.2f}x")
    save_results("scale_out", {"objects": args.objects, "cores": os.cpu_count(),
                                                    "runs": results})


if __name__ == "__main__":
    main()
