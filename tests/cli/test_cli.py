"""The `tierflow` command: messages and exit codes a person sees."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from cli.main import app
from tests.utils.factories import chunk_collection, passthrough_collection, put_text, text_bucket
from tierflow.catalog.engine import open_session
from tierflow.catalog.resources import put_namespace
from tierflow.keys import list_keys

runner = CliRunner()


def write_definitions(tmp_path, **changes) -> str:
    spec = {"namespace": "cli", "buckets": [text_bucket(unique_key=["key"])],
            "collections": [chunk_collection(), passthrough_collection("copies", "chunks")], **changes}
    path = tmp_path / "defs.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_apply_reports_and_is_idempotent(catalog, tmp_path):
    path = write_definitions(tmp_path)
    first = runner.invoke(app, ["apply", path])
    assert first.exit_code == 0 and first.stdout.count("created") == 4
    second = runner.invoke(app, ["apply", path])
    assert second.exit_code == 0 and second.stdout.count("unchanged") == 4


def test_apply_mistake_is_one_line_and_exit_1(catalog, tmp_path):
    path = write_definitions(tmp_path, collections=[passthrough_collection("copies", "nope")])
    result = runner.invoke(app, ["apply", path])
    assert result.exit_code == 1
    assert "collections[0] (copies): source: collection 'nope' was not found" in result.stderr
    assert "Traceback" not in result.output


def test_bad_filter_json_and_bad_filter_language(catalog, tmp_path):
    runner.invoke(app, ["apply", write_definitions(tmp_path)])
    not_json = runner.invoke(app, ["documents", "list", "chunks", "-n", "cli", "--filter", "{oops"])
    assert not_json.exit_code == 1 and "--filter: not valid JSON" in not_json.stderr
    bad = runner.invoke(app, ["documents", "list", "chunks", "-n", "cli", "--filter",
                              json.dumps({"OR": [{"field": "text", "operator": "like", "value": "x"}]})])
    assert bad.exit_code == 1 and "filters.OR[0].operator: 'like' is not one of" in bad.stderr
    wrong_rule = runner.invoke(app, ["trigger", "copies", "-n", "cli", "--include-bucket", "notes"])
    assert wrong_rule.exit_code == 1 and "include_buckets applies only" in wrong_rule.stderr
    unknown = runner.invoke(app, ["batch", "show", "btch_nope"])
    assert unknown.exit_code == 1 and "batch 'btch_nope' was not found" in unknown.stderr


def test_trigger_then_inspect(flows, tmp_path):
    put_text(flows, "notes/a.txt", "one two three four")
    runner.invoke(app, ["apply", write_definitions(tmp_path)])
    result = runner.invoke(app, ["trigger", "chunks", "--namespace", "cli", "--filter", '{"key": "notes/a.txt"}'])
    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout[: result.stdout.index("}") + 1])
    assert response["object_count"] == 1 and response["total_tiers"] == 2

    shown = runner.invoke(app, ["batch", "show", response["batch_id"], "--json"])
    view = json.loads(shown.stdout)
    assert view["status"] == "COMPLETED" and [t["documents_written"] for t in view["tier_tasks"]] == [2, 2]

    task = json.loads(runner.invoke(app, ["task", "show", response["task_id"]]).stdout)
    assert task["task_type"] == "api_collections_trigger" and task["status"] == "COMPLETED"
    assert task["additional_data"]["batch_id"] == response["batch_id"]
    tier_task = json.loads(runner.invoke(app, ["task", "show", view["tier_tasks"][1]["task_id"]]).stdout)
    assert tier_task["task_type"] == "engine_feature_extractor_run" and tier_task["additional_data"]["tier_num"] == 1
    missing = runner.invoke(app, ["task", "show", "00000000-0000-0000-0000-000000000000"])
    assert missing.exit_code == 1 and "task '00000000-0000-0000-0000-000000000000' was not found" in missing.stderr

    nested = runner.invoke(app, ["objects", "list", "notes", "-n", "cli", "--filter", '{"key": {"NOT": 1}}'])
    assert nested.exit_code == 1 and "filters.key: expected a string, number, boolean or null" in nested.stderr
    completed = json.loads(runner.invoke(app, ["objects", "list", "notes", "-n", "cli", "--filter",
                                               '{"AND": [{"field": "status", "value": "completed"}]}']).stdout)
    assert [o["key"] for o in completed["results"]] == ["notes/a.txt"]

    listed = runner.invoke(app, ["documents", "list", "copies", "-n", "cli", "--json",
                                 "--filter", '{"field": "chunk_index", "operator": "gte", "value": 1}'])
    page = json.loads(listed.stdout)
    assert page["pagination"]["total"] == 1 and page["results"][0]["text"] == "four"


def test_a_failing_run_prints_a_message_not_a_traceback(prefect_harness, catalog, moto_endpoint, tmp_path):
    """In its own process, as a person runs it: Prefect's console logs must not show tracebacks."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from prefect.settings import PREFECT_API_URL

    bucket = text_bucket()
    bucket["storage"].update(s3_bucket="no-such-s3-bucket", endpoint_url=moto_endpoint)
    runner.invoke(app, ["apply", write_definitions(tmp_path, buckets=[bucket])])
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "TIERFLOW_DATABASE_URL": catalog}
    result = subprocess.run(
        [sys.executable, "-c", "from cli.main import app; app()", "trigger", "chunks", "-n", "cli"],
        env=env, cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=240, check=False,
    )
    assert result.returncode == 1
    assert "error: s3://no-such-s3-bucket: no such S3 bucket" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_batch_retry_after_a_fix_and_cancel_of_a_finished_batch(flows, tmp_path):
    put_text(flows, "notes/good.txt", "one two three")
    flows.put_object(Bucket="tierflow-test", Key="notes/bad.txt", Body=b"\xff\xfe not utf-8")
    runner.invoke(app, ["apply", write_definitions(tmp_path)])
    result = runner.invoke(app, ["trigger", "chunks", "--namespace", "cli"])
    batch_id = json.loads(result.stdout[: result.stdout.index("}") + 1])["batch_id"]
    view = json.loads(runner.invoke(app, ["batch", "show", batch_id, "--json"]).stdout)
    assert view["status"] == "COMPLETED_WITH_ERRORS" and view["failed_object_count"] == 1

    other_tier = runner.invoke(app, ["batch", "retry", batch_id, "--tier", "1"])  # the failure is tier 0's
    assert other_tier.exit_code == 1 and "no failed inputs" in other_tier.stderr

    put_text(flows, "notes/bad.txt", "now fine")
    retried = runner.invoke(app, ["batch", "retry", batch_id, "--tier", "0"])
    assert retried.exit_code == 0, retried.output
    assert "retried 1 failed input(s)" in retried.stdout
    view = json.loads(runner.invoke(app, ["batch", "show", batch_id, "--json"]).stdout)
    assert view["status"] == "COMPLETED" and view["failed_object_count"] == 0
    assert [t["inputs_succeeded"] for t in view["tier_tasks"]] == [2, 2]

    again = runner.invoke(app, ["batch", "retry", batch_id])
    assert again.exit_code == 1 and "no failed inputs" in again.stderr
    cancelled = runner.invoke(app, ["batch", "cancel", batch_id])
    assert cancelled.exit_code == 1 and f"batch {batch_id} is already COMPLETED" in cancelled.stderr


