"""Tiers overlap: the document tier works on what the file tier wrote while the file tier still
runs, every input exactly once, what waits between tiers is bounded, and a failing upper tier
lets the lower ones finish. Chunks are run through the pipeline's `run_chunk` seam."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest

from flows.chunk_tasks import Chunk, run_chunk_task
from flows.links import Handoff, Link, StartLine
from flows.off_loop import off_loop
from flows.pipeline import BatchPipeline
from flows.tier import TierChunks, TierPorts
from tests.utils.factories import (
    apply_definitions,
    chunk_collection,
    only_batch_view,
    passthrough_collection,
    put_text,
    text_bucket,
    trigger,
    trigger_with,
)
from tierflow import process
from tierflow.batch_view import batch_view
from tierflow.catalog.engine import CatalogUnavailableError
from tierflow.chunking import ChunkCutter
from tierflow.planning import BatchPlan
from tierflow.settings import get_settings

WAIT_SECONDS = 60


@pytest.fixture
def one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of one input, run one at a time in each tier."""
    for name in ("TIERFLOW_CHUNK_SIZE", "TIERFLOW_DOCUMENT_CHUNK_SIZE", "TIERFLOW_CHUNK_CONCURRENCY"):
        monkeypatch.setenv(name, "1")
    get_settings.cache_clear()


def test_document_tier_runs_while_file_tier_still_runs(flows, tmp_path, one_by_one):
    for name in ("a", "b", "c"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2 {name}3")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket(unique_key=["key"])],
                                 "collections": [chunk_collection(size=3), passthrough_collection("copies", "chunks")]})
    # The file tier's last chunk holds until a chunk of the document tier has ended: with tiers
    # run one after the other it would wait in vain and the test fails.
    document_tier_worked = asyncio.Event()
    file_chunks: list[Chunk] = []

    async def gated(chunk: Chunk) -> BaseException | None:
        if chunk.tier_num == 0:
            file_chunks.append(chunk)
            if len(file_chunks) == 3:
                await asyncio.wait_for(document_tier_worked.wait(), WAIT_SECONDS)
        error = await run_chunk_task(chunk)
        if chunk.tier_num == 1:
            document_tier_worked.set()
        return error

    response = trigger_with("flows", "chunks", gated)

    view = batch_view(response["batch_id"])
    assert view["status"] == "COMPLETED", view["error_summary"]
    tier0, tier1 = view["tier_tasks"]
    assert (tier0["inputs_succeeded"], tier1["inputs_succeeded"]) == (3, 3)
    assert (tier1["source_documents_fetched"], tier1["documents_after_source_filter"], tier1["documents_written"]) == (3, 3, 3)
    assert tier1["parent_task_id"] == tier0["task_id"]
    assert view["audit"]["balanced"]


def test_a_file_tier_that_fails_still_lets_the_document_tier_close(flows, tmp_path, one_by_one):
    for name in ("a", "b"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=2), passthrough_collection("copies", "chunks")]})

    file_chunks: list[Chunk] = []

    async def catalog_lost_after_the_first_file(chunk: Chunk) -> BaseException | None:
        if chunk.tier_num == 0:
            file_chunks.append(chunk)
            if len(file_chunks) > 1:
                return CatalogUnavailableError("catalog unreachable")  # nothing read: the input stays pending
        return await run_chunk_task(chunk)

    with pytest.raises(CatalogUnavailableError):
        trigger_with("flows", "chunks", catalog_lost_after_the_first_file)
    # The document tier heard that the file tier closed, processed what it wrote and closed; the
    # batch failed with the file tier's error, transient, to be resumed.
    view = only_batch_view()
    summary = view["error_summary"]
    assert view["status"] == "FAILED" and summary["resumable"] and summary["pending_inputs"] == 1, summary
    tier0, tier1 = view["tier_tasks"]
    assert tier0["completed_at"] is None  # it failed instead of closing
    assert (tier1["status"], tier1["inputs_succeeded"], tier1["documents_written"]) == ("COMPLETED", 1, 1)


def _plan(tiers: int) -> BatchPlan:
    return BatchPlan(batch_id="btch_x", namespace_id="ns_x", collection_id="col_0", source_type="collection",
                     source_bucket_ids=[], source_collection_ids=["col_up"],
                     tiers=[[f"col_{n}"] for n in range(tiers)])


