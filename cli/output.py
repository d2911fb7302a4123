"""Printing for the CLI: tables for batches and documents, one error line for failures."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError as PydanticValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tierflow.errors import TierflowError

# Wide enough for ids and task ids when the output is not a terminal (make demo, CI logs).
# No markup: what is printed holds tenants' text (keys, prefixes, documents), where `[/x]` is no tag.
console = Console(width=None if Console().is_terminal else 160, markup=False)
errors = Console(stderr=True, markup=False)
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    """Print `error: message` to stderr and return the exit to raise."""
    errors.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def friendly_errors(command: F) -> F:
    """Turn tierflow's errors (and pydantic's) into one message and exit code 1, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TierflowError as error:
            raise fail(error.message) from None
        except PydanticValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            raise fail(problems) from None

    return wrapper  # type: ignore[return-value]


class _NoTraceback(logging.Filter):
    """Keep a log record's message, drop its traceback (for people at a terminal)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_tracebacks() -> None:
    """Stop Prefect's console logs from printing tracebacks; the API keeps them for the UI."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.addFilter(_NoTraceback())


def print_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def batch_table(view: dict[str, Any]) -> Table:
    """Per-tier counters and task ids of a batch."""
    table = Table(title=f"batch {view['batch_id']}: {view['status']}", title_justify="left")
    for column in ("tier", "collections", "status", "inputs", "ok", "failed", "docs", "ms", "task id (flow run)"):
        table.add_column(column)
    names = view.get("collection_names") or {}
    for t in view["tier_tasks"]:
        table.add_row(
            str(t["tier_num"]), ", ".join(names.get(c, c) for c in t["collection_ids"]), t["status"],
            str(t["documents_submitted_to_engine"]), str(t["inputs_succeeded"]), str(t["inputs_failed"]),
            str(t["documents_written"]), str(t["duration_ms"] or ""), t["task_id"] or "",
        )
    changes = view.get("changes") or {}
    if any(changes.values()):
        table.caption = " · ".join(f"{name} {count}" for name, count in changes.items())
    return table


def estimates_table(preview: dict[str, Any]) -> Table:
    """A dry run's documents expected per collection: "≤ N" where N is an upper bound, with why."""
    table = Table(title=f"dry run of {preview['collection_id']}: documents expected", title_justify="left")
    for column in ("tier", "collection", "inputs", "documents", "note"):
        table.add_column(column)
    tier_of = {c: t["tier_num"] for t in preview["tiers"] for c in t["collection_ids"]}
    for c in preview["collections"]:
        documents = c["expected_documents"]
        shown = "?" if documents is None else str(documents) if c["expected_documents_exact"] else f"≤ {documents}"
        note = c["reason"] or ("no history yet" if documents is None else "")
        inputs = "?" if c["expected_inputs"] is None else str(c["expected_inputs"])
        table.add_row(str(tier_of[c["collection_id"]]), c["collection_name"], inputs, shown, note)
    if not preview["complete"]:
        table.caption = "the listing was cut: figures cover the objects listed"
    return table


def documents_table(title: str, documents: list[dict[str, Any]], fields: int = 4) -> Table:
    """A few documents, with their id, a few fields and their lineage path."""
    table = Table(title=title, title_justify="left")
    table.add_column("document_id")
    table.add_column("fields")
    table.add_column("lineage path")
    for doc in documents:
        shown = {k: v for k, v in doc.items() if k not in ("document_id", "collection_id", "_internal")}
        text = ", ".join(f"{k}={_short(v)}" for k, v in list(shown.items())[:fields])
        table.add_row(doc["document_id"], text, doc["_internal"]["lineage"]["path"])
    return table


def search_table(title: str, results: list[dict[str, Any]]) -> Table:
    """Search results: score, document id, and the fields that are not vectors."""
    table = Table(title=title, title_justify="left")
    for column in ("score", "document_id", "fields"):
        table.add_column(column)
    for doc in results:
        shown = {k: v for k, v in doc.items() if k not in ("document_id", "collection_id", "_internal", "score")
                 and not (isinstance(v, list) and len(v) > 16)}
        fields = ", ".join(f"{k}={_short(v, 72)}" for k, v in shown.items())
        table.add_row(f"{doc['score']:.3f}", doc["document_id"], fields)
    return table


def _short(value: Any, limit: int = 48) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verify_table(report: dict[str, Any]) -> Table:
    """`tierflow collections verify`: one row per collection, its differences and a few ids."""
    verdict = "no differences" if report["clean"] else f"{report['differences']} difference(s)"
    table = Table(title=f"verify: {verdict}")
    for column in ("tier", "collection", "inputs", "documents", "unexpected docs", "unprocessed", "miscounted"):
        table.add_column(column)
    for tier in report["tiers"]:
        for row in tier["collections"]:
            cells = [row[kind] for kind in ("unexpected_documents", "unprocessed_inputs", "miscounted_inputs")]
            table.add_row(str(tier["tier_num"]), row["collection_name"], str(row["expected_inputs"]),
                          str(row["documents"]),
                          *(f"{c['count']}" + (f" ({', '.join(c['sample'][:3])}…)" if c["count"] else "")
                            for c in cells))
    return table
