"""Defining buckets and collections, from a YAML file (`tierflow apply`) or from the API.

A file is applied in one transaction: either every entry is in the catalog afterwards or none
changed. Applying the same file again changes nothing. Every mistake is reported with the file,
the entry and the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.orm import Session

from tierflow.catalog import resources
from tierflow.catalog.engine import open_session
from tierflow.catalog.grants import granted_locations
from tierflow.dag import find_cycle
from tierflow.errors import AlreadyExistsError, BadRequestError, NotFoundError, TierflowError, ValidationError
from tierflow.extractors import collection_extractor
from tierflow.grants import granted_binding
from tierflow.models.definitions import BucketSpec, CollectionSpec, NamespaceSpec
from tierflow.settings import get_settings


class DefinitionsFile(BaseModel):
    """The layout of a definitions file: one namespace, its buckets and collections."""

    model_config = ConfigDict(extra="forbid")
    namespace: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    description: str | None = None
    buckets: list[dict[str, Any]] = Field(default_factory=list)
    collections: list[dict[str, Any]] = Field(default_factory=list)


class DefinitionError(TierflowError):
    """A definitions file has a mistake; the message names the file, the entry and the field."""

    status = 400
    type_name = "BadRequestError"


@dataclass
class ApplyReport:
    """What applying a file did, entry by entry (`created`, `updated` or `unchanged`)."""

    namespace_id: str = ""
    actions: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(action != "unchanged" for _, _, action in self.actions)


def _pydantic_errors(error: PydanticValidationError) -> list[dict[str, Any]]:
    return [{"type": e["type"], "location": list(e["loc"]), "message": e["msg"]} for e in error.errors()]


def define_bucket(session: Session, *, namespace_id: str, spec: BucketSpec) -> tuple[dict[str, Any], bool]:
    """Create or update a bucket from its spec."""
    return resources.put_bucket(session, namespace_id=namespace_id, values=spec.model_dump(mode="json"))


def define_collection(session: Session, *, namespace_id: str, spec: CollectionSpec) -> tuple[dict[str, Any], bool]:
    """Create or update a collection: resolve its sources, check its extractor, refuse cycles."""
    source = spec.source.model_dump(mode="json", exclude_none=True)
    source.pop("collection_id", None)
    ids = []
    for identifier in spec.source.ids:
        if spec.source.type == "bucket":
            row = resources.get_bucket(session, namespace_id=namespace_id, identifier=identifier)
        else:
            row = resources.get_collection(session, namespace_id=namespace_id, identifier=identifier)
            _refuse_carried_vector(spec, row)
        ids.append(row[f"{spec.source.type}_id"])
    source["bucket_ids" if spec.source.type == "bucket" else "collection_ids"] = ids
    extractor_spec = spec.feature_extractor
    extractor, params = collection_extractor(extractor_spec.model_dump(mode="json"), spec.collection_name)
    output_schema = {"properties": {
        **extractor.output_schema_for(params),
        **{(p.target_path or p.source_path.rsplit(".", 1)[-1]): {"description": f"copied from {p.source_path}"}
           for p in extractor_spec.field_passthrough},
    }}
    values = {
        "collection_name": spec.collection_name, "description": spec.description, "source": source,
        "feature_extractor": extractor_spec.model_dump(mode="json"), "output_schema": output_schema,
        "enabled": spec.enabled, "metadata": spec.metadata,
    }
    existing = resources.list_collections(session, namespace_id=namespace_id)
    candidate = {"collection_id": "(new)", **values}
    for row in existing:
        if row["collection_name"] == spec.collection_name:
            candidate["collection_id"] = row["collection_id"]
    graph = [r for r in existing if r["collection_id"] != candidate["collection_id"]] + [candidate]
    if cycle := find_cycle(graph):
        names = {r["collection_id"]: r["collection_name"] for r in graph}
        raise BadRequestError(
            "source: this would make a cycle: " + " -> ".join(names.get(c, c) for c in cycle),
            details={"field": "source"},
        )
    return resources.put_collection(session, namespace_id=namespace_id, values=values)


def _refuse_carried_vector(spec: CollectionSpec, upstream: dict[str, Any]) -> None:
    """BadRequestError when a field_passthrough names the upstream collection's vector: a vector
    stays with the collection whose extractor makes it (searchable there), so no copy of it
    would ever be made downstream."""
    extractor, params = collection_extractor(upstream["feature_extractor"], upstream["collection_name"])
    vector = extractor.vector_field(params)
    for i, item in enumerate(spec.feature_extractor.field_passthrough):
        if vector is not None and item.source_path.split(".", 1)[0] == vector:
            where = f"feature_extractor.field_passthrough[{i}].source_path"
            raise BadRequestError(
                f"{where}: '{vector}' is the vector of collection '{upstream['collection_name']}'; vectors are "
                "not carried downstream (search that collection, or embed this one's text)",
                details={"field": where})


def _refuse_existing(session: Session, kind: str, name: str, namespace_id: str | None) -> None:
    getter = {"namespace": lambda: resources.get_namespace(session, identifier=name),
              "bucket": lambda: resources.get_bucket(session, namespace_id=namespace_id or "", identifier=name),
              "collection": lambda: resources.get_collection(session, namespace_id=namespace_id or "", identifier=name)}
    try:
        getter[kind]()
    except NotFoundError:
        return
    raise AlreadyExistsError(f"{kind} '{name}' already exists", details={"resource": kind, "name": name})


def create_namespace(session: Session, *, spec: NamespaceSpec) -> dict[str, Any]:
    """A new namespace; AlreadyExistsError when the name is taken."""
    _refuse_existing(session, "namespace", spec.namespace_name, None)
    return resources.put_namespace(session, name=spec.namespace_name, description=spec.description)[0]


def create_bucket(session: Session, *, namespace_id: str, spec: BucketSpec, tenant: bool = False) -> dict[str, Any]:
    """A new bucket; AlreadyExistsError when the namespace has one of that name.

    A tenant's bucket (`tenant`) may bind only storage that a grant of its namespace covers, and
    takes the grant's endpoint and region (NotGrantedError otherwise)."""
    _refuse_existing(session, "bucket", spec.bucket_name, namespace_id)
    if not tenant:
        return define_bucket(session, namespace_id=namespace_id, spec=spec)[0]
    values = spec.model_dump(mode="json")
    if spec.storage is not None:
        namespace = resources.get_namespace(session, identifier=namespace_id)["namespace_name"]
        values["storage"] = granted_binding(namespace, granted_locations(session, namespace_id=namespace_id),
                                            values["storage"])
    return resources.put_bucket(session, namespace_id=namespace_id, values={**values, "tenant_defined": True})[0]