class _TiersWithoutPrefect(BatchPipeline):
    """A pipeline whose tier runs are plain coroutines: each arrives at the start line, waits
    there, hears its parent and reads its inbox to the end. Tier `broken` fails before its body."""

    def __init__(self, tiers: int, broken: int | None = None) -> None:
        super().__init__(_plan(tiers), 1, task_id="run_trigger", discover=False)
        self.broken = broken
        self.heard: dict[int, tuple[str | None, bool]] = {}
        self.called_after_the_tier_above_arrived: list[bool] = []

    async def tier_run(self, tier_num: int) -> dict[str, Any]:
        self.called_after_the_tier_above_arrived.append(tier_num == 0 or self.line.has_arrived(tier_num - 1))
        await _turns()  # its run is being created
        if tier_num == self.broken:
            raise RuntimeError(f"tier {tier_num} never began")
        ports = self.ports(tier_num)
        parent = None if ports.inbox is None else await ports.inbox.parent()
        if ports.outbox is not None:
            ports.outbox.started(f"run_tier_{tier_num}")
        self.line.arrive(tier_num)
        await self.line.wait()
        if ports.inbox is not None:
            async for _ in ports.inbox.handoffs():
                pass
            self.heard[tier_num] = (parent, ports.inbox.failed)
        if ports.outbox is not None:
            ports.outbox.close()
        return {"tier": tier_num}


def test_a_tier_failing_before_its_body_runs_still_lets_the_tiers_below_close():
    # Nothing in the file tier's body runs, so nothing there closes its outbox: the pipeline
    # must, or the tier below waits for the file tier's start for ever.
    async def scenario() -> _TiersWithoutPrefect:
        pipeline = _TiersWithoutPrefect(3, broken=0)
        with pytest.raises(RuntimeError, match="tier 0 never began"):
            await asyncio.wait_for(pipeline.run(), WAIT_SECONDS)
        return pipeline

    assert asyncio.run(scenario()).heard == {1: (None, True), 2: ("run_tier_1", False)}


def test_each_tier_run_is_created_once_the_tier_above_has_its_own():
    # Runs created at once collide in Prefect's API on SQLite, which refuses one of them (503)
    # until a retry: tier n's run is created only after tier n - 1 arrived at the start line.
    async def scenario() -> _TiersWithoutPrefect:
        pipeline = _TiersWithoutPrefect(4)
        await asyncio.wait_for(pipeline.run(), WAIT_SECONDS)
        return pipeline

    pipeline = asyncio.run(scenario())
    assert pipeline.called_after_the_tier_above_arrived == [True] * 4
    assert pipeline.heard == {n: (f"run_tier_{n - 1}", False) for n in (1, 2, 3)}


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


def test_a_link_is_bounded_and_closing_either_end_releases_the_other():
    async def scenario() -> None:
        link = Link(2)
        for n in range(2):
            await link.send(Handoff("col_a", [f"doc_{n}"]))
        blocked = asyncio.create_task(link.send(Handoff("col_a", ["doc_2"])))
        await asyncio.sleep(0)  # one turn of the loop: the sender runs up to its wait
        assert not blocked.done()  # full: the sender waits for the tier below
        received = link.handoffs()
        assert (await received.__anext__()).input_ids == ["doc_0"]
        await asyncio.wait_for(blocked, WAIT_SECONDS)  # room again
        # From a task runner thread, a sender blocks until the tier below stops listening.
        sender = threading.Thread(target=link.send_from_thread, args=(Handoff("b", ["obj_1"]),))
        sender.start()
        await asyncio.sleep(0)
        link.stop_listening()
        await asyncio.wait_for(asyncio.to_thread(sender.join), WAIT_SECONDS)

        # A sender still waiting when the run is torn down must not wait for the loop: Prefect's
        # task runner then blocks the loop until its threads end (a SIGTERM hung 30 s on this).
        torn = Link(1)
        await torn.send(Handoff("b", ["obj_1"]))
        stuck = threading.Thread(target=torn.send_from_thread, args=(Handoff("b", ["obj_2"]),))
        stuck.start()
        torn.stop_listening()
        stuck.join(WAIT_SECONDS)  # blocking the loop, as the task runner's shutdown does
        assert not stuck.is_alive()

        closed = Link(2)
        reader = asyncio.create_task(_read_all(closed))
        await closed.send(Handoff("col_a", ["doc_1"]))
        closed.close(failed=True)  # a reader waiting for more is woken, and learns it failed
        assert await asyncio.wait_for(reader, WAIT_SECONDS) == [["doc_1"]]
        assert closed.failed and await closed.parent() is None

    asyncio.run(scenario())


