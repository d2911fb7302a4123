"""Tiers overlap: the document tier works on what the file tier wrote while the file tier still
runs, every input exactly once, and a failing upper tier lets the lower ones finish."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import quote

import tasks.chunks
from flows import tier as tier_flow
from flows import trigger as trigger_flow
from tasks.feeds import StartLine, TierFeed, batch_feeds, feed_into
from tests.utils.factories import (
    apply_definitions,
    chunk_collection,
    only_batch_view,
    passthrough_collection,
    put_text,
    text_bucket,
    trigger,
)
from tierflow import process
from tierflow.batch_view import batch_view
from tierflow.chunking import ChunkCutter
from tierflow.settings import get_settings

WAIT_SECONDS = 60


@pytest.fixture
def one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of one input, run one at a time in each tier."""
    for name in ("TIERFLOW_CHUNK_SIZE", "TIERFLOW_DOCUMENT_CHUNK_SIZE", "TIERFLOW_CHUNK_CONCURRENCY"):
        monkeypatch.setenv(name, "1")
    get_settings.cache_clear()


def test_document_tier_runs_while_file_tier_still_runs(flows, tmp_path, monkeypatch, one_by_one):
    for name in ("a", "b", "c"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2 {name}3")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket(unique_key=["key"])],
                                 "collections": [chunk_collection(size=3), passthrough_collection("copies", "chunks")]})
    # The file tier's last chunk holds until a chunk of the document tier has ended: with tiers
    # run one after the other it would wait in vain and the test fails.
    document_tier_worked = threading.Event()
    file_chunks_started: list[int] = []
    run_chunk = tasks.chunks.run_chunk

    def gated(**kwargs: Any) -> Any:
        if kwargs["tier_num"] == 0:
            file_chunks_started.append(1)
            if len(file_chunks_started) == 3:
                assert document_tier_worked.wait(WAIT_SECONDS), "tier 1 did not start before tier 0 ended"
        result = run_chunk(**kwargs)
        if kwargs["tier_num"] == 1:
            document_tier_worked.set()
        return result

    monkeypatch.setattr(tasks.chunks, "run_chunk", gated)
    response = trigger("flows", "chunks")

    view = batch_view(response["batch_id"])
    assert view["status"] == "COMPLETED", view["error_summary"]
    tier0, tier1 = view["tier_tasks"]
    assert (tier0["inputs_succeeded"], tier1["inputs_succeeded"]) == (3, 3)
    assert (tier1["source_documents_fetched"], tier1["documents_after_source_filter"], tier1["documents_written"]) == (3, 3, 3)
    assert tier1["parent_task_id"] == tier0["task_id"]
    assert view["audit"]["balanced"]


def test_failing_file_tier_still_lets_the_document_tier_close(flows, tmp_path, monkeypatch, one_by_one):
    for name in ("a", "b"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=2), passthrough_collection("copies", "chunks")]})
    finish = tier_flow.finish_tier

    def broken_finish(batch_id: str, tier_num: int) -> Any:
        if tier_num == 0:
            raise RuntimeError("catalog went away")
        return finish(batch_id, tier_num)

    monkeypatch.setattr(tier_flow, "finish_tier", broken_finish)
    with pytest.raises(RuntimeError, match="catalog went away"):
        trigger("flows", "chunks")
    # The document tier heard that the file tier closed, processed what it wrote and closed; the
    # batch failed with the file tier's error.
    view = only_batch_view()
    # What failed is named by its kind only: its text (SQL, hosts) stays in the run's log.
    assert view["status"] == "FAILED" and view["error_summary"]["message"].startswith("unexpected RuntimeError")
    assert "catalog went away" not in str(view)
    tier0, tier1 = view["tier_tasks"]
    assert tier0["inputs_succeeded"] == 0 and tier0["completed_at"] is None  # its close is what failed
    assert (tier1["status"], tier1["inputs_succeeded"], tier1["documents_written"]) == ("COMPLETED", 2, 2)


