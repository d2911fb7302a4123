"""A warm-started run begins Prefect's suspension watch beside its start, not before it."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from deployments.suspension_watch import beside


class _Watch:
    """A watch like Prefect's: its entry blocks until `ready` is set."""

    def __init__(self, fail: bool = False) -> None:
        self.ready, self.fail = threading.Event(), fail
        self.steps: list[str] = []

    @contextmanager
    def __call__(self, run_id: str) -> Iterator[None]:
        self.steps.append(f"entering {run_id}")
        if not self.ready.wait(timeout=30):
            raise AssertionError("never let in")
        if self.fail:
            raise RuntimeError("the watch could not start")
        self.steps.append("entered")
        try:
            yield
        finally:
            self.steps.append("left")


def test_the_run_goes_on_while_the_watch_starts_and_the_watch_ends_after_the_run():
    watch = _Watch()
    with beside(watch)("run-1"):
        started_before_the_run = "entered" in watch.steps  # the watch cannot have: it waits for `ready`
        watch.ready.set()
    assert not started_before_the_run
    assert watch.steps == ["entering run-1", "entered", "left"]


def test_a_watch_that_could_not_start_is_logged_and_leaves_the_runs_outcome_alone(caplog):
    from deployments import suspension_watch

    watch = _Watch(fail=True)
    with beside(watch)("run-2"):
        watch.ready.set()
    assert "left" not in watch.steps
    assert [r.getMessage() for r in caplog.records if r.name == suspension_watch.log.name] == [
        "the run's suspension watch did not start (RuntimeError: the watch could not start)"]
    failing = _Watch(fail=True)
    failing.ready.set()
    with pytest.raises(ValueError, match="the flow's own"), beside(failing)("run-3"):
        raise ValueError("the flow's own error")  # not replaced by the watch's


def test_prefects_engine_takes_the_watch_beside_its_start():
    # Fails when Prefect's engine no longer names `observe_flow_run_suspension`: runs would then
    # wait for the watch before their flow again.
    script = ("import prefect.flow_engine as e\n"
              "from deployments.suspension_watch import watch_suspension_beside_start as w\n"
              "original = e.observe_flow_run_suspension\n"
              "print(w(), w(), e.observe_flow_run_suspension is not original,"
              " e.observe_flow_run_suspension._tierflow_beside_start)")
    out = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["True", "True", "True", "True"]


def test_a_watch_that_never_starts_does_not_keep_the_run_from_ending(monkeypatch):
    from deployments import suspension_watch

    monkeypatch.setattr(suspension_watch, "ENTRY_WAIT_SECONDS", 0.05)
    watch = _Watch()  # never let in, as with an API that does not answer
    with beside(watch)("run-3"):
        pass
    assert "entered" not in watch.steps and "left" not in watch.steps  # the run ended all the same
    watch.ready.set()  # let the thread end
