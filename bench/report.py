"""Refresh the latest figures in docs/benchmarks.md from bench/results/*.json.

`make bench` runs it last. It rewrites only what lies between the `<!-- latest:start -->` and
`<!-- latest:end -->` markers: the table of the last `bench/pipeline.py` run and one line for
each other benchmark whose results are there. The method, the history and the reasons around it
are written by hand.

    python bench/report.py [--check]   # --check: exit 1 if the page is not up to date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PAGE = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- latest:start -->", "<!-- latest:end -->"
CONTENDERS = {"handwritten": "hand-written", "tierflow": "tierflow", "polled": "tierflow, polled every 0.2 s",
              "naive": "naive Prefect"}


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _ratio(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}×"


def pipeline_table(results: dict[str, Any]) -> list[str]:
    """The markdown table of a `bench/pipeline.py` run."""
    lines = ["| objects | contender | seconds | CPU s | objects/s | vs hand-written | vs naive | peak RSS MB "
             "| tier overhead s | first document s |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for row in results["runs"]:
        for key, label in CONTENDERS.items():
            run = row.get(key)
            if run is None:
                continue
            overhead = ", ".join(f"{o:.2f}" for o in run.get("tier_overhead_s", []))
            first = f"{run['first_document_s']:.2f}" if "first_document_s" in run else ""
            lines.append(f"| {row['objects']:,} | {label} | {run['seconds']:.2f} | {run['cpu_s']:.1f} "
                         f"| {run['objects_per_s']:.0f} | {_ratio(run.get('vs_handwritten'), 2)} "
                         f"| {_ratio(run.get('vs_naive'), 1)} | {run['peak_rss_mb']:.0f} | {overhead} | {first} |")
    return lines


def other_lines() -> list[str]:
    """One line per other benchmark with results."""
    lines = []
    filters = _load("filters")
    if filters:
        lines.append(f"- Filter pushdown: SQL {filters['speedup']}× faster than Python.")
    reads = _load("reads")
    if reads:
        lines.append(f"- Presigned reads: {reads['own_cpu_ratio']:.2f}× botocore's processor time per GET, "
                     f"{reads['wall_ratio']:.2f}× its wall time.")
    rest = _load("rest")
    if rest:
        small = rest["small"]
        lines.append(f"- Through `tierflow serve`'s REST API, a 20-object batch: first document "
                     f"{small['first_document_s_median']:.2f} s and COMPLETED {small['completed_s_median']:.2f} s "
                     f"after the request (medians of {len(small['runs'])}).")
        if "concurrent" in rest:
            c = rest["concurrent"]
            lines.append(f"- {c['batches']} such batches triggered at once: all {'/'.join(c['statuses'])} "
                         f"{c['all_completed_s']:.1f} s after the requests.")
        lines.extend(f"- REST, {row['objects']:,} objects polled every 0.2 s: {row['rest']['vs_handwritten']:.2f}× the "
                     f"hand-written script; GET /v1/batches/{{id}} p95 {row['rest']['poll_p95_ms']} ms."
                     for row in rest.get("sizes", []))
    peers = _load("peers")
    if peers:
        lines.extend(f"- LlamaIndex IngestionPipeline, {row['objects']:,} objects ({row['llamaindex']['workers']} "
                     f"worker(s)): tierflow {row['tierflow_vs_llamaindex']:.2f}× its throughput; re-run "
                     f"{row['tierflow']['rerun_s']:.2f} s against {row['llamaindex']['rerun_s']:.2f} s."
                     for row in peers["runs"])
    scale = _load("scale_out")
    if scale:
        runs = scale["runs"]
        lines.append("- Scale-out, " + ", ".join(f"{name} {r['seconds']:.2f} s" for name, r in runs.items())
                     + f" ({scale['objects']:,} objects, {scale['cores']} cores).")
    search = _load("search")
    if search:
        rows = [r for r in search.get("search", []) if r["filter"] == "none"]
        lines.extend(f"- Search, {r['backend']}, {r['documents']:,} documents: p95 {r['p95_ms']} ms, "
                     f"recall@10 {r['recall_at_10']}." for r in rows)
    return lines


def latest_section() -> str:
    """What goes between the markers."""
    pipeline = _load("pipeline")
    lines = [START, ""]
    if pipeline:
        lines += ["The last `bench/pipeline.py` run whose results are in `bench/results/pipeline.json`:", "",
                  *pipeline_table(pipeline), "", f"Targets: {pipeline['targets']}.", ""]
    others = other_lines()
    if others:
        lines += [*others, ""]
    lines.append(END)
    return "\n".join(lines)


def refreshed(page: str) -> str:
    """The page with its latest figures replaced."""
    if START not in page or END not in page:
        raise SystemExit(f"{PAGE.relative_to(ROOT)} has no {START} … {END} section")
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + latest_section() + tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/benchmarks.md is not up to date")
    args = parser.parse_args()
    page = PAGE.read_text()
    new = refreshed(page)
    if args.check:
        sys.exit(0 if new == page else 1)
    PAGE.write_text(new)
    print(f"refreshed {PAGE.relative_to(ROOT)} from {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
