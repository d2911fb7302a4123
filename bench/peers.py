"""Benchmark: tierflow against a real peer, LlamaIndex's `IngestionPipeline`, on the same work.

The work is bench/pipeline.py's: N text objects of 30 words in S3 (moto's server in its own
process), split into 3-word chunks, each chunk then copied by a second step, everything stored,
then the same run again on unchanged data (a re-run must find nothing to do).

- tierflow:   `trigger_collection` in-process on bench/pipeline.py's definitions (a unique key,
              so documents are upserted), then a re-run asking for new or changed inputs only
              (`dedup_strategy: skip`);
- LlamaIndex: a boto3 loader (the hand-written script's listing and 16 concurrent GETs) into
              `Document`s keyed by their S3 key, an `IngestionPipeline` of a splitter (LlamaIndex's
              `TextSplitter` cutting 3-word chunks, as tierflow does) and a copying step, a
              `SimpleDocumentStore` with the `upserts` strategy (with a `SimpleVectorStore`, which
              that strategy needs), the chunks and copies kept in a second document store, both
              persisted to disk; the re-run loads and runs the same pipeline again. It runs with
              each `num_workers` given and the table shows the fastest.

    python bench/peers.py [--objects 2000 10000] [--workers 1 2]

Each contender runs in a process of its own. Peak RSS is the process's own, and for LlamaIndex's
worker processes the largest of theirs. Prints a table and writes bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llama_index.core.node_parser import TextSplitter  # noqa: E402
from llama_index.core.schema import NodeRelationship, TextNode, TransformComponent  # noqa: E402

from bench import pipeline  # noqa: E402
from bench.harness import default_credentials, print_result, run_contender, save_results  # noqa: E402

CHUNK_WORDS = 3
TARGET = "tierflow ahead of LlamaIndex's IngestionPipeline in throughput (the ratio is reported whatever it is)"


class WordSplitter(TextSplitter):  # type: ignore[misc]
    """LlamaIndex's splitter machinery cutting by words, as tierflow's `text_extractor` does
    (`split_by: words`); LlamaIndex's own token splitter counts metadata into the chunk size and
    loses a custom tokenizer in its worker processes."""

    chunk_words: int = CHUNK_WORDS

    def split_text(self, text: str) -> list[str]:
        words = text.split()
        return [" ".join(words[i:i + self.chunk_words]) for i in range(0, len(words), self.chunk_words)]


def _load_documents(endpoint: str) -> list[Any]:
    """The bucket's objects as LlamaIndex documents, read as the hand-written script reads them."""
    import boto3
    from llama_index.core import Document

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = [e["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=pipeline.S3_BUCKET, Prefix=pipeline.PREFIX) for e in page.get("Contents", [])]

    def get(key: str) -> Any:
        text = s3.get_object(Bucket=pipeline.S3_BUCKET, Key=key)["Body"].read().decode()
        return Document(id_=key, text=text)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(get, keys))


class Copies(TransformComponent):  # type: ignore[misc]
    """The second tier's work: each chunk, and a copy of it that points at it (at module level, so
    that LlamaIndex's worker processes can unpickle it)."""

    def __call__(self, nodes: Any, **kwargs: Any) -> Any:
        copies = [TextNode(text=n.text, relationships={NodeRelationship.SOURCE: n.as_related_node_info()})
                  for n in nodes]
        return [*nodes, *copies]


def run_llamaindex(tmp: str, endpoint: str, workers: int) -> dict[str, Any]:
    from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.core.vector_stores import SimpleVectorStore

    docstore, outputs = SimpleDocumentStore(), SimpleDocumentStore()
    ingestion = IngestionPipeline(
        transformations=[WordSplitter(), Copies()],
        docstore=docstore, vector_store=SimpleVectorStore(), docstore_strategy=DocstoreStrategy.UPSERTS,
        disable_cache=True)

    def once() -> tuple[float, int]:
        started = time.perf_counter()
        nodes = ingestion.run(documents=_load_documents(endpoint), num_workers=workers)
        outputs.add_documents(nodes)
        docstore.persist(f"{tmp}/docstore.json")
        outputs.persist(f"{tmp}/outputs.json")
        return time.perf_counter() - started, len(nodes)

    seconds, made = once()
    rerun, remade = once()
    return {"seconds": seconds, "documents": made, "rerun_s": round(rerun, 2), "rerun_documents": remade,
            "workers": workers, "stored": len(outputs.docs)}


def run_tierflow(tmp: str) -> dict[str, Any]:
    import asyncio

    from flows.trigger import trigger_collection
    from tierflow.models.trigger import TriggerRequest

    pipeline._warm_up()
    pipeline._apply(tmp)
    started = time.perf_counter()
    response = asyncio.run(trigger_collection("bench", "chunks"))
    seconds = time.perf_counter() - started
    documents = pipeline._count_documents()
    started = time.perf_counter()
    again = asyncio.run(trigger_collection("bench", "chunks", TriggerRequest(dedup_strategy="skip")))
    return {"seconds": seconds, "documents": documents, "rerun_s": round(time.perf_counter() - started, 2),
            "rerun_documents": pipeline._count_documents() - documents, "batch_id": response["batch_id"],
            "rerun_objects": again.get("object_count")}


def child(contender: str, endpoint: str, workers: int) -> None:
    """Run one contender in this process and print its figures as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TIERFLOW_DATABASE_URL"] = f"sqlite:///{tmp}/catalog.db"
        os.environ["TIERFLOW_S3_ENDPOINT_URL"] = endpoint
        result = run_tierflow(tmp) if contender == "tierflow" else run_llamaindex(tmp, endpoint, workers)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["workers_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print_result(result)


def measure(contender: str, endpoint: str, workers: int = 0) -> dict[str, Any]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    return run_contender([sys.executable, __file__, "--child", contender, "--endpoint", endpoint,
                          "--child-workers", str(workers)], env, contender)


def main() -> None:
    default_credentials()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[2000, 10_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="LlamaIndex's num_workers to try; the fastest is compared")
    parser.add_argument("--child")
    parser.add_argument("--child-workers", type=int, default=0)
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.endpoint, args.child_workers)
        return
    rows = []
    for count in args.objects:
        server, endpoint = pipeline.start_moto()
        try:
            pipeline.seed(endpoint, count)
            tierflow = measure("tierflow", endpoint)
            tries = [measure("llamaindex", endpoint, workers) for workers in args.workers]
            rows.append({"objects": count, "tierflow": tierflow, "llamaindex": min(tries, key=lambda r: r["seconds"]),
                         "llamaindex_tries": tries})
        finally:
            server.terminate()
            server.wait()
    report(rows)


def report(rows: list[dict[str, Any]]) -> None:
    """Print the table and write bench/results/peers.json."""
    print(f"{'objects':>8} {'contender':<22} {'seconds':>8} {'obj/s':>7} {'docs':>7} {'RSS MB':>7} "
          f"{'re-run s':>8} {'tierflow ahead':>14}")
    for row in rows:
        row["tierflow_vs_llamaindex"] = round(row["llamaindex"]["seconds"] / row["tierflow"]["seconds"], 2)
        for name, r in (("tierflow", row["tierflow"]),
                        *((f"LlamaIndex, {t['workers']} worker(s)", t) for t in row["llamaindex_tries"])):
            rss = max(r["peak_rss_mb"], r["workers_peak_rss_mb"])
            ahead = f"{row['tierflow_vs_llamaindex']:.2f}x" if r is row["tierflow"] else ""
            print(f"{row['objects']:>8} {name:<22} {r['seconds']:>8.2f} {row['objects'] / r['seconds']:>7.0f} "
                  f"{r['documents']:>7} {rss:>7} {r['rerun_s']:>8.2f} {ahead:>14}")
    print(f"target: {TARGET}")
    save_results("peers", {"target": TARGET, "runs": rows})


if __name__ == "__main__":
    main()
