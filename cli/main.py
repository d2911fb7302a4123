"""`tierflow`: apply definitions, trigger collections, inspect batches, tasks and documents."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.output import (
    batch_table,
    console,
    documents_table,
    estimates_table,
    fail,
    friendly_errors,
    print_json,
    quiet_tracebacks,
    search_table,
    verify_table,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
batch_app = typer.Typer(no_args_is_help=True, help="Inspect batches.")
task_app = typer.Typer(no_args_is_help=True, help="Inspect tasks (Prefect flow runs).")
documents_app = typer.Typer(no_args_is_help=True, help="Read a collection's documents.")
objects_app = typer.Typer(no_args_is_help=True, help="Read a bucket's objects.")
deployments_app = typer.Typer(no_args_is_help=True, help="Serve tierflow's Prefect deployments.")
app.add_typer(batch_app, name="batch")
app.add_typer(task_app, name="task")
app.add_typer(documents_app, name="documents")
app.add_typer(objects_app, name="objects")
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys of the REST API.")
extractors_app = typer.Typer(no_args_is_help=True, help="The feature extractors collections can use.")
app.add_typer(extractors_app, name="extractors")
app.add_typer(deployments_app, name="deployments")
app.add_typer(keys_app, name="keys")
collections_app = typer.Typer(no_args_is_help=True, help="Check collections against their sources.")
app.add_typer(collections_app, name="collections")
storage_app = typer.Typer(no_args_is_help=True, help="Grant namespaces S3 locations (what tenants' keys may reach).")
app.add_typer(storage_app, name="storage")

NamespaceOption = Annotated[str, typer.Option("--namespace", "-n", help="Namespace id or name.")]


EPHEMERAL_STARTUP_SECONDS = "120"
"""How long a command without `PREFECT_API_URL` waits for the temporary Prefect API Prefect starts
in its process (Prefect's default: 20 s). On a busy two-core machine it needs nearly that (18 s
measured), and a command that times out there has done nothing at all."""


@app.callback()
def tune_process() -> None:
    """Before any command, and so before any thread and before Prefect reads its settings: this
    process runs batches (or starts those that do). An explicit value in the environment wins."""
    import os

    from tierflow.process import configure_process

    configure_process()
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_SECONDS)


def _json_option(text: str | None, name: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise fail(f"{name}: not valid JSON ({error.msg} at character {error.pos})") from None


@app.command()
@friendly_errors
def apply(file: Annotated[Path, typer.Argument(help="A definitions file (YAML).")]) -> None:
    """Create or update the namespace, buckets and collections of FILE (idempotent)."""
    from tierflow.definitions import apply_file

    report = apply_file(file)
    table = Table(title=f"applied {file}", title_justify="left")
    for column in ("kind", "name", "result"):
        table.add_column(column)
    for kind, name, action in report.actions:
        table.add_row(kind, name, action)
    console.print(table)


@app.command()
@friendly_errors
def trigger(
    collection: Annotated[str, typer.Argument(help="Collection id or name.")],
    namespace: NamespaceOption,
    include_bucket: Annotated[list[str] | None, typer.Option(help="Only this source bucket (repeatable).")] = None,
    include_collection: Annotated[
        list[str] | None, typer.Option(help="Only this source collection (repeatable).")
    ] = None,
    object_id: Annotated[list[str] | None, typer.Option(help="Only this object (repeatable).")] = None,
    filter_json: Annotated[
        str | None, typer.Option("--filter", help="source_filters as JSON (a LogicalOperator).")
    ] = None,
    dedup_strategy: Annotated[
        str | None, typer.Option(help="skip | replace | force (see the README's 'Failures and retries').")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what the trigger would do.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result (JSON).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's log lines too.")] = False,
) -> None:
    """Run the trigger flow for COLLECTION and every collection downstream, with a progress bar
    per tier in a terminal; show the batch."""
    from cli.progress import BatchBars, quiet_prefect_logs
    from deployments.operations import prepare_batch
    from deployments.runs import batch_run_ids, wait_until_recorded
    from flows.trigger import trigger_collection
    from tierflow.batch_view import batch_view
    from tierflow.dry_run import preview_trigger
    from tierflow.models.trigger import TriggerRequest

    request = TriggerRequest(
        include_buckets=include_bucket, include_collections=include_collection,
        object_ids=object_id, source_filters=_json_option(filter_json, "--filter"),
        dedup_strategy=dedup_strategy,
    )
    if dry_run:
        preview = preview_trigger(namespace=namespace, collection=collection, request=request)
        print_json(preview)
        if not quiet:
            console.print(estimates_table(preview))
        return
    parameters, _ = prepare_batch(namespace=namespace, collection=collection, request=request)
    batch_id = parameters["batch_id"]
    quiet_tracebacks()
    if not verbose:
        quiet_prefect_logs()
    if quiet or not console.is_terminal:  # bars only where someone watches
        response = asyncio.run(trigger_collection(**parameters))
    else:
        response = asyncio.run(BatchBars(console).follow(batch_id, until=trigger_collection(**parameters)))
    print_json(response)
    if not quiet:
        console.print(batch_table(batch_view(batch_id)))
    wait_until_recorded(batch_run_ids(batch_id))  # before a temporary Prefect API stops with us


@batch_app.command("watch")
@friendly_errors
def batch_watch(batch_id: str) -> None:
    """Follow a batch with a progress bar per tier until it ends; then show it."""
    from cli.progress import BatchBars
    from tierflow.batch_view import batch_view

    asyncio.run(BatchBars(console).follow(batch_id))
    console.print(batch_table(batch_view(batch_id)))


@batch_app.command("show")
@friendly_errors
def batch_show(batch_id: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show a batch: status, per-tier counters and task ids, failed inputs."""
    from tierflow.batch_view import batch_view

    view = batch_view(batch_id)
    if as_json:
        print_json(view)
        return
    console.print(batch_table(view))
    for failure in view["failed_inputs"][:20]:
        message = (failure["error"] or {}).get("message")
        console.print(f"failed {failure['input_id']} (tier {failure['tier_num']}): {message}")


