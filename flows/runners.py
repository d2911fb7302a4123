"""Which Prefect task runner runs a tier's chunk tasks: threads (default) or Dask.

Threads: chunks that read files from S3 wait on the network, so several run at once
(`chunk_concurrency`). Chunks of a tier that reads upstream documents only compute and write to
the catalog: on threads they share one interpreter lock and, on SQLite, one writer, and four at
once measured slower than one (bench/pipeline.py, tier 1 at 10,000 objects: 21.9 s against
16.4 s), hence `document_chunk_concurrency`, 1 by default.

Dask (`TIERFLOW_TASK_RUNNER=dask`): chunks run in the worker processes of a Dask cluster, which
is what a CPU-bound tier needs to use more than one core. `TIERFLOW_DASK_ADDRESS` names a running
scheduler shared by every run; without it each tier subflow starts a `LocalCluster` of
`TIERFLOW_DASK_WORKERS` single-threaded processes and closes it at the tier's end. Dask workers
read the same `TIERFLOW_*` and `AWS_*` settings from their environment (a LocalCluster's
processes inherit this one's); Prefect's settings travel with each task.
"""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tierflow.settings import get_settings


def chunks_at_once(*, reads_files: bool) -> int:
    """How many of a tier's chunks its task runner runs at once, as the settings choose (the tier
    keeps twice that submitted, flows/tier.py). On a Dask scheduler named by address, which may
    serve other runs too, `dask_workers` is how many of its workers one tier keeps busy."""
    settings = get_settings()
    if settings.task_runner == "dask":
        return settings.dask_workers
    return settings.chunk_concurrency if reads_files else settings.document_chunk_concurrency


def tier_task_runner(*, reads_files: bool) -> TaskRunner:
    """A fresh task runner for one tier subflow, as the settings choose."""
    settings = get_settings()
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={
            "n_workers": settings.dask_workers, "threads_per_worker": 1, "processes": True,
            "dashboard_address": None,
        })
    return ThreadPoolTaskRunner(max_workers=chunks_at_once(reads_files=reads_files))
