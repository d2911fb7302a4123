"""What the benchmarks share: running a contender in a process of its own (so that its peak RSS is
its own), moto's credentials, and writing their results under bench/results/."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
"""Where each benchmark writes its figures as JSON (`bench/report.py` reads them)."""

RESULT = "RESULT "
"""The prefix of the line a contender's process prints its figures on, as JSON."""


def default_credentials() -> None:
    """Credentials for moto's server when the environment names none."""
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)


def print_result(result: dict[str, Any]) -> None:
    """In a contender's process: hand its figures to the parent."""
    print(RESULT + json.dumps(result), flush=True)  # noqa: T201  (the parent reads stdout)


def run_contender(command: list[str], env: dict[str, str], name: str) -> dict[str, Any]:
    """Run a contender's process; the figures it printed last. Exits with its stderr's end when it
    failed or printed none."""
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith(RESULT)]
    if out.returncode or not lines:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(lines[-1][len(RESULT):]))


def save_results(name: str, results: dict[str, Any]) -> None:
    """Write a benchmark's figures to bench/results/NAME.json."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