@pytest.mark.timeout(120)
def test_a_tier_failing_before_its_body_runs_still_lets_the_tier_below_close(flows, tmp_path, monkeypatch):
    # Nothing in the file tier's body runs, so nothing there closes its feed: the trigger must,
    # or the document tier waits for the file tier's start for ever (the timeout fails the test).
    put_text(flows, "notes/a.txt", "a1 a2")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=2), passthrough_collection("copies", "chunks")]})
    run_tier = tier_flow._run_tier

    async def no_body_for_the_root(batch_id: str, tier_num: int, *rest: Any) -> Any:
        if tier_num == 0:
            raise RuntimeError("tier 0 never began")
        return await run_tier(batch_id, tier_num, *rest)

    monkeypatch.setattr(tier_flow, "_run_tier", no_body_for_the_root)
    with pytest.raises(RuntimeError, match="tier 0 never began"):
        trigger("flows", "chunks")
    view = only_batch_view()
    assert view["status"] == "FAILED" and view["error_summary"]["message"].startswith("unexpected RuntimeError")
    assert view["tier_tasks"][1]["status"] == "COMPLETED"


def test_chunk_cutter_cuts_full_chunks_per_collection():
    cutter = ChunkCutter(2)
    assert cutter.add("left", ["a", "b", "c"]) == [("left", ["a", "b"])]
    assert cutter.add("left", ["d", "e"]) == [("left", ["c", "d"])]
    assert cutter.add("right", ["a"]) == []  # another collection's "a" is its own input
    assert cutter.rest() == [("left", ["e"]), ("right", ["a"])]
    assert cutter.rest() == []


def test_a_collections_first_chunk_is_small_so_its_documents_come_early():
    cutter = ChunkCutter(200)
    ids = [f"i{n:03d}" for n in range(450)]
    chunks = cutter.add("c", ids) + cutter.rest()
    assert [len(c) for _, c in chunks] == [20, 200, 200, 30]
    assert [i for _, c in chunks for i in c] == ids


def test_leaving_the_feeds_wakes_a_tier_still_waiting_on_its_upstream():
    # A cancelled run leaves the trigger without its tiers closing their feeds: the reader
    # waiting in a thread must still be woken, or the process could not exit.
    async def scenario() -> list[tuple[str, list[str]]]:
        heard: list[tuple[str, list[str]]] = []
        first = asyncio.Event()

        async def read(feed: TierFeed) -> None:
            async for item in feed.batches():
                heard.append(item)
                first.set()

        with batch_feeds("btch_x", 2, from_discovery=False):
            feed = feed_into("btch_x", 1)
            assert feed is not None and feed_into("btch_x", 0) is None
            reader = asyncio.create_task(read(feed))
            feed.ready("col_a", ["doc_1"])
            await asyncio.wait_for(first.wait(), WAIT_SECONDS)  # the reader now waits for more
        await asyncio.wait_for(reader, WAIT_SECONDS)
        assert feed_into("btch_x", 1) is None
        return heard

    assert asyncio.run(scenario()) == [("col_a", ["doc_1"])]


