"""Seeing it happen, through `tierflow serve`: a batch's progress while it runs (over HTTP and in
a real terminal), and a `batch.completed` webhook that outlives a killed server and a receiver
answering 500 twice."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shlex
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.utils.http_stack import ROOT, TERMINAL, TIERFLOW, define, new_cli_key, poll, served

SECRET = "a-receivers-secret-of-some-length"


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on loopback: answers 500 to the first `failures` requests, then 200;
    keeps (status answered, headers, body) of each."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = 0
        self.seen: list[tuple[int, dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def delivered(self) -> list[tuple[int, dict[str, str], bytes]]:
        with self.lock:
            return [s for s in self.seen if s[0] == 200]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            status = 500 if self.server.failures > 0 else 200
            self.server.failures -= status == 500
            self.server.seen.append((status, dict(self.headers), body))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def stack(prefect_harness, tmp_path_factory) -> Iterator[dict[str, Any]]:
    from moto.server import ThreadedMotoServer
    from prefect.settings import PREFECT_API_URL

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    endpoint = "http://{}:{}".format(*moto.get_host_and_port())
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "TIERFLOW_S3_ENDPOINT_URL": endpoint,
           "TIERFLOW_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('live') / 'catalog.db'}",
           "TIERFLOW_WEBHOOK_ALLOW_PRIVATE": "true", "TIERFLOW_WEBHOOK_POLL_SECONDS": "0.2"}
    key = new_cli_key(env, "--name", "ci")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3_bucket = f"live-{uuid.uuid4().hex[:8]}"  # moto's state is one per process, shared by every module
    s3.create_bucket(Bucket=s3_bucket)
    yield {"env": env, "key": key, "s3": s3, "s3_bucket": s3_bucket, "receiver": receiver,
           "tmp": tmp_path_factory.mktemp("terminal")}
    receiver.shutdown()
    moto.stop()


def _client(stack: dict[str, Any], base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {stack['key']}"}, timeout=30)


def _fill(stack: dict[str, Any], prefix: str, count: int) -> None:
    def put(i: int) -> None:
        stack["s3"].put_object(Bucket=stack["s3_bucket"], Key=f"{prefix}{i:05d}.txt", Body=f"w1 w2 w3 w{i}".encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))


def test_a_completed_event_outlives_a_killed_server_and_two_500s(stack):
    receiver = stack["receiver"]
    _fill(stack, "hooks/", 20)
    # This server never gets to deliver: it is killed once the batch has closed.
    with served({**stack["env"], "TIERFLOW_WEBHOOK_POLL_SECONDS": "3600"}) as (server, base_url):
        client = _client(stack, base_url)
        headers = define(client, "hooks", "hooks/", s3_bucket=stack["s3_bucket"])
        hook = client.post("/v1/webhooks", headers=headers, json={
            "url": receiver.url, "events": ["batch.completed"], "secret": SECRET})
        assert hook.status_code == 200, hook.text
        webhook_id = hook.json()["webhook_id"]
        batch_id = client.post("/v1/collections/words/trigger", headers=headers, json={}).json()["batch_id"]
        poll(lambda: client.get(f"/v1/batches/{batch_id}", headers=headers).json()["status"],
             lambda status: status in TERMINAL)
        server.kill()
        server.wait()
    assert receiver.seen == []
    receiver.failures = 2
    with served(stack["env"]) as (_, base_url):
        client = _client(stack, base_url)
        poll(receiver.delivered, bool, seconds=60)
        attempts = client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=headers).json()
    assert [a["status_code"] for a in reversed(attempts)] == [500, 500, 200]
    (status, sent_headers, body), = receiver.delivered()
    event = json.loads(body)
    assert (event["type"], event["data"]["batch_id"], event["data"]["status"]) == ("batch.completed", batch_id,
                                                                                  "COMPLETED")
    assert len({json.loads(b)["event_id"] for _, _, b in receiver.seen}) == 1  # three tries of one event
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sent_headers["X-Tierflow-Signature"] == expected
    assert sent_headers["X-Tierflow-Event-Id"] == event["event_id"]


def _require_tmux() -> None:
    """tmux, once CI's background install has ended; on CI its absence fails the test."""
    marker = os.environ.get("TIERFLOW_TEST_TMUX_INSTALLED")  # set by .ci/run
    if marker:
        poll(Path(marker).exists, bool, seconds=600)
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is missing (.ci/chromium.sh installs it)")
        pytest.skip("tmux is not installed")


