"""Benchmark: a 3-condition filter over N catalog objects, SQL pushdown vs filtering in Python.

Both sides answer the same question on the same SQLite catalog: the ids of the objects of one
bucket that match
    status eq "pending" (case-insensitive)  AND  metadata.category eq "news"  AND  size_bytes gt 50000
The Python side streams the bucket's rows and evaluates the filter on each record dict (what a
catalog without pushdown would do); the SQL side runs the compiled filter in the database, where
the (bucket_id, status) index narrows the scan. Prints a table and writes bench/results/filters.json.

    python bench/filter_pushdown.py [--objects 1000000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import save_results  # noqa: E402
from tierflow.catalog.engine import get_engine  # noqa: E402
from tierflow.catalog.records import object_field, object_record  # noqa: E402
from tierflow.catalog.schema import buckets, namespaces, objects  # noqa: E402
from tierflow.filters import compile_filter, evaluate, parse_filter  # noqa: E402

FILTER = {"AND": [
    {"field": "status", "operator": "eq", "value": "pending"},
    {"field": "metadata.category", "operator": "eq", "value": "news"},
    {"field": "size_bytes", "operator": "gt", "value": 50_000},
]}
CATEGORIES = ["news", "sport", "science", "history", "cooking", "travel", "music", "film", "art", "code"]


def populate(url: str, count: int) -> None:
    engine = get_engine(url)
    stamp = "2026-01-01T00:00:00.000000+00:00"
    rng = random.Random(7)
    with engine.begin() as conn:
        conn.execute(insert(namespaces).values(
            namespace_id="ns_b", namespace_name="bench", created_at=stamp, updated_at=stamp))
        conn.execute(insert(buckets).values(bucket_id="bkt_b", namespace_id="ns_b", bucket_name="b", bucket_schema={},
                                            metadata={}, created_at=stamp, updated_at=stamp))
    step = 50_000
    for start in range(0, count, step):
        rows = [{
            "object_id": f"obj_{i:09d}", "bucket_id": "bkt_b", "namespace_id": "ns_b", "key": f"k/{i}.txt",
            "key_prefix": "k/", "size_bytes": rng.randrange(100_000), "etag": "e", "content_type": "text/plain",
            "last_modified": stamp, "metadata": {"category": rng.choice(CATEGORIES), "n": i},
            "blobs": [], "status": "PENDING" if rng.random() < 0.1 else "COMPLETED",
            "created_at": stamp, "updated_at": stamp,
        } for i in range(start, min(count, start + step))]
        with engine.begin() as conn:
            conn.execute(insert(objects), rows)


def in_python(url: str) -> tuple[set[str], float]:
    node = parse_filter(FILTER)
    started = time.perf_counter()
    with get_engine(url).connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
            select(objects).where(objects.c.bucket_id == "bkt_b"))
        ids = {row["object_id"] for row in result.mappings() if evaluate(node, object_record(row))}
    return ids, time.perf_counter() - started


def in_sql(url: str) -> tuple[set[str], float]:
    started = time.perf_counter()
    condition = compile_filter(parse_filter(FILTER), object_field)
    with get_engine(url).connect() as conn:
        ids = set(conn.execute(select(objects.c.object_id).where(objects.c.bucket_id == "bkt_b", condition)).scalars())
    return ids, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        started = time.perf_counter()
        populate(url, args.objects)
        print(f"populated {args.objects:,} objects in {time.perf_counter() - started:.1f}s")
        python_ids, python_s = in_python(url)
        sql_ids, sql_s = in_sql(url)
        assert python_ids == sql_ids, "the two backends disagree"
        with get_engine(url).connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + str(select(objects.c.object_id).where(
                    objects.c.bucket_id == "bkt_b", compile_filter(parse_filter(FILTER), object_field)
                ).compile(compile_kwargs={"literal_binds": True}))).fetchall()
    result = {
        "objects": args.objects, "matches": len(sql_ids), "python_seconds": round(python_s, 3),
        "sql_seconds": round(sql_s, 3), "speedup": round(python_s / sql_s, 1),
        "plan": [row[-1] for row in plan],
    }
    print(f"{'backend':<10}{'seconds':>10}{'matches':>10}")
    print(f"{'python':<10}{python_s:>10.3f}{len(python_ids):>10}")
    print(f"{'sql':<10}{sql_s:>10.3f}{len(sql_ids):>10}")
    print(f"SQL pushdown is {result['speedup']}x faster; plan: {'; '.join(result['plan'])}")
    save_results("filters", result)


if __name__ == "__main__":
    main()
