"""`/health` and `/ready`: whether the process is up, and whether a trigger would be taken now.

Neither needs a key: load balancers and orchestrators ask them. `/ready` names what is missing
(the catalog, the Prefect API, the trigger deployment's runner) and nothing else.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.errors import error_response
from deployments.runs import readiness

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """200 while the process answers."""
    return {"status": "ok"}


@router.get("/ready", response_model=None)
def ready() -> dict[str, object] | JSONResponse:
    """200 when a trigger would be accepted now; 503 with the reason otherwise."""
    checks = readiness()
    failing = {name: state for name, state in checks.items() if state != "ok"}
    if failing:
        reason = "; ".join(f"{name}: {state}" for name, state in failing.items())
        return error_response(503, "ServiceUnavailableError", f"not ready: {reason}", {"checks": checks})
    return {"status": "ready", "checks": checks}
