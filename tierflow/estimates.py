"""How many documents each collection of a trigger's DAG would write, estimated before it runs.

Each selected root input is followed down the DAG as a partial record: the fields a document
would have that are known without running an extractor (those `field_passthrough` or
`include_all_source_fields` copy from known fields, the passthrough extractor's, and the
collection id), beside the names whose values only extraction tells. A collection reads the
estimates of exactly the upstream collections it reads, and its own `source_filters` are
evaluated on those records with three outcomes: kept, left out, or not known. What is not known is
counted as kept, so the figure becomes an upper bound and says so (`exact: false`, a reason),
and so does every figure below it. Documents per input come from each collection's history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tierflow.dag import upstream_ids
from tierflow.extractors.base import Extractor
from tierflow.extractors.passthrough import PassthroughExtractor
from tierflow.extractors.registry import collection_extractor
from tierflow.filters import MISSING, Node, resolve_path
from tierflow.filters.ast import All, AnyOf, Condition
from tierflow.filters.evaluate import matches_condition
from tierflow.selection import collection_filter

UNKNOWN: Any = object()
"""What `Partial.value` returns for a value only extraction would tell."""

_NOT_CARRIED = ("_internal", "blobs")
"""Fields `include_all_source_fields` does not copy (processing leaves them out too)."""
_BOOKKEEPING = frozenset({"document_id", "collection_id", "_internal", "blobs", "status"})
"""Fields the passthrough extractor does not copy from a document."""


@dataclass(frozen=True)
class Partial:
    """A record as far as it is known before extraction: `known` top-level fields, `unknown`
    names whose values only extraction tells, and `open`: any other name may be present too."""

    known: Mapping[str, Any]
    unknown: frozenset[str] = frozenset()
    open: bool = False

    def value(self, path: str) -> Any:
        """The value at a dot path, `MISSING` (known to be absent) or `UNKNOWN`."""
        head = path.split(".", 1)[0]
        if head in self.unknown:
            return UNKNOWN
        if head in self.known:
            return resolve_path(self.known, path)
        return UNKNOWN if self.open else MISSING


def holds(node: Node, record: Partial, unknown_fields: set[str]) -> bool | None:
    """Whether `record` matches `node` (as `filters.evaluate` decides), or None when that turns
    on a value only extraction tells; the fields read whose values were not known are added to
    `unknown_fields` (also where the known ones decided)."""
    if isinstance(node, Condition):
        value = record.value(node.field)
        if value is UNKNOWN:
            unknown_fields.add(node.field)
            return None
        return matches_condition(value, node)
    results = [holds(item, record, unknown_fields) for item in node.items]
    if isinstance(node, All):
        return False if False in results else None if None in results else True
    some = True if True in results else None if None in results else False
    return some if isinstance(node, AnyOf) else None if some is None else not some


def _carried(spec: Mapping[str, Any], record: Partial) -> tuple[dict[str, Any], set[str], bool] | None:
    """What processing's passthrough copies from the input: (known, unknown, open); None when a
    `required` field is known to be missing (the input would fail)."""
    known: dict[str, Any] = {}
    unknown: set[str] = set()
    is_open = False
    if spec.get("include_all_source_fields"):
        known.update({k: v for k, v in record.known.items() if k not in _NOT_CARRIED})
        unknown |= record.unknown - set(_NOT_CARRIED)
        is_open = record.open
    for item in spec.get("field_passthrough") or []:
        target = item.get("target_path") or item["source_path"].rsplit(".", 1)[-1]
        value = record.value(item["source_path"])
        if value is MISSING:
            if item.get("required"):
                return None
            continue
        if value is UNKNOWN:
            known.pop(target, None)
            unknown.add(target)
        else:
            known[target] = value
            unknown.discard(target)
    return known, unknown, is_open


@dataclass(frozen=True)
class Writes:
    """The fields an extractor writes whose values only running it tells (`names`, and `open`:
    any other too); `None` in their place means the passthrough extractor, which writes its
    input's fields, so they are as known as the input's."""

    names: frozenset[str]
    open: bool

    @classmethod
    def of(cls, extractor: type[Extractor], params: Any) -> Writes | None:
        if issubclass(extractor, PassthroughExtractor):
            return None
        output = getattr(extractor, "Output", None)  # absent where the output depends on the parameters
        return cls(frozenset(extractor.output_schema_for(params)),
                   output is not None and output.model_config.get("extra") == "allow")


def _passed_through(record: Partial, kind: str) -> tuple[dict[str, Any], set[str], bool]:
    """What the passthrough extractor writes of one input: (known, unknown, open)."""
    if kind == "document":
        return ({k: v for k, v in record.known.items() if k not in _BOOKKEEPING},
                set(record.unknown - _BOOKKEEPING), record.open)
    known: dict[str, Any] = {}
    unknown: set[str] = set()
    for name in ("key", "content_type", "size_bytes", "metadata"):
        value = record.value(name)
        if value is UNKNOWN:
            unknown.add(name)
        elif name == "metadata":
            known[name] = value if value is not MISSING and value else {}
        else:
            known[name] = None if value is MISSING else value
    return known, unknown, False


def document_of(collection: Mapping[str, Any], writes: Writes | None, record: Partial,
                kind: str) -> Partial | None:
    """The partial record of the documents `collection` (whose extractor `writes`) makes of one
    input (an "object" or a "document"), as the filters below it see them; None when it makes
    none (a `required` passthrough field is missing)."""
    carried = _carried(collection["feature_extractor"], record)
    if carried is None:
        return None
    known, unknown, is_open = carried
    out_known, out_unknown, out_open = (_passed_through(record, kind) if writes is None
                                        else ({}, set(writes.names), writes.open))
    fields = {k: v for k, v in known.items() if k not in out_unknown} | out_known
    names = (unknown - out_known.keys()) | out_unknown
    fields.pop("document_id", None)
    fields.pop("_internal", None)
    fields["collection_id"] = collection["collection_id"]
    return Partial(fields, frozenset((names | {"document_id", "_internal"}) - {"collection_id"}),
                   is_open or out_open)


@dataclass
class CollectionEstimate:
    """One collection's running figures: inputs it would read and documents it would write (as
    floats while inputs are added), and the fields of its filter that were not known."""

    inputs: float = 0.0
    documents: float = 0.0
    unknown_fields: set[str] = field(default_factory=set)


@dataclass
class _Member:
    collection: Mapping[str, Any]
    reads: list[str]
    where: Node | None
    writes: Writes | None
    ratio: float | None


class Estimator:
    """Estimates for one trigger: `add` each root input it selects, then `result`."""

    def __init__(self, *, tiers: list[list[str]], collections: Iterable[dict[str, Any]],
                 ratios: Mapping[str, float | None], root_kind: str) -> None:
        """`tiers`: the batch's tiers; `ratios`: documents per input from each collection's
        history (None: it never ran); `root_kind`: what the root reads, "object" or "document"."""
        by_id = {c["collection_id"]: c for c in collections}
        in_batch = {c for tier in tiers for c in tier}
        self._tiers = tiers
        self._root_kind = root_kind
        self._members: dict[str, _Member] = {}
        for num, members in enumerate(tiers):
            for cid in members:
                collection = by_id[cid]
                extractor, params = collection_extractor(collection["feature_extractor"],
                                                         collection["collection_name"])
                reads = [] if num == 0 else [u for u in upstream_ids(collection) if u in in_batch]
                where = None if num == 0 else collection_filter(collection)  # the root's: the caller's
                self._members[cid] = _Member(collection, reads, where, Writes.of(extractor, params), ratios[cid])
        self._figures = {cid: CollectionEstimate() for cid in self._members}

    def add(self, record: Partial) -> None:
        """Follow one selected root input (already through the root's filters) down the DAG."""
        made: dict[str, list[tuple[Partial, float]]] = {}
        for num, members in enumerate(self._tiers):
            for cid in members:
                member, figures = self._members[cid], self._figures[cid]
                kind = self._root_kind if num == 0 else "document"
                incoming = [(record, 1.0)] if num == 0 else [g for u in member.reads for g in made.get(u, [])]
                out: list[tuple[Partial, float]] = []
                for source, weight in incoming:
                    if member.where is not None:
                        unknown: set[str] = set()
                        verdict = holds(member.where, source, unknown)
                        if verdict is False:
                            continue
                        if verdict is None:  # a decided input leaves the figure exact, whatever it read
                            figures.unknown_fields |= unknown
                    figures.inputs += weight
                    if member.ratio is None:
                        continue
                    figures.documents += weight * member.ratio
                    document = document_of(member.collection, member.writes, source, kind)
                    if document is not None:
                        out.append((document, weight * member.ratio))
                made[cid] = out

    def result(self) -> dict[str, dict[str, Any]]:
        """Per collection id: `reads` (the upstream collections it reads), `expected_inputs` and
        `expected_documents` (None: it, or a collection it reads from, never ran),
        `expected_documents_exact` (False: an upper bound) and `reason` (why not exact, or None)."""
        answer: dict[str, dict[str, Any]] = {}
        for members in self._tiers:
            for cid in members:
                member, figures = self._members[cid], self._figures[cid]
                above = [answer[u] for u in member.reads]
                unknown = any(a["expected_documents"] is None for a in above)
                bounded = [self._members[u].collection["collection_name"] for u in member.reads
                           if not answer[u]["expected_documents_exact"]]
                reasons = []
                if figures.unknown_fields:
                    reasons.append(f"source_filters read {', '.join(sorted(figures.unknown_fields))}, "
                                   "known only once inputs are processed: counted as kept")
                if bounded:
                    reasons.append(f"reads {', '.join(bounded)}, itself an upper bound")
                answer[cid] = {
                    "collection_id": cid, "collection_name": member.collection["collection_name"],
                    "reads": member.reads,
                    "expected_inputs": None if unknown else round(figures.inputs),
                    "expected_documents": None if unknown or member.ratio is None else round(figures.documents),
                    "expected_documents_exact": not reasons, "reason": "; ".join(reasons) or None,
                }
        return answer