def create_collection(session: Session, *, namespace_id: str, spec: CollectionSpec) -> dict[str, Any]:
    """A new collection (sources, extractor and cycles checked); AlreadyExistsError on its name."""
    _refuse_existing(session, "collection", spec.collection_name, namespace_id)
    return define_collection(session, namespace_id=namespace_id, spec=spec)[0]


def _ordered(collections: list[dict[str, Any]]) -> Iterable[tuple[int, dict[str, Any]]]:
    """File entries with collections sourced from other entries placed after those."""
    names = {c.get("collection_name"): i for i, c in enumerate(collections)}
    done: set[int] = set()

    def visit(i: int, trail: tuple[int, ...]) -> Iterable[tuple[int, dict[str, Any]]]:
        if i in done or i in trail:
            return
        source = collections[i].get("source") or {}
        refs = [*(source.get("collection_ids") or []), *filter(None, [source.get("collection_id")])]
        for ref in refs:
            if ref in names:
                yield from visit(names[ref], (*trail, i))
        done.add(i)
        yield i, collections[i]

    for i in range(len(collections)):
        yield from visit(i, ())


def _entry_error(path: Path, entry: str, error: TierflowError) -> DefinitionError:
    if isinstance(error, ValidationError):
        detail = error.message
    elif isinstance(error, NotFoundError):
        detail = f"source: {error.message}"
    else:
        detail = error.message
    return DefinitionError(f"{path}: {entry}: {detail}", details={"file": str(path), "entry": entry})


def apply_file(path: str | Path) -> ApplyReport:
    """Apply a definitions file; raise DefinitionError naming the file, entry and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DefinitionError(f"{path}: cannot read the file ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise DefinitionError(f"{path}: not valid YAML ({error})") from error
    try:
        document = DefinitionsFile.model_validate(raw if raw is not None else {})
    except PydanticValidationError as error:
        raise _entry_error(path, "file", ValidationError(_pydantic_errors(error))) from error
    report = ApplyReport()
    with open_session(get_settings().database_url) as session:
        ns, changed = resources.put_namespace(session, name=document.namespace, description=document.description)
        report.namespace_id = ns["namespace_id"]
        report.actions.append(("namespace", document.namespace, _action(changed, ns)))
        entries: list[tuple[str, int, dict[str, Any], Any, Any]] = [
            ("bucket", i, e, BucketSpec, define_bucket) for i, e in enumerate(document.buckets)
        ]
        entries += [("collection", i, e, CollectionSpec, define_collection) for i, e in _ordered(document.collections)]
        for kind, i, entry, model, define in entries:
            label = f"{kind}s[{i}] ({entry.get(f'{kind}_name', '?')})"
            try:
                row, changed = define(session, namespace_id=ns["namespace_id"], spec=model.model_validate(entry))
            except PydanticValidationError as error:
                raise _entry_error(path, label, ValidationError(_pydantic_errors(error))) from error
            except TierflowError as error:
                raise _entry_error(path, label, error) from error
            report.actions.append((kind, row[f"{kind}_name"], _action(changed, row)))
    return report


def _action(changed: bool, row: dict[str, Any]) -> str:
    if not changed:
        return "unchanged"
    return "created" if row["created_at"] == row["updated_at"] else "updated"