class _ChunkRun:
    """What `_ChunkRuns` uses of a submitted chunk task: it ends (in that state) when told to."""

    def __init__(self, state: State | None = None) -> None:
        self.callbacks: list[Any] = []
        self.state: State = state or Completed(data={})

    def add_done_callback(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def end(self) -> None:
        for callback in self.callbacks:
            callback(self)

    def result(self, raise_on_failure: bool = True) -> Any:
        return self.state.result(raise_on_failure=raise_on_failure)


@pytest.fixture
def chunk_tickets() -> list[int]:
    return []


@pytest.fixture
def chunk_tasks(monkeypatch: pytest.MonkeyPatch, chunk_tickets: list[int]) -> list[tuple[list[str], _ChunkRun]]:
    """The chunks a `_ChunkRuns` submits, as (input ids, run), without Prefect or a catalog; their
    places in the I/O pool's line go to `chunk_tickets`."""
    submitted: list[tuple[list[str], _ChunkRun]] = []

    class _Task:
        @staticmethod
        def submit(batch_id: str, collection_id: str, tier_num: int, input_ids: quote[list[str]],
                   generation: int, io_ticket: int) -> _ChunkRun:
            chunk_tickets.append(io_ticket)
            submitted.append((input_ids.unquote(), _ChunkRun()))
            return submitted[-1][1]

    monkeypatch.setattr(tier_flow, "process_chunk", _Task)
    monkeypatch.setattr(tier_flow, "reach_tier", lambda **_: None)
    return submitted


def test_a_tier_forgets_the_inputs_of_chunks_that_succeeded_and_keeps_those_that_failed(chunk_tasks):
    # A tier of a million inputs must not hold every id it ever submitted until it closes; the
    # ids of a failed chunk are kept, to be marked failed in the ledger.
    feed = TierFeed()
    runs = tier_flow._ChunkRuns("btch_x", 0, 2, feed, limit=4, generation=1)
    runs.add("col_a", ["obj_1", "obj_2", "obj_3"])  # the first two are a chunk
    [(_, ok)] = chunk_tasks
    ok.end()
    runs.flush_if_idle()  # the third goes alone, nothing running
    (_, bad) = chunk_tasks[1]
    bad.state = Failed(data=RuntimeError("lost"))
    bad.end()
    assert [ids for _, ids, _ in runs.runs.values()] == [["obj_3"]]
    # The tier below hears of both: what the failed chunk wrote before failing may be there.
    assert list(feed._ready) == [("col_a", ["obj_1", "obj_2"]), ("col_a", ["obj_3"])]


def test_each_chunk_takes_its_place_for_reads_when_the_tier_submits_it(chunk_tasks, chunk_tickets):
    # Their threads may reach their reads in any order; the pool serves them in this one.
    runs = tier_flow._ChunkRuns("btch_x", 0, 20, None, limit=8, generation=1)
    runs.add("col_a", [f"obj_{n}" for n in range(62)])  # a first chunk of 2, then three of 20
    assert [len(ids) for ids, _ in chunk_tasks] == [2, 20, 20, 20]
    assert chunk_tickets == sorted(set(chunk_tickets))


def test_the_collector_is_set_once_per_process(monkeypatch):
    before = gc.get_threshold()
    monkeypatch.setattr(process, "_tuned", False)
    try:
        gc.set_threshold(700, 10, 10)
        process.tune_collector()
        assert gc.get_threshold() == (process.YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
        gc.set_threshold(500, 10, 10)
        process.tune_collector()  # a later batch of the same process changes nothing
        assert gc.get_threshold() == (500, 10, 10)
    finally:
        gc.set_threshold(*before)


def test_an_idle_tier_starts_on_a_partial_chunk_and_a_busy_one_waits_for_a_full_one(chunk_tasks):
    runs = tier_flow._ChunkRuns("btch_x", 1, 100, None, limit=2, generation=1)  # first chunk 10, then 100
    runs.add("col_a", ["d1", "d2", "d3"])
    assert chunk_tasks == []
    runs.flush_if_idle()  # nothing runs: the three go now, not when ten have come
    assert [ids for ids, _ in chunk_tasks] == [["d1", "d2", "d3"]]
    runs.add("col_a", ["d4", "d5"])
    runs.flush_if_idle()  # a chunk runs: these wait to fill a chunk
    assert len(chunk_tasks) == 1
    chunk_tasks[0][1].end()
    runs.flush_if_idle()
    assert [ids for ids, _ in chunk_tasks] == [["d1", "d2", "d3"], ["d4", "d5"]]


def test_a_full_tier_waits_for_room_until_a_runner_thread_ends_a_chunk(chunk_tasks):
    async def scenario() -> None:
        runs = tier_flow._ChunkRuns("btch_x", 1, 1, None, limit=2, generation=1)
        runs.add("col_a", ["d1"])
        await asyncio.wait_for(runs.room(), WAIT_SECONDS)  # one of two submitted: room
        runs.add("col_a", ["d2"])
        waiting = asyncio.create_task(runs.room())
        await asyncio.sleep(0)  # one turn of the loop: the task runs up to its wait
        assert not waiting.done()
        ender = threading.Thread(target=chunk_tasks[0][1].end)  # as a task runner thread would
        ender.start()
        await asyncio.wait_for(waiting, WAIT_SECONDS)
        ender.join()

    asyncio.run(scenario())


def test_a_tier_slower_than_the_one_above_takes_its_feed_only_as_it_has_room(flows, tmp_path, monkeypatch, one_by_one):
    # Chunks of one input, one running at a time per tier, so a tier keeps at most two submitted
    # before it takes more from its feed; each file makes three documents, three chunks at most
    # per take. The document tier's first chunk holds until that tier waits for room, or (with
    # no bound) until it has taken every file's documents: unbounded, it would then hold 24.
    files = 8
    for n in range(files):
        put_text(flows, f"notes/{n}.txt", f"w{n}a w{n}b w{n}c")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=1), passthrough_collection("copies", "chunks")]})
    most_submitted = 0
    full = threading.Event()
    selected: list[list[str]] = []
    submit, room, select, run_chunk = (tier_flow._ChunkRuns._submit, tier_flow._ChunkRuns.room,
                                       tier_flow.select_new_inputs, tasks.chunks.run_chunk)

    def counting_submit(self: Any, collection_id: str, input_ids: list[str]) -> None:
        nonlocal most_submitted
        submit(self, collection_id, input_ids)
        if self.tier_num == 1:
            with self._lock:
                most_submitted = max(most_submitted, self._running)

    async def watched_room(self: Any) -> None:
        if self.tier_num == 1 and self._running >= self.limit:
            full.set()
        await room(self)

    def counting_select(**kwargs: Any) -> Any:
        added = select(**kwargs)
        if kwargs["tier_num"] == 1:
            selected.append(kwargs["source_ids"])
            if len(selected) == files:
                full.set()
        return added

    def gated(**kwargs: Any) -> Any:
        if kwargs["tier_num"] == 1:
            assert full.wait(WAIT_SECONDS), "the document tier neither filled up nor took every file"
        return run_chunk(**kwargs)

    monkeypatch.setattr(tier_flow._ChunkRuns, "_submit", counting_submit)
    monkeypatch.setattr(tier_flow._ChunkRuns, "room", watched_room)
    monkeypatch.setattr(tier_flow, "select_new_inputs", counting_select)
    monkeypatch.setattr(tasks.chunks, "run_chunk", gated)
    response = trigger("flows", "chunks")

    assert most_submitted <= 2 - 1 + 3
    view = batch_view(response["batch_id"])
    assert view["status"] == "COMPLETED", view["error_summary"]
    assert [t["documents_written"] for t in view["tier_tasks"]] == [3 * files, 3 * files]
    assert view["audit"]["balanced"]