def _terminal(stack: dict[str, Any], batch_id: str) -> tuple[list[str], str]:
    """`tierflow batch watch BATCH_ID` in a detached tmux session of its own server: (the tmux
    command to reach it, the session name)."""
    script = Path(stack["tmp"]) / "watch.sh"
    exports = "".join(f"export {name}={shlex.quote(stack['env'][name])}\n"
                      for name in ("TIERFLOW_DATABASE_URL", "PREFECT_API_URL", "PATH") if name in stack["env"])
    command = " ".join(shlex.quote(part) for part in [*TIERFLOW, "batch", "watch", batch_id])
    script.write_text(f"{exports}cd {shlex.quote(str(ROOT))}\n{command}\nsleep 600\n")
    tmux = ["tmux", "-L", f"tierflow-{uuid.uuid4().hex[:8]}"]
    subprocess.run([*tmux, "new-session", "-d", "-s", "watch", "-x", "150", "-y", "50", f"bash {script}"],
                   check=True)
    return tmux, "watch"


def _screen(tmux: list[str], session: str) -> str:
    return subprocess.run([*tmux, "capture-pane", "-p", "-t", session], check=True, capture_output=True,
                          text=True).stdout


def test_progress_moves_while_polled_and_shows_in_a_terminal(stack):
    _require_tmux()
    objects = 1500
    _fill(stack, "live/", objects)
    with served(stack["env"]) as (_, base_url):
        client = _client(stack, base_url)
        headers = define(client, "live", "live/", s3_bucket=stack["s3_bucket"])
        batch_id = client.post("/v1/collections/words/trigger", headers=headers, json={}).json()["batch_id"]
        tmux, session = _terminal(stack, batch_id)
        try:
            snapshots: list[dict[str, Any]] = []
            screens: list[str] = []

            def read() -> dict[str, Any]:
                view = client.get(f"/v1/batches/{batch_id}", headers=headers).json()
                snapshots.append(view)
                root = view["tier_tasks"][0]
                if not screens and 0 < root["progress"]["processed"] and root["completed_at"] is None:
                    screen = _screen(tmux, session)  # mid-run, as a user sees it
                    if screen.strip():  # the watcher has drawn (it starts a Python process of its own)
                        screens.append(screen)
                return view

            poll(read, lambda view: view["status"] in TERMINAL, seconds=120)
            final = poll(lambda: _screen(tmux, session), lambda screen: "COMPLETED" in screen, seconds=60)
        finally:
            subprocess.run([*tmux, "kill-server"], check=False)
    assert snapshots[-1]["status"] == "COMPLETED"
    running = [s["tier_tasks"][0] for s in snapshots if s["tier_tasks"][0]["completed_at"] is None]
    processed = [t["progress"]["processed"] for t in running]
    assert len({p for p in processed if 0 < p < objects}) >= 2, processed  # rising before the tier closed
    assert any(t["progress"]["eta_seconds"] is not None for t in running if t["progress"]["processed"])
    assert snapshots[-1]["tier_tasks"][0]["progress"] == {
        "processed": objects, "total": objects, "total_final": True,
        "rate_per_second": snapshots[-1]["tier_tasks"][0]["progress"]["rate_per_second"], "eta_seconds": 0.0}
    assert not snapshots[-1]["stalled"] and snapshots[-1]["last_activity_at"]
    assert screens and "tier 0" in screens[0] and "tier 1" in screens[0], screens
    assert f"/{objects}" in final and "tier 1" in final
    assert asyncio.run(_progress_artifact(batch_id)) == 100.0  # the Prefect UI's percentage, at the end


async def _progress_artifact(batch_id: str) -> Any:
    """The latest value of the batch's progress artifact in Prefect."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"progress-{batch_id.replace('_', '-')}"])))
    return found[-1].data if found else None
