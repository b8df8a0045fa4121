"""The ``get_all`` query language the SDK and agent send: filters, projection, order, paging.

Filters follow clearml-server's ``GetMixin._prepare_query_no_company`` (apiserver/database/model/base.py):
each entity declares which request keys are regex, list, range, datetime and equality filters (its
``get_all_query_options``); ``_any_``/``_or_`` and ``_all_``/``_and_`` combine a regex or a datetime
condition over several fields; every other key is ignored, as there.
"""

from __future__ import annotations

import copy
import operator
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from tests.standin import errors
from tests.standin.state import Doc

Predicate = Callable[[Doc], bool]


@dataclass(frozen=True)
class QueryOptions:
    """An entity's ``get_all_query_options``; a name ending in ``*`` covers every key with that prefix."""

    pattern_fields: tuple[str, ...] = ("name",)
    list_fields: tuple[str, ...] = ("tags", "system_tags", "id")
    range_fields: tuple[str, ...] = ()
    datetime_fields: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    # DateTimeField fields: mongoengine parses range bounds given as strings into datetimes
    dates: tuple[str, ...] = ("created", "started", "completed", "published", "status_changed", "last_update", "last_change")


# The get_all_query_options of apiserver/database/model/{task/task,model,project,queue}.py (v1.17.0).
DEFAULT = QueryOptions()
TASKS = QueryOptions(
    pattern_fields=("name", "comment", "report"),
    list_fields=("id", "user", "tags", "system_tags", "type", "status", "project", "parent", "hyperparams.*",
                 "execution.queue", "models.input.model"),
    range_fields=("created", "started", "active_duration", "last_metrics.*", "last_iteration"),
    datetime_fields=("status_changed", "last_update", "last_change"),
    fields=("runtime.*",),
)
MODELS = QueryOptions(
    pattern_fields=("name", "comment"),
    list_fields=("tags", "system_tags", "framework", "uri", "id", "user", "project", "task", "parent", "metadata.*"),
    range_fields=("created", "last_metrics.*", "last_iteration"),
    datetime_fields=("last_update", "last_change"),
    fields=("ready",),
)
PROJECTS = QueryOptions(
    pattern_fields=("name", "basename", "description"),
    list_fields=("tags", "system_tags", "id", "parent", "path"),
    range_fields=("last_update",),
)
QUEUES = QueryOptions(pattern_fields=("name",), list_fields=("tags", "system_tags", "id", "metadata.*"))

# base.py ACCESS_REGEX / ACCESS_MODIFIER: an optional comparison prefix before a datetime
ACCESS_REGEX = re.compile(r"^(?P<prefix>>=|>|<=|<)?(?P<value>.*)$")
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "": operator.eq,
}
MULTI_FIELD = {"_any_": any, "_or_": any, "_all_": all, "_and_": all}
# The real server compiles a top-level pattern (``name=...``) with no flags, so it is case-sensitive
# (base.py: ``RegexWrapper(pattern)``); only ``_any_``/``_or_``/``_all_``/``_and_`` patterns ignore case.
TOP_LEVEL_PATTERN_FLAGS = 0


