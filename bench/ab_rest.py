"""A/B of two checkouts through `tierflow serve`: one N-object batch each, alternated, polled
every 0.2 s as bench/rest.py polls it; prints each run's GET p95, slowest read and seconds.

Why: a change to the server's read path or to the runs shows in GET latency and throughput only
under the same load, and the machine drifts between runs; alternating puts both under the same.

    python bench/ab_rest.py OTHER_CHECKOUT [--objects 10000] [--rounds 3]

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
    args = parser.parse_args()
    checkouts = {"other": args.other.resolve(), "this": ROOT}
    moto, endpoint = pipeline.start_moto()
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


if __name__ == "__main__":
    main()