def test_the_start_line_opens_once_every_tier_has_arrived_or_the_batch_ends():
    async def scenario() -> None:
        line = StartLine(2)
        waiting = asyncio.create_task(line.wait())
        line.arrive(0)
        line.arrive(0)  # a tier that arrives twice (its subflow failed after its start) counts once
        await asyncio.sleep(0)
        assert not waiting.done()
        line.arrive(1)
        await asyncio.wait_for(waiting, WAIT_SECONDS)
        ended = StartLine(2)
        ended.open()  # the batch ends before a tier came: nobody is left waiting
        await asyncio.wait_for(ended.wait(), WAIT_SECONDS)

    asyncio.run(scenario())


def test_no_chunk_runs_before_every_tier_has_its_run(flows, tmp_path, monkeypatch):
    # Prefect's API on SQLite refuses to create a subflow's run while chunk task runs keep it
    # writing, so the file tier waits at the start line until the document tier's run exists.
    # The document tier's body is held until the file tier waits there; with no line the file
    # tier would go on to run a chunk, which releases it and is recorded.
    put_text(flows, "notes/a.txt", "a1 a2 a3")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=3), passthrough_collection("copies", "chunks")]})
    release = threading.Event()
    early: list[int] = []
    tier_1_began = threading.Event()
    wait, run_tier, run_chunk = StartLine.wait, tier_flow._run_tier, tasks.chunks.run_chunk

    async def watched_wait(self: StartLine) -> None:
        release.set()
        await wait(self)

    async def held_document_tier(batch_id: str, tier_num: int, *rest: Any) -> Any:
        if tier_num == 1:
            assert await asyncio.to_thread(release.wait, WAIT_SECONDS), "nothing waited, nothing ran"
            tier_1_began.set()
        return await run_tier(batch_id, tier_num, *rest)

    def watched_chunk(**kwargs: Any) -> Any:
        if not tier_1_began.is_set():
            early.append(kwargs["tier_num"])
            release.set()
        return run_chunk(**kwargs)

    monkeypatch.setattr(StartLine, "wait", watched_wait)
    monkeypatch.setattr(tier_flow, "_run_tier", held_document_tier)
    monkeypatch.setattr(tasks.chunks, "run_chunk", watched_chunk)
    response = trigger("flows", "chunks")

    assert early == []
    view = batch_view(response["batch_id"])
    assert view["status"] == "COMPLETED", view["error_summary"]
    assert [t["documents_written"] for t in view["tier_tasks"]] == [1, 1]