def get_path(doc: Doc, path: str) -> Any:
    """Value at a dotted path, or None when any step is missing."""
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string (or datetime) as an aware UTC datetime; naive means UTC (pymongo's rule); else None."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _compile(pattern: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise errors.invalid_regex(str(exc)) from exc


def _regex(path: str, regex: re.Pattern[str]) -> Predicate:
    """MongoDB ``$regex``: a string value, or any string element of an array, must match."""

    def check(doc: Doc) -> bool:
        value = get_path(doc, path)
        values = value if isinstance(value, list) else [value]
        return any(isinstance(v, str) and regex.search(v) is not None for v in values)

    return check


def _pop_matching(patterns: Iterable[str], params: Doc) -> Doc:
    """``GetMixin._pop_matching_params``: pop keys named (or prefixed, ``x.*``) by ``patterns``; drop None values."""
    names: set[str] = set()
    for pattern in patterns:
        if pattern.endswith("*"):
            names.update(k for k in params if k.startswith(pattern[:-1]))
        elif pattern in params:
            names.add(pattern)
    popped = {name: params.pop(name) for name in names}
    return {k: v for k, v in popped.items() if v is not None}


def _list_filter(path: str, data: Any) -> Predicate:
    """``get_list_field_query``: any-of values, ``-value`` / ``__$not`` excludes, ``__$all``/``__$and`` need all,
    ``__$any``/``__$or`` switch back, ``__$nop`` resets; None also accepts a missing or empty field."""
    data = data if isinstance(data, (list, tuple)) else [data]
    actions: dict[str, list[Any]] = {}
    global_all: bool | None = None
    context_all = False
    legacy = True
    negate_next: str | None = None
    allow_empty = False
    for value in data:
        if value is None:
            negate_next, allow_empty = None, True
            global_all = True if global_all is None else global_all
            continue
        if not isinstance(value, str):
            raise errors.fields_value_error("invalid value type, string expected", field=path, value=str(value))
        if value == "__$nop":
            negate_next, context_all, legacy = None, False, True
            global_all = True if global_all is None else global_all
            continue
        if value.startswith("__$"):
            if negate_next:
                raise errors.fields_value_error("Value is expected after", field=path, operator=negate_next)
            if value == "__$not":
                negate_next = value
                continue
            if value not in ("__$all", "__$and", "__$any", "__$or"):
                raise errors.fields_value_error("Unsupported operator", field=path, operator=value)
            context_all = value in ("__$all", "__$and")
            legacy = False
            if global_all is None:
                global_all = context_all
            continue
        global_all = True if global_all is None else global_all
        include, term = True, value
        if negate_next:
            include, negate_next = False, None
        elif legacy and value.startswith("-"):
            include, term = False, value[1:]
            if not term:
                raise errors.fields_value_error("Missing value after the exclude prefix -", field=path, value=term)
        action = ("all" if context_all else "in") if include else "nin"
        actions.setdefault(action, []).append(term)
    if negate_next:
        raise errors.fields_value_error("Value is expected after", operator=negate_next)
    combine = all if global_all in (None, True) else any

    def check(doc: Doc) -> bool:
        value = get_path(doc, path)
        have = value if isinstance(value, list) else ([] if value is None else [value])
        tests = {
            "in": lambda wanted: any(v in wanted for v in have),
            "nin": lambda wanted: not any(v in wanted for v in have),
            "all": lambda wanted: all(w in have for w in wanted),
        }
        if actions and combine(tests[action](wanted) for action, wanted in actions.items()):
            return True
        if allow_empty:
            return value is None or value == []
        return not actions

    return check


def _comparable(value: Any, bound: Any, is_date: bool) -> tuple[Any, Any] | None:
    """Both sides in one comparable type (MongoDB compares within a type only), else None."""
    if is_date:
        pair = (parse_time(value), parse_time(bound))
        return None if None in pair else pair
    if isinstance(value, bool) or isinstance(bound, bool):
        return (value, bound) if type(value) is type(bound) else None
    if isinstance(value, (int, float)) and isinstance(bound, (int, float)):
        return value, bound
    if isinstance(value, str) and isinstance(bound, str):
        return value, bound
    return None


def _range_filter(path: str, data: Any, options: QueryOptions) -> Predicate:
    """``get_range_field_query``: ``[min, max]`` both inclusive; a None min also accepts a missing value."""
    if not isinstance(data, (list, tuple)) or len(data) != 2:
        raise errors.validation_error(f"Min and max values should be specified for range field {path}")
    low, high = data
    if low is None and high is None:
        raise errors.validation_error(f"At least one of min or max values should be provided for field {path}")
    is_date = path in options.dates or path in options.datetime_fields

    def within(value: Any, bound: Any, compare: Callable[[Any, Any], bool]) -> bool:
        pair = _comparable(value, bound, is_date)
        return pair is not None and compare(*pair)

    def check(doc: Doc) -> bool:
        value = get_path(doc, path)
        if low is None and value is None:
            return True
        values = value if isinstance(value, list) else [value]
        return any(
            (low is None or within(v, low, operator.ge)) and (high is None or within(v, high, operator.le)) for v in values
        )

    return check


def _dates_filter(path: str, data: Any, options: QueryOptions, field: str) -> Predicate | None:
    """``GetMixin._get_dates_query``: ``[min, max]`` without prefixes is a range; otherwise every
    ``[>|>=|<|<=]iso`` applies (the last one per operator wins; no prefix means equal). Unparseable
    times are skipped; None when nothing is left."""
    data = data if isinstance(data, list) else [data]
    try:
        plain = not any(d.startswith(mod) for d in data if d is not None for mod in (">=", ">", "<=", "<"))
    except AttributeError as exc:
        raise errors.fields_value_error("failed parsing query field", error=str(exc), field=field) from exc
    if len(data) == 2 and plain:
        return _range_filter(path, data, options)
    conditions: dict[str, datetime] = {}
    for item in data:
        if not isinstance(item, str):
            error = f"expected string or bytes-like object, got '{type(item).__name__}'"
            raise errors.fields_value_error("failed parsing query field", error=error, field=field)
        match = ACCESS_REGEX.match(item)
        when = parse_time(match["value"]) if match else None
        if when is not None:
            conditions[match["prefix"] or ""] = when  # type: ignore[index]
    if not conditions:
        return None

    def check(doc: Doc) -> bool:
        value = parse_time(get_path(doc, path))
        return value is not None and all(COMPARE[op](value, when) for op, when in conditions.items())

    return check


def _multi_field_filter(key: str, spec: Any, options: QueryOptions) -> Predicate | None:
    """``_any_``/``_or_`` (any field) and ``_all_``/``_and_`` (all fields): ``{fields, pattern}`` is a
    case-insensitive regex on any fields; ``{fields, datetime}`` applies to the entity's datetime fields only."""
    valid = (
        isinstance(spec, dict) and "fields" in spec and set(spec) <= {"fields", "pattern", "datetime"}
        and (spec.get("pattern") is None) != (spec.get("datetime") is None)
    )
    if not valid:
        raise errors.fields_value_error("failed parsing query field", error=f"incorrect field format: field={key}", field=key)
    fields = spec["fields"] or []
    if not fields:
        return None
    combine = MULTI_FIELD[key]
    if spec.get("pattern") is not None:
        regex = _compile(spec["pattern"], re.IGNORECASE)
        parts: list[Predicate] = [_regex(f, regex) for f in fields]
    else:
        found = [_dates_filter(f, spec["datetime"], options, key) for f in fields if f in options.datetime_fields]
        parts = [p for p in found if p is not None]
    if not parts:
        return None
    return lambda doc: combine(part(doc) for part in parts)


def compile_filter(query: Doc, options: QueryOptions = DEFAULT) -> Predicate:
    """The filter a ``get_all`` body asks for; the real server's refusals are raised here, before any match."""
    params = {k: _numeric(v) if k.startswith("last_metrics.") else v for k, v in query.items()}
    parts: list[Predicate] = []
    for name in options.pattern_fields:
        pattern = params.pop(name, None)
        if pattern and isinstance(pattern, str):
            parts.append(_regex(name, _compile(pattern, TOP_LEVEL_PATTERN_FLAGS)))
    parts += [_list_filter(k, v) for k, v in _pop_matching(options.list_fields, params).items()]
    parts += [_range_filter(k, v, options) for k, v in _pop_matching(options.range_fields, params).items()]
    parts += [_equals(k, v) for k, v in _pop_matching(options.fields, params).items()]
    for name in options.datetime_fields:
        data = params.pop(name, None)
        if data is not None:
            found = _dates_filter(name, data, options, name)
            parts += [found] if found else []
    for key, spec in params.items():
        if key in MULTI_FIELD:
            found = _multi_field_filter(key, spec, options)
            parts += [found] if found else []
    return lambda doc: all(part(doc) for part in parts)


def _numeric(value: Any) -> Any:
    """``GetMixin._try_convert_to_numeric``: strings that are floats become floats (``last_metrics.*``)."""

    def convert(item: Any) -> Any:
        if not isinstance(item, str):
            return item
        try:
            return float(item)
        except ValueError:
            return item

    return [convert(v) for v in value] if isinstance(value, (list, tuple)) else convert(value)


def _equals(path: str, wanted: Any) -> Predicate:
    """Plain equality (MongoDB: an array value also matches when it contains ``wanted``)."""

    def check(doc: Doc) -> bool:
        value = get_path(doc, path)
        return value == wanted or (isinstance(value, list) and wanted in value)

    return check


def matches(doc: Doc, query: Doc, options: QueryOptions = DEFAULT) -> bool:
    """True when ``doc`` passes every filter in ``query``."""
    return compile_filter(query, options)(doc)


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
    options: QueryOptions = DEFAULT,
    hidden_aware: bool = True,
) -> tuple[list[Doc], str | None]:
    """Filter, order, page and project; returns (results, scroll_id)."""
    explicit_ids = bool(query.get("id"))
    show_hidden = bool(query.get("search_hidden")) or explicit_ids or not hidden_aware
    keep = compile_filter(query, options)
    selected = [d for d in docs if (show_hidden or "hidden" not in (d.get("system_tags") or [])) and keep(d)]
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