async def _read_all(link: Link) -> list[list[str]]:
    return [handoff.input_ids async for handoff in link.handoffs()]


class _FakeChunks:
    """A chunk runner that ends each chunk when the test says, in that outcome."""

    def __init__(self) -> None:
        self.started: list[Chunk] = []
        self._ends: dict[tuple[str, ...], asyncio.Future[BaseException | None]] = {}

    async def __call__(self, chunk: Chunk) -> BaseException | None:
        self.started.append(chunk)
        ended = self._ends[tuple(chunk.input_ids)] = asyncio.get_running_loop().create_future()
        return await ended

    def end(self, *input_ids: str, error: BaseException | None = None) -> None:
        self._ends[input_ids].set_result(error)

    def ids(self) -> list[list[str]]:
        return [chunk.input_ids for chunk in self.started]


def _tier_chunks(runner: _FakeChunks, *, size: int, limit: int, outbox: Link | None = None,
                 line: StartLine | None = None, ahead: int = 0) -> TierChunks:
    """Tier 1's chunks; past the start line unless given a `line`."""
    if line is None:
        line = StartLine(2)
        line.open()
    ports = TierPorts(batch_id="btch_x", tier_num=1, generation=1, run_chunk=runner, line=line, outbox=outbox)
    return TierChunks(ports, size, limit, reached=True, ahead=ahead)  # no batch in a catalog to mark reached


async def _turns(count: int = 3) -> None:
    """Let the loop run the chunks' coroutines up to their next wait."""
    for _ in range(count):
        await asyncio.sleep(0)


def test_a_tier_forgets_the_inputs_of_chunks_that_succeeded_and_keeps_those_that_failed():
    # A tier of a million inputs must not hold every id it ever ran until it closes; the ids of
    # a failed chunk are kept, to be marked failed in the ledger.
    async def scenario() -> None:
        runner, below = _FakeChunks(), Link(8)
        chunks = _tier_chunks(runner, size=2, limit=4, outbox=below)
        await chunks.add("col_a", ["obj_1", "obj_2", "obj_3"])  # the first two are a chunk
        await _turns()
        runner.end("obj_1", "obj_2")
        await _turns()
        await chunks.flush_if_idle()  # the third goes alone, nothing running
        await _turns()
        runner.end("obj_3", error=RuntimeError("lost"))
        await _turns()
        assert [(f.input_ids, str(f.error)) for f in chunks.failures] == [(["obj_3"], "lost")]
        below.close()
        # The tier below hears of both: what the failed chunk wrote before failing may be there.
        assert await _read_all(below) == [["obj_1", "obj_2"], ["obj_3"]]

    asyncio.run(scenario())


def test_an_idle_tier_starts_on_a_partial_chunk_and_a_busy_one_waits_for_a_full_one():
    async def scenario() -> None:
        runner = _FakeChunks()
        chunks = _tier_chunks(runner, size=100, limit=2)  # first chunk 10, then 100
        await chunks.add("col_a", ["d1", "d2", "d3"])
        await _turns()
        assert runner.started == []
        await chunks.flush_if_idle()  # nothing runs: the three go now, not when ten have come
        await _turns()
        assert runner.ids() == [["d1", "d2", "d3"]]
        await chunks.add("col_a", ["d4", "d5"])
        await chunks.flush_if_idle()  # a chunk runs: these wait to fill a chunk
        await _turns()
        assert len(runner.started) == 1
        runner.end("d1", "d2", "d3")
        await _turns()
        await chunks.flush_if_idle()
        await _turns()
        assert runner.ids() == [["d1", "d2", "d3"], ["d4", "d5"]]

    asyncio.run(scenario())


def test_a_full_tier_waits_for_room_and_an_ended_chunk_keeps_its_place_until_handed_off():
    async def scenario() -> None:
        runner, below = _FakeChunks(), Link(1)
        chunks = _tier_chunks(runner, size=1, limit=2, outbox=below)
        await chunks.add("col_a", ["d1"])
        await asyncio.wait_for(chunks.room(), WAIT_SECONDS)  # one of two running: room
        await chunks.add("col_a", ["d2"])
        await _turns()
        waiting = asyncio.create_task(chunks.room())
        await _turns()
        assert not waiting.done()
        runner.end("d1")
        await asyncio.wait_for(waiting, WAIT_SECONDS)  # d1 went below: room
        runner.end("d2")
        await _turns()
        assert chunks.running == 1  # d2 ended, but the link below is full: it keeps its place
        received = below.handoffs()
        assert (await received.__anext__()).input_ids == ["d1"]
        await _turns()
        assert chunks.running == 0

    asyncio.run(scenario())


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


