"""A/B of two checkouts through `tierflow serve`: one N-object batch each, alternated, polled
every 0.2 s as bench/rest.py polls it; prints each run's GET p95, slowest read and seconds.

Why: a change to the server's read path or to the runs shows in GET latency and throughput only
under the same load, and the machine drifts between runs; alternating puts both under the same.

    python bench/ab_rest.py OTHER_CHECKOUT [--objects 10000] [--rounds 3]
    python bench/ab_rest.py OTHER_CHECKOUT --small 8

With `--small N`, both servers stay up and take a 20-object batch each in turn, N times: from the
request to the first document and to COMPLETED, as bench/rest.py measures a small batch.

OTHER_CHECKOUT is a second working tree (`git worktree add /tmp/base HEAD~1`) with its own code;
both run with this checkout's Python environment. Writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import pipeline, rest  # noqa: E402
from bench.harness import default_credentials  # noqa: E402


def main() -> None:
    default_credentials()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("other", type=Path, help="the other checkout")
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", type=int, default=0, help="20-object batches each, alternated")
    args = parser.parse_args()
    checkouts = {"other": args.other.resolve(), "this": ROOT}
    moto, endpoint = pipeline.start_moto()
    if args.small:
        try:
            small(checkouts, endpoint, args.small)
        finally:
            moto.terminate()
            moto.wait()
        return
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    try:
        rest._seed(endpoint, f"big-{args.objects}/", args.objects)
        for _ in range(args.rounds):
            for name, root in checkouts.items():
                with tempfile.TemporaryDirectory() as tmp:
                    served = rest.Served(Path(tmp), endpoint, root=root)
                    try:
                        run = rest.run_big(served, args.objects, 0)
                    finally:
                        served.stop()
                runs[name].append(run)
                print(f"{name:>5}: GET p95 {run['poll_p95_ms']:.1f} ms, slowest {run['poll_max_ms']:.1f} ms, "
                      f"{run['seconds']:.2f} s", flush=True)
    finally:
        moto.terminate()
        moto.wait()
    for name, done in runs.items():
        print(f"{name:>5} ({checkouts[name]}): GET p95 " + " / ".join(f"{r['poll_p95_ms']:.1f}" for r in done)
              + " ms; seconds " + " / ".join(f"{r['seconds']:.2f}" for r in done))


def small(checkouts: dict[str, Path], endpoint: str, rounds: int) -> None:
    """Both checkouts served at once, a small batch on each in turn, `rounds` times (after one
    each that is not counted: a server's first run also warms its Prefect API)."""
    rest._seed(endpoint, "small/", rest.SMALL)
    with tempfile.TemporaryDirectory() as tmp:
        for name in checkouts:
            (Path(tmp) / name).mkdir()
        served = {name: rest.Served(Path(tmp) / name, endpoint, root=root) for name, root in checkouts.items()}
        try:
            headers = {name: server.define("small", "small/") for name, server in served.items()}
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in served}
            for round_num in range(rounds + 1):
                for name, server in served.items():
                    sent, batch_id = server.trigger(headers[name])
                    server.wait(headers[name], batch_id, every=0.05)
                    if round_num:
                        runs[name].append(server.timings(batch_id, sent))
        finally:
            for server in served.values():
                server.stop()
    for name, done in runs.items():
        firsts, ends = sorted(r["first_document_s"] for r in done), sorted(r["completed_s"] for r in done)
        print(f"{name:>5} ({checkouts[name]}): first document median {firsts[len(done) // 2]:.3f} s "
              f"({' '.join(f'{x:.2f}' for x in firsts)}); COMPLETED median {ends[len(done) // 2]:.3f} s "
              f"({' '.join(f'{x:.2f}' for x in ends)})")


if __name__ == "__main__":
    main()
