"""The served deployments: a manual/API one and a cron one (run for real in tests/api/test_served.py)."""

from __future__ import annotations

from pathlib import Path

from deployments.serve import PENDING_ONLY, build_deployments


def test_deployments_are_built_with_a_form_and_a_schedule():
    manual, scheduled, sweep = build_deployments(namespace="quickstart", collection="paragraphs", cron="*/5 * * * *")
    assert sweep.name == "resume-crashed" and sweep.schedules[0].schedule.interval.total_seconds() == 60
    assert manual.name == "trigger-collection" and not manual.schedules
    schema = manual._parameter_openapi_schema.model_dump()
    assert schema["required"] == ["namespace", "collection"]
    assert schema["properties"]["namespace"]["description"] == "The namespace, by id (ns_…) or name."
    request = schema["definitions"]["TriggerRequest"]["properties"]
    assert request["source_filters"]["title"] == "Source filters"
    assert "LogicalOperator" in request["source_filters"]["description"]
    assert scheduled.schedules[0].schedule.cron == "*/5 * * * *"
    assert scheduled.parameters["request"] == {"source_filters": PENDING_ONLY}


def test_prefect_yaml_deployments_point_at_the_flow_with_valid_parameters():
    import importlib

    import yaml

    from flows.trigger import trigger_collection
    from tierflow.process import MALLOC_ARENAS

    spec = yaml.safe_load((Path(__file__).parents[2] / "prefect.yaml").read_text())
    entrypoints = {d["name"]: d["entrypoint"] for d in spec["deployments"]}
    assert entrypoints == {"trigger-collection": "flows/trigger.py:trigger_collection",
                           "process-pending": "flows/trigger.py:trigger_collection",
                           "resume-crashed": "flows/resume.py:resume_crashed_batches"}
    for deployment in spec["deployments"]:
        module, _, name = deployment["entrypoint"].partition(":")
        assert hasattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), name)
        assert deployment["work_pool"]["name"] == "tierflow-pool"
        assert deployment["work_pool"]["job_variables"]["env"]["MALLOC_ARENA_MAX"] == str(MALLOC_ARENAS)
        if "parameters" in deployment:
            checked = trigger_collection.validate_parameters(deployment["parameters"])
            assert checked["request"].source_filters == PENDING_ONLY


def test_the_local_prefect_api_of_tierflow_serve_listens_on_loopback_only(monkeypatch):
    # Anyone who reaches a Prefect API can run tierflow's deployments: the temporary one
    # `tierflow serve` starts must bind loopback. This reads the command Prefect would run, and
    # fails if a new Prefect binds elsewhere.
    import subprocess

    from prefect.server.api.server import SubprocessASGIServer

    from deployments.stack import LOOPBACK

    started: list[list[str]] = []
    monkeypatch.setattr(subprocess, "Popen", lambda args, **_: started.append(list(args)))
    server = SubprocessASGIServer()
    server._run_uvicorn_command()
    (command,) = started
    assert command[command.index("--host") + 1] in LOOPBACK
