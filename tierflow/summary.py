"""A batch as Markdown: the summary artifact a trigger run publishes in the Prefect UI."""

from __future__ import annotations

from typing import Any


def batch_markdown(view: dict[str, Any]) -> str:
    """Markdown for a batch view (`tierflow.batch_view.batch_view`)."""
    lines = [
        f"# Batch `{view['batch_id']}`: {view['status']}",
        "",
        f"- inputs selected at tier 0: **{view['object_count'] or 0}**",
        f"- documents written: **{view['document_count'] or 0}**",
        f"- failed inputs: **{view['failed_object_count']}**",
        "",
        "| tier | collections | status | inputs | succeeded | failed | documents | ms | task id |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in view["tier_tasks"]:
        lines.append(
            f"| {t['tier_num']} | {', '.join(t['collection_ids'])} | {t['status']} | "
            f"{t['documents_submitted_to_engine']} | {t['inputs_succeeded']} | {t['inputs_failed']} | "
            f"{t['documents_written']} | {t['duration_ms'] or ''} | `{t['task_id'] or ''}` |"
        )
    failures = view.get("failed_inputs") or []
    if failures:
        lines += ["", "## Failed inputs", ""]
        lines += [f"- `{f['input_id']}` (tier {f['tier_num']}): {(f['error'] or {}).get('message', '')}"
                  for f in failures[:20]]
    return "\n".join(lines) + "\n"