def test_each_tier_run_is_created_once_the_tier_above_has_its_own(flows, tmp_path, monkeypatch):
    # Runs created at once collide in Prefect's API on SQLite, which refuses one of them (503)
    # until a retry: tier n's subflow is called only after tier n - 1 arrived at the start line.
    put_text(flows, "notes/a.txt", "a1 a2 a3")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=3), passthrough_collection("copies", "chunks"),
                                                 passthrough_collection("copies2", "copies")]})
    events: list[tuple[str, int]] = []
    arrive, process_tier = StartLine.arrive, trigger_flow.process_tier

    def recorded_arrive(self: StartLine, tier_num: int) -> None:
        events.append(("arrived", tier_num))
        arrive(self, tier_num)

    class RecordedTier:
        """`process_tier`, noting when each tier's subflow is called (its run is created then)."""

        def with_options(self, **options: Any) -> Any:
            subflow = process_tier.with_options(**options)

            async def call(batch_id: str, tier_num: int, *rest: Any) -> Any:
                events.append(("called", tier_num))
                return await subflow(batch_id, tier_num, *rest)
            return call

    monkeypatch.setattr(StartLine, "arrive", recorded_arrive)
    monkeypatch.setattr(trigger_flow, "process_tier", RecordedTier())
    view = batch_view(trigger("flows", "chunks")["batch_id"])

    assert view["status"] == "COMPLETED", view["error_summary"]
    assert [t["documents_written"] for t in view["tier_tasks"]] == [1, 1, 1]
    for tier_num in (1, 2):
        assert events.index(("called", tier_num)) > events.index(("arrived", tier_num - 1)), events


@pytest.mark.timeout(180)
def test_a_deep_dag_gets_every_tier_past_the_start_line(flows, tmp_path):
    # Eight tiers: those that have arrived must wait without holding the loop's few executor
    # threads, which the tiers still to arrive need to hear that their parent started.
    put_text(flows, "notes/a.txt", "a1 a2 a3")
    copies = [passthrough_collection(f"copy{n}", "chunks" if n == 1 else f"copy{n - 1}") for n in range(1, 8)]
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=3), *copies]})
    view = batch_view(trigger("flows", "chunks")["batch_id"])
    assert view["status"] == "COMPLETED", view["error_summary"]
    assert [t["documents_written"] for t in view["tier_tasks"]] == [1] * 8
