"""What the fork server of `tierflow serve` does once, as it starts, so that no run does it again
(`deployments/warm_starts.py`).

Python's fork server can only import modules before it forks: importing this one imports Prefect's
engine and tierflow's flows, then builds what Prefect builds lazily in each new process and loads
botocore's S3 model (`tierflow.storage.load_s3_models`). It starts no thread, which is what keeps
forking from the fork server safe.
"""

from __future__ import annotations

import prefect.engine  # noqa: F401  (imported once here, not in each run)
import prefect.flow_engine  # noqa: F401
import pydantic
from fastapi import encoders  # noqa: F401  (Prefect serialises a run's parameters with it)

import flows.trigger  # noqa: F401  (the trigger flow, with all of tierflow)
from flows.clients import share_tls_contexts
from tierflow.storage import load_s3_models


def build_deferred_models() -> int:
    """Build every pydantic model that is still waiting for its first use; how many.

    Prefect defers building most of its API schemas (about 260) until they are first used, and a
    run used them between its start and its flow's first task, each run again."""
    built = 0
    for model in _subclasses(pydantic.BaseModel):
        if not getattr(model, "__pydantic_complete__", True):
            model.model_rebuild()
            built += 1
    return built


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    for sub in cls.__subclasses__():
        found.extend([sub, *_subclasses(sub)])
    return found


def make_tls_context() -> None:
    """Make the SSL context every Prefect client of a run shares (`share_tls_contexts`) now, once."""
    from prefect.client.orchestration import SyncPrefectClient

    share_tls_contexts()
    SyncPrefectClient("http://127.0.0.1/api")


build_deferred_models()
make_tls_context()
load_s3_models()
