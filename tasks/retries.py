"""When Prefect should retry a task: only for errors tierflow marks transient."""

from __future__ import annotations

from typing import Any

from tierflow.errors import is_transient


def retry_if_transient(_task: Any, _task_run: Any, state: Any) -> bool:
    """Retry condition: repeat only what can succeed (throttling, unreachable S3)."""
    try:
        state.result()
    except Exception as error:  # the task's own exception, re-raised by Prefect
        return is_transient(error)
    return False
