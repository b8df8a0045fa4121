"""The ``get_all`` query language subset the SDK and agent send: filters, projection, order, paging."""

from __future__ import annotations

import copy
import re
from typing import Any, Iterable

from tests.standin import errors
from tests.standin.state import Doc

# Request keys that steer the query rather than filter on a field.
CONTROL_KEYS = {
    "only_fields", "order_by", "page", "page_size", "size", "scroll_id", "refresh_scroll",
    "search_hidden", "search_text", "include_subprojects", "allow_public", "_allow_extra_fields_",
    "max_task_entries", "shallow_search", "include_stats", "stats_for_state", "check_own_contents",
    "stats_with_children", "include_dataset_stats", "children_type", "active_users",
    "non_public", "get_task_info", "last_seen", "basename", "method",
}
TAG_FIELDS = {"tags", "system_tags"}


def get_path(doc: Doc, path: str) -> Any:
    """Value at a dotted path, or None when any step is missing."""
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _match_tags(values: list[str] | None, wanted: Iterable[str]) -> bool:
    """Tag filter: plain names must be present (any of), ``-name`` must be absent."""
    have = set(values or [])
    include = [t for t in wanted if t and not t.startswith("-") and not t.startswith("__$")]
    exclude = [t[1:] for t in wanted if t and t.startswith("-")]
    if any(t in have for t in exclude):
        return False
    return not include or any(t in have for t in include)


def _match_regex(value: Any, pattern: str) -> bool:
    try:
        return value is not None and re.search(pattern, str(value), re.IGNORECASE) is not None
    except re.error as exc:
        raise errors.ApiError(400, 21, f"Malformed regular expression: {exc}") from exc


def _match_pattern(doc: Doc, spec: Any, combine: Any) -> bool:
    """``_any_`` / ``_all_``: a regex matched against several fields."""
    if not isinstance(spec, dict) or not spec.get("fields"):
        return True
    pattern = spec.get("pattern") or ""
    return combine(_match_regex(get_path(doc, f), pattern) for f in spec["fields"])


def matches(doc: Doc, query: Doc, regex_fields: Iterable[str] = ("name",)) -> bool:
    """True when ``doc`` passes every filter in ``query``."""
    regex_fields = set(regex_fields)
    for key, wanted in query.items():
        if key in CONTROL_KEYS or wanted is None:
            continue
        if key == "_any_":
            if not _match_pattern(doc, wanted, any):
                return False
            continue
        if key == "_all_":
            if not _match_pattern(doc, wanted, all):
                return False
            continue
        value = get_path(doc, key)
        if key in TAG_FIELDS:
            if not _match_tags(value, wanted if isinstance(wanted, list) else [wanted]):
                return False
        elif key in regex_fields and isinstance(wanted, str):
            if not _match_regex(value, wanted):
                return False
        elif isinstance(wanted, list):
            if not wanted:
                continue
            if isinstance(value, list):
                if not set(value) & set(wanted):
                    return False
            elif value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def project(doc: Doc, only_fields: list[str] | None) -> Doc:
    """A deep copy of ``doc`` holding only the dotted ``only_fields`` (and ``id``).

    Like a MongoDB projection, an existing parent document is kept (possibly empty) when the
    projected leaf is missing: ``runtime.version`` on ``{"runtime": {}}`` gives ``{"runtime": {}}``.
    """
    if not only_fields:
        return copy.deepcopy(doc)
    out: Doc = {"id": doc.get("id")}
    for path in only_fields:
        src: Any = doc
        dst = out
        parts = path.split(".")
        for i, part in enumerate(parts):
            if not isinstance(src, dict) or part not in src:
                break
            src = src[part]
            if i == len(parts) - 1:
                dst[part] = copy.deepcopy(src)
            elif isinstance(src, dict):
                dst = dst.setdefault(part, {})
            else:
                dst[part] = copy.deepcopy(src)  # a non-document on the way: keep it whole
                break
    return out


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def order(docs: list[Doc], order_by: list[str] | None) -> list[Doc]:
    """Stable multi-key sort; ``-field`` sorts descending, unknown keys are ignored."""
    for key in reversed([k for k in (order_by or []) if isinstance(k, str) and k]):
        desc = key.startswith("-")
        field_name = key.lstrip("-+")
        docs = sorted(docs, key=lambda d: _sort_key(get_path(d, field_name)), reverse=desc)
    return docs


def run(
    docs: Iterable[Doc],
    query: Doc,
    regex_fields: Iterable[str] = ("name",),
    hidden_aware: bool = True,
) -> tuple[list[Doc], str | None]:
    """Filter, order, page and project; returns (results, scroll_id)."""
    explicit_ids = bool(query.get("id"))
    show_hidden = bool(query.get("search_hidden")) or explicit_ids or not hidden_aware
    selected = [
        d for d in docs
        if (show_hidden or "hidden" not in (d.get("system_tags") or []))
        and matches(d, query, regex_fields)
    ]
    selected = order(selected, query.get("order_by"))
    scroll_id = None
    if query.get("page") is not None and query.get("page_size"):
        start = int(query["page"]) * int(query["page_size"])
        selected = selected[start:start + int(query["page_size"])]
    elif query.get("size"):
        start = 0
        if query.get("scroll_id") and not query.get("refresh_scroll"):
            start = int(str(query["scroll_id"]).partition(":")[2] or 0)
        size = int(query["size"])
        selected = selected[start:start + size]
        scroll_id = f"scroll:{start + len(selected)}"
    elif query.get("page_size"):
        selected = selected[: int(query["page_size"])]
    return [project(d, query.get("only_fields")) for d in selected], scroll_id