def test_keys_create_list_revoke(catalog):
    created = runner.invoke(app, ["keys", "create", "--name", "ops"])
    assert created.exit_code == 0
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("tfk_")
    listed = runner.invoke(app, ["keys", "list"])
    assert "ops" in listed.stdout and key.split("_", 2)[2] not in listed.stdout
    assert runner.invoke(app, ["keys", "revoke", "ops"]).exit_code == 0
    with open_session(catalog) as session:
        assert [k["revoked_at"] is not None for k in list_keys(session)] == [True]
    missing = runner.invoke(app, ["keys", "revoke", "nobody"])
    assert missing.exit_code == 1 and "API key 'nobody' was not found" in missing.stderr
    scoped = runner.invoke(app, ["keys", "create", "--name", "x", "--namespace", "nowhere"])
    assert scoped.exit_code == 1 and "namespace 'nowhere' was not found" in scoped.stderr


def test_extractors_list():
    shown = runner.invoke(app, ["extractors", "list", "--json"])
    assert shown.exit_code == 0
    names = [e["feature_extractor_name"] for e in json.loads(shown.stdout)]
    assert "text_extractor" in names and "passthrough_extractor" in names
    table = runner.invoke(app, ["extractors", "list"])
    assert "embedding_dimension (64)" in table.stdout