def test_a_tier_slower_than_the_one_above_takes_its_inbox_only_as_it_has_room(flows, tmp_path, one_by_one):
    # Chunks of one input, one running at a time per tier, so the document tier keeps two
    # running before it takes more from its inbox; each file makes three documents, three chunks
    # at most per take. The document tier's chunks hold until the file tier has run every file:
    # a tier that took without room would by then run 24 at once.
    files = 8
    for n in range(files):
        put_text(flows, f"notes/{n}.txt", f"w{n}a w{n}b w{n}c")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=1), passthrough_collection("copies", "chunks")]})
    files_done = asyncio.Event()
    file_chunks_ended = 0
    running = most_running = 0

    async def counted(chunk: Chunk) -> BaseException | None:
        nonlocal file_chunks_ended, running, most_running
        if chunk.tier_num == 0:
            error = await run_chunk_task(chunk)
            file_chunks_ended += 1
            if file_chunks_ended == files:
                files_done.set()
            return error
        running += 1
        most_running = max(most_running, running)
        try:
            await asyncio.wait_for(files_done.wait(), WAIT_SECONDS)
            return await run_chunk_task(chunk)
        finally:
            running -= 1

    response = trigger_with("flows", "chunks", counted)

    assert 2 <= most_running <= 2 - 1 + 3
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
        await _turns()
        assert not waiting.done()
        line.arrive(1)
        await asyncio.wait_for(waiting, WAIT_SECONDS)
        ended = StartLine(2)
        ended.open()  # the batch ends before a tier came: nobody is left waiting
        await asyncio.wait_for(ended.wait(), WAIT_SECONDS)

    asyncio.run(scenario())


def test_only_the_root_tiers_first_chunk_runs_before_every_tier_has_its_run(flows, tmp_path, one_by_one):
    # Prefect's API on SQLite refuses to create a subflow's run while chunk task runs keep it
    # writing, so no chunk runs before every tier's run exists (and has started), except the
    # root tier's first, which is small. The third tier's run is created two runs after the file
    # tier's: without the line, more of the file tier's chunks (one object each) would come first.
    for name in ("a", "b", "c"):
        put_text(flows, f"notes/{name}.txt", f"{name}1 {name}2 {name}3")
    apply_definitions(tmp_path, {"namespace": "flows", "buckets": [text_bucket()],
                                 "collections": [chunk_collection(size=3), passthrough_collection("copies", "chunks"),
                                                 passthrough_collection("copies2", "copies")]})
    early: list[tuple[int, list[str]]] = []

    async def watched(chunk: Chunk) -> BaseException | None:
        view = await off_loop(batch_view, chunk.batch_id)
        if any(t["task_id"] is None for t in view["tier_tasks"]):
            early.append((chunk.tier_num, chunk.input_ids))
        return await run_chunk_task(chunk)

    view = batch_view(trigger_with("flows", "chunks", watched)["batch_id"])
    assert len(early) <= 1 and all(tier_num == 0 for tier_num, _ in early), early
    assert view["status"] == "COMPLETED", view["error_summary"]
    assert [t["documents_written"] for t in view["tier_tasks"]] == [3, 3, 3]


def test_a_tier_runs_its_chunks_ahead_of_the_start_line_and_the_rest_once_it_opens():
    async def scenario() -> None:
        runner, line = _FakeChunks(), StartLine(2)
        chunks = _tier_chunks(runner, size=1, limit=4, line=line, ahead=1)
        adding = asyncio.create_task(chunks.add("col_a", ["d1", "d2", "d3"]))
        await _turns()
        assert runner.ids() == [["d1"]] and not adding.done()  # the second waits at the line
        line.open()
        await asyncio.wait_for(adding, WAIT_SECONDS)
        await _turns()
        assert runner.ids() == [["d1"], ["d2"], ["d3"]]
        for input_id in ("d1", "d2", "d3"):
            runner.end(input_id)
        await chunks.finish()

    asyncio.run(scenario())


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