@batch_app.command("cancel")
@friendly_errors
def batch_cancel(batch_id: str) -> None:
    """Cancel a batch: its Prefect runs are cancelled and it ends CANCELED."""
    from deployments import operations

    console.print(batch_table(operations.cancel(batch_id)))


@batch_app.command("retry")
@friendly_errors
def batch_retry(
    batch_id: str,
    transient_only: Annotated[bool, typer.Option(help="Only inputs that failed transiently.")] = False,
    tier: Annotated[list[int] | None, typer.Option(help="Only this tier (repeatable).")] = None,
) -> None:
    """Re-run a finished batch's failed inputs (here, as a new flow run); succeeded ones are untouched."""
    from deployments import operations
    from tierflow.batch_view import batch_view

    quiet_tracebacks()
    count, _ = operations.retry(batch_id, transient_only=transient_only, tier_nums=tier,
                                via=operations.Via.THIS_PROCESS)
    console.print(f"retried {count} failed input(s) of batch {batch_id}", highlight=False)
    console.print(batch_table(batch_view(batch_id)))


@batch_app.command("resume")
@friendly_errors
def batch_resume(
    batch_id: str,
    force: Annotated[bool, typer.Option(
        help="Resume now, though the dead run's lease has not run out yet (you know its process is gone).")] = False,
) -> None:
    """Finish a batch whose run died, or that FAILED with inputs pending: only inputs not done yet
    are processed, nothing twice. (`tierflow serve` does this by itself once the lease runs out.)"""
    from deployments import operations
    from tierflow.batch_view import batch_view

    quiet_tracebacks()
    operations.resume(batch_id, force=force, via=operations.Via.THIS_PROCESS)
    console.print(batch_table(batch_view(batch_id)))


@task_app.command("show")
@friendly_errors
def task_show(task_id: str) -> None:
    """Show a task: the Prefect flow run's status with its batch."""
    from deployments.runs import read_task

    print_json(asyncio.run(read_task(task_id)))


