"""Benchmark: processor time per object read, botocore's GetObject against tierflow's presigned GET
(tierflow/presigned_reads.py), on one client and one store, in alternating rounds.

    python bench/reads.py [--objects 1000] [--rounds 6] [--threads 16] [--endpoint URL]

Each round reads every object once each way from `--threads` threads (tierflow's I/O pool size).
Prints, as medians over the rounds: wall seconds, this process's processor time per GET, and
(for moto's server, started here unless --endpoint is given) the store's processor time per GET;
writes bench/results/reads.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import save_results  # noqa: E402
from bench.pipeline import PREFIX, S3_BUCKET, seed, start_moto  # noqa: E402


def _process_seconds(pid: int | None) -> float:
    """Processor seconds of another process so far (Linux's /proc); 0 when unknown."""
    if pid is None or not os.path.exists(f"/proc/{pid}/stat"):
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--endpoint", help="an S3 endpoint to use instead of moto's server (credentials from AWS_*)")
    args = parser.parse_args()

    from tierflow.storage import read_object, s3_client

    server: subprocess.Popen[bytes] | None = None
    endpoint = args.endpoint or ""
    if not args.endpoint:
        server, endpoint = start_moto()
    try:
        seed(endpoint, args.objects)
        client = s3_client(endpoint, None)
        keys = [f"{PREFIX}{i:07d}.txt" for i in range(args.objects)]
        ways: dict[str, Callable[[str], bytes]] = {
            "botocore": lambda key: client.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read(),
            "presigned": lambda key: read_object(client, S3_BUCKET, key).body,
        }
        figures: dict[str, list[tuple[float, float, float]]] = {way: [] for way in ways}
        with ThreadPoolExecutor(args.threads) as pool:
            for _ in range(args.rounds):
                for way, read in ways.items():
                    store, cpu, started = (_process_seconds(server and server.pid), time.process_time(),
                                           time.perf_counter())
                    if not all(pool.map(read, keys)):
                        raise SystemExit(f"{way}: an object read back empty")
                    figures[way].append((time.perf_counter() - started, time.process_time() - cpu,
                                         _process_seconds(server and server.pid) - store))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    print(f"{args.objects} objects, {args.rounds} rounds, {args.threads} threads; medians")
    print(f"{'way':<10} {'wall s':>7} {'own CPU ms/GET':>15} {'store CPU ms/GET':>17}")
    medians = {way: [statistics.median(f[i] for f in runs) for i in range(3)] for way, runs in figures.items()}
    for way, (wall, cpu, store) in medians.items():
        store_ms = f"{store / args.objects * 1000:.2f}" if server is not None else "-"
        print(f"{way:<10} {wall:>7.2f} {cpu / args.objects * 1000:>15.2f} {store_ms:>17}")
    (wall_b, cpu_b, _), (wall_p, cpu_p, _) = medians["botocore"], medians["presigned"]
    print(f"presigned / botocore: own CPU {cpu_p / cpu_b:.2f}x, wall {wall_p / wall_b:.2f}x")
    save_results("reads", {
        "objects": args.objects, "rounds": args.rounds, "threads": args.threads,
        "medians": {way: dict(zip(("wall_s", "own_cpu_s", "store_cpu_s"), m, strict=True))
                    for way, m in medians.items()},
        "own_cpu_ratio": cpu_p / cpu_b, "wall_ratio": wall_p / wall_b})


if __name__ == "__main__":
    main()
