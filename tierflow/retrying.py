"""Riding out a catalog that is briefly unreachable (a restarting PostgreSQL, a dropped
connection, a SQLite file busy past its timeout).

Steps of a batch that are one catalog transaction each (start a tier, select its inputs, close
it) are safe to repeat; `catalog_retries` repeats them on CatalogUnavailableError for about
15 s before it gives up and lets the error through, which then fails the batch as transient
(resumable, and resumed by the sweep). Chunk tasks are retried by Prefect instead.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from tierflow.catalog.engine import CatalogUnavailableError

log = logging.getLogger(__name__)

DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds between attempts: 15.5 s in all."""

P = ParamSpec("P")
R = TypeVar("R")


def catalog_retries(step: Callable[P, R]) -> Callable[P, R]:
    """`step`, tried again after each of `DELAYS` while the catalog cannot be reached."""

    @functools.wraps(step)
    def tried(*args: P.args, **kwargs: P.kwargs) -> R:
        for delay in DELAYS:
            try:
                return step(*args, **kwargs)
            except CatalogUnavailableError:
                log.warning("%s: the catalog cannot be reached; trying again in %s s", step.__name__, delay)
                time.sleep(delay)
        return step(*args, **kwargs)

    return tried
