"""`tierflow demo`: the quickstart end to end on embedded defaults.

Starts moto's S3 server on loopback (a real HTTP endpoint, so tierflow talks to it exactly as to
MinIO or AWS), uploads the sample notes with their metadata, applies the quickstart definitions,
triggers the root collection and prints the response, the finished batch and a few documents,
then searches the quickstart's embeddings for a question whose answer is in one note.
The catalog is the default SQLite file, so a second run upserts: the document count stays.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer
from rich.table import Table

from cli.output import batch_table, console, documents_table, print_json, search_table

DEMO_S3_BUCKET = "tierflow-demo"
DEMO_QUERY = "why does the sea rise and fall twice a day"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(endpoint: str, data: Path) -> int:
    """Upload every file under `data` (with metadata from data/metadata.json); return the count."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=DEMO_S3_BUCKET)
    metadata_file = data / "metadata.json"
    metadata = json.loads(metadata_file.read_text()) if metadata_file.exists() else {}
    count = 0
    for path in sorted(data.rglob("*")):
        if path.is_file() and path != metadata_file:
            key = path.relative_to(data).as_posix()
            s3.put_object(Bucket=DEMO_S3_BUCKET, Key=key, Body=path.read_bytes(),
                          ContentType="text/plain", Metadata=metadata.get(key, {}))
            count += 1
    return count


def run_demo(*, definitions: Path, data: Path) -> None:
    """Seed, apply, trigger and print (see the module docstring)."""
    from deployments.runs import batch_run_ids, wait_until_recorded
    from flows.trigger import trigger_collection
    from tierflow.batch_view import batch_view
    from tierflow.browse import list_collection_documents
    from tierflow.definitions import apply_file
    from tierflow.search import search_documents
    from tierflow.settings import get_settings

    for name, value in (("AWS_ACCESS_KEY_ID", "demo"), ("AWS_SECRET_ACCESS_KEY", "demo"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        os.environ["TIERFLOW_S3_ENDPOINT_URL"] = endpoint
        get_settings.cache_clear()
        settings = get_settings()
        console.rule("tierflow demo")
        console.print(f"local S3 endpoint: {endpoint} (moto)")
        console.print(f"catalog: {settings.database_url}")
        console.print(f"uploaded {_seed(endpoint, data)} files to s3://{DEMO_S3_BUCKET}/")
        report = apply_file(definitions)
        console.print(f"applied {definitions}: " + ", ".join(f"{k} {n} {a}" for k, n, a in report.actions))
        root = next(name for kind, name, _ in report.actions if kind == "collection")
        namespace = next(name for kind, name, _ in report.actions if kind == "namespace")
        console.rule(f"trigger {namespace}/{root}")
        response = asyncio.run(trigger_collection(namespace, root))
        console.rule("response (TriggerCollectionResponse)")
        print_json(response)
        console.print(batch_table(batch_view(response["batch_id"])))
        totals = Table(title="documents per collection (all runs)", title_justify="left")
        totals.add_column("collection")
        totals.add_column("documents")
        for kind, name, _ in report.actions:
            if kind == "collection":
                page = list_collection_documents(namespace=namespace, collection=name, filters=None, limit=3, offset=0)
                totals.add_row(name, str(page["pagination"]["total"]))
        console.print(totals)
        last = [name for kind, name, _ in report.actions if kind == "collection"][-1]
        sample = list_collection_documents(namespace=namespace, collection=last, filters=None, limit=3, offset=0)
        console.print(documents_table(f"a few documents of {last}", sample["results"]))
        searched = next((name for kind, name, _ in report.actions if kind == "collection" and name.endswith("vectors")),
                        None)
        if searched is not None:
            found = search_documents(namespace=namespace, collection=searched, query_text=DEMO_QUERY, limit=3)
            console.print(search_table(f"search {searched}: {DEMO_QUERY!r}", found["results"]))
        # Before Prefect's temporary API stops with this process (deployments/runs.py).
        wait_until_recorded(batch_run_ids(response["batch_id"]))
    finally:
        server.stop()
