"""The error classes of tierflow.

One root (`TierflowError`) so callers can catch everything tierflow raises; each error carries
its facts as attributes and builds its own message. Faces (CLI, REST API, flows) translate these
into exit codes, HTTP statuses or failed runs; the core never knows about those.

`TransientError` marks failures that may succeed when repeated (throttling, dropped
connections); `TerminalError` marks those that will not (bad data, missing keys). Retry logic asks
`is_transient()` instead of guessing from messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError as PydanticValidationError


class TierflowError(Exception):
    """Root of every error tierflow raises on purpose."""

    status: int = 500
    type_name: str = "InternalServerError"
    category: str = "runtime"
    """What kind of failure this is when it fails one input (`resource`, `permission`, …)."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class TransientError(TierflowError):
    """A failure that may succeed when tried again."""


class TerminalError(TierflowError):
    """A failure that will fail again the same way: do not retry."""


class BadRequestError(TerminalError):
    """The request is well-formed but not acceptable (e.g. a filter that does not apply)."""

    status = 400
    type_name = "BadRequestError"


class NotFoundError(TerminalError):
    """A named resource does not exist in the namespace."""

    status = 404
    type_name = "NotFoundError"

    def __init__(self, kind: str, identifier: str, *, scope: str | None = None) -> None:
        where = f" in namespace '{scope}'" if scope else ""
        super().__init__(
            f"{kind} '{identifier}' was not found{where}",
            details={"resource": kind, "identifier": identifier},
        )
        self.kind = kind
        self.identifier = identifier


class AuthenticationError(TerminalError):
    """The request carries no API key, a malformed one, or one that is unknown or revoked."""

    status = 401
    type_name = "UnauthorizedError"


class ForbiddenError(TerminalError):
    """The API key is valid but limited to other namespaces."""

    status = 403
    type_name = "ForbiddenError"


class AlreadyExistsError(TerminalError):
    """A resource with that name already exists."""

    status = 409
    type_name = "AlreadyExistsError"


class ValidationError(TerminalError):
    """Input that does not satisfy a schema: carries one entry per problem, each with its place."""

    status = 422
    type_name = "ValidationError"

    def __init__(self, errors: Sequence[dict[str, Any]], *, prefix: str = "") -> None:
        self.errors = list(errors)
        lines = [f"{format_location(e['location'])}: {e['message']}" for e in self.errors]
        message = "; ".join(lines)
        super().__init__(
            f"{prefix}{message}" if prefix else message,
            details={"validation_errors": self.errors},
        )


def format_location(location: Sequence[str | int]) -> str:
    """Render a location list as `AND[1].operator` (indexes in brackets, keys dotted)."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(root)"


def public_message(error: BaseException) -> str:
    """What a caller may read of an error: tierflow's own message (built from facts it chose to
    show), or for anything else its kind only. The full exception belongs in the server's log:
    library and driver messages can name hosts, accounts, roles and SQL."""
    if isinstance(error, TierflowError):
        return error.message
    if isinstance(error, PydanticValidationError):
        return "; ".join(f"{format_location(e['loc'])}: {e['msg']}" for e in error.errors()[:5])
    return f"unexpected {type(error).__name__}; the server's log has the details"


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying (tierflow's transient marker only)."""
    return isinstance(error, TransientError)