@documents_app.command("list")
@friendly_errors
def documents_list(
    collection: str,
    namespace: NamespaceOption,
    filter_json: Annotated[str | None, typer.Option("--filter", help="A LogicalOperator as JSON.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    offset: Annotated[int, typer.Option(min=0, max=1_000_000_000)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a collection's documents (filtered in the catalog)."""
    from tierflow.browse import list_collection_documents

    page = list_collection_documents(
        namespace=namespace, collection=collection, filters=_json_option(filter_json, "--filter"),
        limit=limit, offset=offset,
    )
    if as_json:
        print_json(page)
        return
    console.print(documents_table(f"{collection}: {page['pagination']['total']} document(s)", page["results"]))


@documents_app.command("search")
@friendly_errors
def documents_search(
    collection: str,
    query: Annotated[str, typer.Argument(help="Text to search for (embedded with the collection's model).")],
    namespace: NamespaceOption,
    filter_json: Annotated[str | None, typer.Option("--filter", help="A LogicalOperator as JSON (pre-filter).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search a collection of embeddings: its documents nearest QUERY, best first."""
    from tierflow.search import search_documents

    found = search_documents(namespace=namespace, collection=collection, query_text=query, limit=limit,
                             filters=_json_option(filter_json, "--filter"))
    if as_json:
        print_json(found)
        return
    console.print(search_table(f"{collection}: nearest to {query!r}", found["results"]))


@collections_app.command("verify")
@friendly_errors
def collections_verify(
    collection: str,
    namespace: NamespaceOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check COLLECTION and every collection below it against their sources, changing nothing:
    documents no input explains, inputs not processed, counts that differ. Exit 1 if any."""
    from tierflow.catalog import resources
    from tierflow.catalog.engine import open_session
    from tierflow.settings import get_settings
    from tierflow.verify import verify_collection

    with open_session(get_settings().database_url) as session:
        namespace_id = resources.get_namespace(session, identifier=namespace)["namespace_id"]
    report = verify_collection(namespace_id=namespace_id, collection=collection)
    if as_json:
        print_json(report)
    else:
        console.print(verify_table(report))
    if not report["clean"]:
        raise typer.Exit(1)


@objects_app.command("list")
@friendly_errors
def objects_list(
    bucket: str,
    namespace: NamespaceOption,
    filter_json: Annotated[str | None, typer.Option("--filter", help="A LogicalOperator as JSON.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    offset: Annotated[int, typer.Option(min=0, max=1_000_000_000)] = 0,
) -> None:
    """List a bucket's objects (filtered in the catalog), as JSON."""
    from tierflow.browse import list_bucket_objects

    print_json(list_bucket_objects(
        namespace=namespace, bucket=bucket, filters=_json_option(filter_json, "--filter"), limit=limit, offset=offset,
    ))


@deployments_app.command("serve")
@friendly_errors
def deployments_serve(
    namespace: Annotated[str, typer.Option(help="Namespace of the scheduled deployment.")] = "quickstart",
    collection: Annotated[str, typer.Option(help="Collection of the scheduled deployment.")] = "paragraphs",
    cron: Annotated[str, typer.Option(help="Schedule of the scheduled deployment.")] = "*/15 * * * *",
) -> None:
    """Serve the trigger deployment (manual and API runs) and a cron deployment for new objects, on
    PREFECT_API_URL or a local Prefect API of tierflow's own; stops cleanly on SIGTERM."""
    from deployments.stack import run_deployments

    run_deployments(namespace=namespace, collection=collection, cron=cron,
                    announce=lambda line: console.print(line, highlight=False, soft_wrap=True))


@app.command()
@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="Address the REST API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the REST API.")] = 8000,
    namespace: Annotated[str, typer.Option(help="Namespace of the scheduled deployment.")] = "quickstart",
    collection: Annotated[str, typer.Option(help="Collection of the scheduled deployment.")] = "paragraphs",
    cron: Annotated[str, typer.Option(help="Schedule of the scheduled deployment.")] = "*/15 * * * *",
    runner: Annotated[bool, typer.Option(
        help="Also run the deployments here; --no-runner leaves them to a work pool's workers.")] = True,
) -> None:
    """Run the REST API and a runner for tierflow's deployments (stops cleanly on SIGTERM)."""
    from deployments.stack import run_api_only, run_stack

    if not runner:
        run_api_only(host=host, port=port, announce=lambda line: console.print(line, highlight=False, soft_wrap=True))
        return
    run_stack(host=host, port=port, namespace=namespace, collection=collection, cron=cron,
              announce=lambda line: console.print(line, highlight=False, soft_wrap=True))


@keys_app.command("create")
@friendly_errors
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A name to recognise the key by.")],
    namespace: Annotated[list[str] | None, typer.Option(
        "--namespace", "-n", help="Limit the key to this namespace (repeatable); default: every namespace.")] = None,
) -> None:
    """Create an API key; the key itself is printed once, on the last line.

    Without --namespace it is the operator's key (every namespace, any storage); with it, a
    tenant's: its buckets and objects reach only storage granted to its namespaces."""
    from tierflow.catalog.engine import open_session
    from tierflow.keys import create_key
    from tierflow.settings import get_settings

    with open_session(get_settings().database_url) as session:
        record, key = create_key(session, name=name, namespaces=namespace)
    scope = ", ".join(record["namespaces"]) if record["namespaces"] else "every namespace"
    console.print(f"created key {record['key_id']} ({name}) for {scope}; store it now, it is not shown again:",
                  highlight=False, soft_wrap=True)
    typer.echo(key)


@keys_app.command("list")
@friendly_errors
def keys_list() -> None:
    """List API keys (never their secrets)."""
    from tierflow.catalog.engine import open_session
    from tierflow.keys import list_keys
    from tierflow.settings import get_settings

    with open_session(get_settings().database_url) as session:
        records = list_keys(session)
    table = Table(title="API keys", title_justify="left")
    for column in ("key id", "name", "namespaces", "created", "revoked"):
        table.add_column(column)
    for r in records:
        table.add_row(r["key_id"], r["name"], ", ".join(r["namespaces"] or ["(all)"]), r["created_at"],
                      r["revoked_at"] or "")
    console.print(table)


@keys_app.command("revoke")
@friendly_errors
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or name.")]) -> None:
    """Revoke an API key: requests with it get 401 from then on."""
    from tierflow.catalog.engine import open_session
    from tierflow.keys import revoke_key
    from tierflow.settings import get_settings

    with open_session(get_settings().database_url) as session:
        record = revoke_key(session, key=key)
    console.print(f"revoked key {record['key_id']} ({record['name']})", highlight=False)


@storage_app.command("grant")
@friendly_errors
def storage_grant(
    location: Annotated[str, typer.Argument(help="s3://BUCKET or s3://BUCKET/PREFIX.")],
    namespace: NamespaceOption,
    endpoint_url: Annotated[str | None, typer.Option(help="S3-compatible endpoint (default: the server's).")] = None,
    region: Annotated[str | None, typer.Option(help="Region of the location.")] = None,
) -> None:
    """Let NAMESPACE's keys bind buckets to LOCATION (and read objects there)."""
    from tierflow.storage_grants import grant_storage

    granted, name, new = grant_storage(namespace=namespace, location=location, endpoint_url=endpoint_url,
                                       region=region)
    where = f" through {granted.endpoint_url}" if granted.endpoint_url else ""
    console.print(f"{'granted' if new else 'already granted'}: {granted.url()}{where} to namespace {name}",
                  highlight=False)


@storage_app.command("revoke")
@friendly_errors
def storage_revoke(
    location: Annotated[str, typer.Argument(help=r"The granted s3://BUCKET\[/PREFIX] (as `storage list` shows it).")],
    namespace: NamespaceOption,
    endpoint_url: Annotated[str | None, typer.Option(
        help="The grant's endpoint ('default' for the server's), needed only when grants of LOCATION differ "
             "by endpoint.")] = None,
) -> None:
    """Take a grant back: buckets bound inside it stop being listed or read."""
    from tierflow.storage_grants import revoke_storage, shown

    granted, name = revoke_storage(namespace=namespace, location=location, endpoint_url=endpoint_url)
    console.print(f"revoked: {shown(granted)} from namespace {name}", highlight=False)


@storage_app.command("list")
@friendly_errors
def storage_list(
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace.")] = None,
) -> None:
    """List storage grants."""
    from tierflow.storage_grants import list_storage_grants

    table = Table(title="storage grants", title_justify="left")
    for column in ("namespace", "location", "endpoint", "region", "granted"):
        table.add_column(column)
    for r in list_storage_grants(namespace=namespace):
        table.add_row(r["namespace_name"], f"s3://{r['s3_bucket']}/{r['prefix']}", r["endpoint_url"] or "(default)",
                      r["region"] or "", r["created_at"])
    console.print(table)


@extractors_app.command("list")
@friendly_errors
def extractors_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every extractor (built-in or plugin) with its parameters."""
    from tierflow.extractors import describe_extractors

    described = describe_extractors()
    if as_json:
        print_json(described)
        return
    table = Table(title="feature extractors", title_justify="left")
    for column in ("name", "version", "reads", "parameters (default)", "description"):
        table.add_column(column)
    for e in described:
        params = e["parameters_schema"].get("properties", {})
        shown = ", ".join(f"{k} ({v['default']})" if "default" in v else k for k, v in params.items())
        table.add_row(e["feature_extractor_name"], e["version"], ", ".join(e["input_types"]), shown or "-",
                      e["description"])
    console.print(table)


@app.command()
@friendly_errors
def demo(
    definitions: Annotated[Path, typer.Option(help="Definitions to apply.")] = Path("examples/quickstart.yaml"),
    data: Annotated[Path, typer.Option(help="Folder of sample files to upload.")] = Path("examples/data"),
) -> None:
    """Run the quickstart on embedded defaults: local S3 (moto), SQLite, Prefect's local API."""
    from cli.demo import run_demo

    run_demo(definitions=definitions, data=data)


db_app = typer.Typer(no_args_is_help=True, help="The catalog database's schema.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@friendly_errors
def db_upgrade() -> None:
    """Create or migrate the catalog's tables to this version's schema (TIERFLOW_DATABASE_URL).

    Run it once per new version against a shared PostgreSQL catalog before starting workers; a
    SQLite catalog is upgraded on first use."""
    from tierflow.catalog.engine import create_catalog_engine
    from tierflow.catalog.migrate import upgrade
    from tierflow.settings import get_settings

    engine = create_catalog_engine(get_settings().database_url)
    try:
        before, after = _catalog_call(engine, upgrade)
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    change = f"already at {after}" if before == after else f"{before or 'empty'} → {after}"
    console.print(f"catalog {where}: {change}")


@db_app.command("check")
@friendly_errors
def db_check() -> None:
    """Exit 0 if the catalog is at this version's schema, 1 (saying what to do) if not; say how
    vector searches are answered here."""
    from tierflow.catalog.engine import create_catalog_engine
    from tierflow.catalog.migrate import current_revision, head_revision
    from tierflow.search import describe_search
    from tierflow.settings import get_settings

    engine = create_catalog_engine(get_settings().database_url)
    try:
        current = _catalog_call(engine, current_revision)
        search = _catalog_call(engine, describe_search)
    finally:
        engine.dispose()
    if current != head_revision():
        raise fail(f"catalog schema is at {current or 'none'}, this tierflow needs {head_revision()}: "
                   "run `tierflow db upgrade`")
    console.print(f"catalog schema at {current}")
    console.print(search, highlight=False)


def _catalog_call(engine: Any, func: Any) -> Any:
    """`func(engine)`, with a database that cannot be reached turned into one clear message."""
    from sqlalchemy.exc import OperationalError

    try:
        return func(engine)
    except OperationalError as error:
        where = engine.url.render_as_string(hide_password=True)
        raise fail(f"cannot reach the catalog at {where}: {str(error.orig).strip().splitlines()[0]}") from None