def test_a_dry_run_shows_an_upper_bound_as_one(flows, tmp_path):
    put_text(flows, "notes/a.txt", "one two three four five six")
    copies = passthrough_collection("copies", "chunks")
    copies["source"]["source_filters"] = {"filters": {"AND": [  # a field extraction writes
        {"field": "text", "operator": "contains", "value": "four"}]}}
    runner.invoke(app, ["apply", write_definitions(tmp_path, collections=[chunk_collection(), copies])])
    assert runner.invoke(app, ["trigger", "chunks", "-n", "cli", "--quiet"]).exit_code == 0  # the history
    result = runner.invoke(app, ["trigger", "chunks", "-n", "cli", "--dry-run"])
    assert result.exit_code == 0, result.output
    end = result.stdout.index("\n}") + 2
    preview = json.loads(result.stdout[:end])
    assert preview["expected_documents"] == [2, 2] and preview["expected_documents_exact"] == [True, False]
    row = next(line for line in result.stdout[end:].splitlines() if "copies" in line)
    assert "≤ 2" in row and "text" in row


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under `command`, as the words that name it."""
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():  # a group's (typer's own click)
        found += command_paths(sub, (*path, name))
    return found


COMMANDS = command_paths(get_command(app))


def test_the_command_tree_is_walked():
    assert ("storage", "revoke") in COMMANDS and ("batch", "show") in COMMANDS and len(COMMANDS) > 30


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "tierflow")
def test_every_help_renders(path):
    shown = runner.invoke(app, [*path, "--help"])
    assert shown.exit_code == 0, f"{shown.output}{shown.exception!r}"
    assert "Usage" in shown.stdout


def storage(*words: str):
    return runner.invoke(app, ["storage", *words])


def test_storage_revoke_finds_a_grant_by_what_storage_list_shows(catalog):
    with open_session(catalog) as session:
        put_namespace(session, name="team-a", description=None)
    assert storage("grant", "-n", "team-a", "s3://minio-files/in", "--endpoint-url", "http://MinIO:9000/").exit_code == 0
    assert storage("grant", "-n", "team-a", "s3://shared/team-a").exit_code == 0
    listed = storage("list").stdout
    assert "s3://minio-files/in/" in listed and "http://minio:9000" in listed

    missing = storage("revoke", "-n", "team-a", "s3://minio-files/out")
    assert missing.exit_code == 1
    message = " ".join(missing.stderr.split())
    assert "storage grant 's3://minio-files/out/' was not found in namespace 'team-a'" in message
    assert "(looked for it through any endpoint)" in message
    assert ("its grants: s3://minio-files/in/ endpoint http://minio:9000; s3://shared/team-a/ endpoint (default)"
            in message)
    wrong_endpoint = storage("revoke", "-n", "team-a", "s3://minio-files/in", "--endpoint-url", "default")
    assert wrong_endpoint.exit_code == 1 and "through the default endpoint" in " ".join(wrong_endpoint.stderr.split())

    revoked = storage("revoke", "-n", "team-a", "s3://minio-files/in")  # as the README shows it
    assert revoked.exit_code == 0, revoked.output
    assert "revoked: s3://minio-files/in/ endpoint http://minio:9000 from namespace team-a" in revoked.stdout
    assert "minio-files" not in storage("list").stdout


def test_storage_revoke_asks_which_endpoint_when_grants_differ_only_by_it(catalog):
    with open_session(catalog) as session:
        put_namespace(session, name="team-a", description=None)
    storage("grant", "-n", "team-a", "s3://shared/team-a")
    storage("grant", "-n", "team-a", "s3://shared/team-a", "--endpoint-url", "http://minio:9000")
    both = storage("revoke", "-n", "team-a", "s3://shared/team-a")
    assert both.exit_code == 1 and "name one with --endpoint-url" in " ".join(both.stderr.split())
    assert storage("revoke", "-n", "team-a", "s3://shared/team-a", "--endpoint-url", "default").exit_code == 0
    left = storage("list").stdout
    assert "http://minio:9000" in left and "(default)" not in left


def test_text_from_users_is_printed_as_it_is_never_read_as_markup(catalog):
    with open_session(catalog) as session:
        put_namespace(session, name="team-a", description=None)
    unknown = runner.invoke(app, ["batch", "show", "btch_[/x]"])
    assert unknown.exit_code == 1 and "batch 'btch_[/x]' was not found" in unknown.stderr
    granted = storage("grant", "-n", "team-a", "s3://shared/[/a]")
    assert granted.exit_code == 0 and "granted: s3://shared/[/a]/" in granted.stdout
    assert "s3://shared/[/a]/" in storage("list").stdout
    bad_port = storage("grant", "-n", "team-a", "s3://shared", "--endpoint-url", "http://minio:99999")
    assert bad_port.exit_code == 1 and "port from 1 to 65535" in bad_port.stderr


def test_importing_the_cli_sets_no_prefect_setting_and_a_command_gives_prefect_time_to_start():
    # Whoever imports the CLI (a test, a bench script) must keep Prefect's settings as they were;
    # the `tierflow` command gives the temporary Prefect API it may start two minutes, not 20 s.
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    imported = ("import os\nbefore = dict(os.environ)\nimport cli, cli.main, cli.output, cli.progress\n"
                "from prefect.settings import get_current_settings\n"
                "print([k for k in os.environ if os.environ[k] != before.get(k)],"
                " get_current_settings().server.ephemeral.startup_timeout_seconds)")
    out = subprocess.run([sys.executable, "-c", imported], env=env, cwd=root, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["[]", "20"]
    command = ("from cli.main import app\napp(['extractors', 'list', '--json'], standalone_mode=False)\n"
               "from prefect.settings import get_current_settings\n"
               "print(get_current_settings().server.ephemeral.startup_timeout_seconds)")
    out = subprocess.run([sys.executable, "-c", command], env=env, cwd=root, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[-1] == "120"
