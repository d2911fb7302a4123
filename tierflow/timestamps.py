"""One canonical text form for timestamps.

The catalog stores every timestamp as `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (UTC, fixed width), so
text order is time order in SQL and in Python alike; filters convert timestamp values to this form.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware, UTC."""
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """Canonical text of an aware (or naive-as-UTC) datetime."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def now_text() -> str:
    """Canonical text of the current time."""
    return format_timestamp(utcnow())


def canonical_timestamp(text: str) -> str | None:
    """The canonical form of an ISO-8601 timestamp that names its timezone, else None.

    Dates and timestamps without a zone are left as they are: their text already sorts with the
    canonical form, and guessing a zone would change their meaning.
    """
    if len(text) < 16 or text[4:5] != "-" or "T" not in text.upper():
        return None
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return format_timestamp(moment)
