"""One place where errors become HTTP answers, all in the contract's body.

`{"success": false, "status": …, "error": {"type", "message", "details"}}` for every 4xx/5xx:
tierflow's own errors carry their status and type; request validation is a 422 with
`details.validation_errors`; anything unexpected is a 500 whose message says only that, with
the details in the server's log (never a stack trace or a secret in the answer). A 503 (the
server is starting or draining, or what it needs is unreachable) says when to ask again
(`Retry-After`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tierflow.errors import TierflowError, ValidationError

log = logging.getLogger("tierflow.api")

_TYPES = {400: "BadRequestError", 401: "UnauthorizedError", 403: "ForbiddenError", 404: "NotFoundError",
          409: "AlreadyExistsError", 413: "PayloadTooLargeError", 422: "ValidationError", 500: "InternalServerError"}


def error_body(status: int, type_name: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"success": False, "status": status,
            "error": {"type": type_name, "message": message, "details": details or {}}}


RETRY_AFTER_SECONDS = 5
"""Seconds a 503 asks the caller to wait before trying again (a starting runner takes a few)."""


def error_response(status: int, type_name: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})}
    return JSONResponse(error_body(status, type_name, message, details), status_code=status, headers=headers)


async def _tierflow_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, TierflowError)
    if error.status >= 500:
        log.error("request failed: %s", error.message)
    return error_response(error.status, error.type_name, error.message, error.details)


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError | PydanticValidationError)
    problem = ValidationError([{"type": e["type"], "location": list(e["loc"]), "message": e["msg"]}
                               for e in error.errors()])
    return error_response(422, problem.type_name, problem.message or "invalid request", problem.details)


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    status = error.status_code
    type_name = _TYPES.get(status, "BadRequestError" if status < 500 else "InternalServerError")
    message = str(error.detail) if status != 404 else "no such endpoint"
    return error_response(status, type_name, message, headers=getattr(error, "headers", None))


async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error while answering a request")
    return error_response(500, "InternalServerError", "internal error; the server's log has the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TierflowError, _tierflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(PydanticValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
