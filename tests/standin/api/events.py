"""events.*: the NDJSON ``add_batch`` and the reads the SDK uses (scalars, debug images, plots, log)."""

from __future__ import annotations

import copy
import hashlib
import time
from datetime import datetime, timezone
from typing import Any, Iterable

from tests.standin import errors
from tests.standin.api import Call, endpoint
from tests.standin.state import Doc, State, now_iso

SCALAR = "training_stats_scalar"
IMAGE = "training_debug_image"
PLOT = "plot"
LOG = "log"
SINGLE_VALUE_ITER = -(2**31)  # the SDK reports single values at this iteration


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _update_last_metrics(task: Doc, event: Doc) -> None:
    """Keep task.last_metrics[md5(metric)][md5(variant)] like the real server."""
    metric, variant, value, it = event.get("metric", ""), event.get("variant", ""), event.get("value"), event.get("iter", 0)
    if not isinstance(value, (int, float)):
        return
    slot = task.setdefault("last_metrics", {}).setdefault(_md5(metric), {}).setdefault(_md5(variant), {})
    if not slot:
        slot.update(metric=metric, variant=variant, first_value=value, first_value_iteration=it,
                    min_value=value, min_value_iteration=it, max_value=value, max_value_iteration=it,
                    count=0, mean_value=0.0)
    slot["value"] = value
    if value < slot["min_value"]:
        slot.update(min_value=value, min_value_iteration=it)
    if value > slot["max_value"]:
        slot.update(max_value=value, max_value_iteration=it)
    slot["mean_value"] = (slot["mean_value"] * slot["count"] + value) / (slot["count"] + 1)
    slot["count"] += 1


VECTOR = "training_stats_vector"
EVENT_TYPES = (SCALAR, VECTOR, IMAGE, PLOT, LOG)  # bll/event/event_common.py EventType (but "*")


def _count(errors_info: dict[str, int], message: str) -> None:
    errors_info[message] = errors_info.get(message, 0) + 1


@endpoint("events.add_batch")
def add_batch(state: State, body: Doc, call: Call) -> Doc:
    """``EventBLL.add_events`` over the newline-delimited JSON body (the HTTP layer hands it over as ``requests``).
    An empty batch is refused (400/17); an event without a ``type``, with a type that is none of the five (spaces
    become underscores), without a ``task``, or for an unknown task (or model, with ``model_event``) is counted in
    ``errors_info`` under the real server's message; when no event at all was added, the call fails with 400/131
    carrying those counts."""
    batch = body.get("requests")
    if not batch:  # services/events.py add_batch: BatchContainsNoItems
        raise errors.ApiError(400, 17, "Batch request contains no items")
    added = 0
    errors_info: dict[str, int] = {}
    for raw in batch:
        event = copy.deepcopy(raw) if isinstance(raw, dict) else {}
        model_event = bool(event.get("model_event"))
        if model_event and event.get("model") is not None:
            event["task"] = event.pop("model")
        event["model_event"] = model_event
        event.pop("allow_locked", None)
        event_type = event.get("type")
        if event_type is None:
            _count(errors_info, "Event must have a 'type' field")
            continue
        event_type = str(event_type).replace(" ", "_")
        if event_type not in EVENT_TYPES:
            _count(errors_info, f"Invalid event type {event_type}")
            continue
        if model_event and event_type == LOG:
            _count(errors_info, "Task log events are not supported for models")
            continue
        entity_id = event.get("task")
        if entity_id is None:
            _count(errors_info, "Event must have a 'task' field")
            continue
        owner = (state.models if model_event else state.tasks).get(entity_id) if isinstance(entity_id, str) else None
        if owner is None:
            _count(errors_info, f"Invalid {'model' if model_event else 'task'} id {entity_id}")
            continue
        event["type"] = event_type
        if "ts" in event:
            event["timestamp"] = event.pop("ts")
        event.setdefault("timestamp", int(time.time() * 1000))
        event.setdefault("worker", call.worker)
        event["iter"] = int(event.get("iter") or 0)
        if "values" in event:
            event["value"] = event.pop("values")
        event["metric"] = event.get("metric") or ""
        event["variant"] = event.get("variant") or ""
        event["@timestamp"] = now_iso()
        state.events.setdefault(entity_id, []).append(event)
        added += 1
        counts_iteration = event_type in (SCALAR, IMAGE, PLOT, VECTOR) and event["iter"] != SINGLE_VALUE_ITER
        if counts_iteration:
            owner["last_iteration"] = max(owner.get("last_iteration") or 0, event["iter"])
        if model_event:
            owner["last_update"] = now_iso()
            continue
        if event_type == SCALAR:
            _update_last_metrics(owner, event)
        owner["last_update"] = owner["last_change"] = now_iso()  # TaskBLL.set_last_update sets both
    if not added:  # EventBLL.add_events: EventsNotAdded(**errors_per_type)
        detail = ", ".join(f"{k}={v}" for k, v in errors_info.items())
        raise errors.ApiError(400, 131, f"Events not added: {detail}" if detail else "Events not added", **errors_info)
    return {"added": added, "errors": sum(errors_info.values()), "errors_info": errors_info}


def _events(state: State, task_id: Any, kinds: Iterable[str] | None = None) -> list[Doc]:
    state.task(task_id)
    kinds = set(kinds) if kinds else None
    return [e for e in state.events.get(task_id, []) if kinds is None or e.get("type") in kinds]


def _x(event: Doc, key: str) -> Any:
    if key == "timestamp":
        return event["timestamp"]
    if key == "iso_time":
        return datetime.fromtimestamp(event["timestamp"] / 1000, timezone.utc).isoformat()
    return event["iter"]


@endpoint("events.scalar_metrics_iter_histogram")
def scalar_histogram(state: State, body: Doc, call: Call) -> Doc:
    """{metric: {variant: {name, x, y}}}: what Task.get_reported_scalars returns."""
    key = body.get("key") or "iter"
    wanted = {m.get("metric"): set(m.get("variants") or []) for m in body.get("metrics") or []}
    out: Doc = {}
    for ev in _events(state, body.get("task"), [SCALAR]):
        if ev["iter"] == SINGLE_VALUE_ITER:
            continue
        if wanted and (ev["metric"] not in wanted or (wanted[ev["metric"]] and ev["variant"] not in wanted[ev["metric"]])):
            continue
        series = out.setdefault(ev["metric"], {}).setdefault(ev["variant"], {"name": ev["variant"], "x": [], "y": []})
        series["x"].append(_x(ev, key))
        series["y"].append(ev["value"])
    for variants in out.values():
        for series in variants.values():
            pairs = sorted(zip(series["x"], series["y"]), key=lambda p: p[0])
            series["x"], series["y"] = [p[0] for p in pairs], [p[1] for p in pairs]
    return out


def _scrolled(events: list[Doc], body: Doc) -> tuple[list[Doc], str]:
    start = int(str(body.get("scroll_id") or "scroll:0").partition(":")[2] or 0)
    size = int(body.get("batch_size") or 500)
    chunk = events[start:start + size]
    return chunk, f"scroll:{start + len(chunk)}"


@endpoint("events.get_task_events")
def get_task_events(state: State, body: Doc, call: Call) -> Doc:
    kind = body.get("event_type")
    events = _events(state, body.get("task"), [kind] if kind else None)
    if body.get("order") == "desc":
        events = list(reversed(events))
    chunk, scroll_id = _scrolled(events, body)
    return {"events": copy.deepcopy(chunk), "returned": len(chunk), "total": len(events), "scroll_id": scroll_id}


@endpoint("events.get_task_log")
def get_task_log(state: State, body: Doc, call: Call) -> Doc:
    events = sorted(_events(state, body.get("task"), [LOG]), key=lambda e: e["timestamp"])
    size = int(body.get("batch_size") or 500)
    since = body.get("from_timestamp")
    if since is not None:
        if body.get("navigate_earlier", True):
            events = [e for e in events if e["timestamp"] < since][-size:]
        else:
            events = [e for e in events if e["timestamp"] > since][:size]
    else:
        events = events[-size:]
    if body.get("order") == "desc":
        events = list(reversed(events))
    return {"events": copy.deepcopy(events), "returned": len(events), "total": len(events)}


def _by_iteration(events: list[Doc], iters: int | None) -> list[Doc]:
    grouped: dict[int, list[Doc]] = {}
    for ev in events:
        grouped.setdefault(ev["iter"], []).append(copy.deepcopy(ev))
    keys = sorted(grouped, reverse=True)[: iters or None]
    return [{"iter": k, "events": grouped[k]} for k in keys]


@endpoint("events.debug_images")
def debug_images(state: State, body: Doc, call: Call) -> Doc:
    """All matching iterations on the first call; a call with a scroll_id finds no more."""
    result = []
    for spec in body.get("metrics") or []:
        events = [e for e in _events(state, spec.get("task"), [IMAGE]) if e.get("metric") == spec.get("metric")
                  and (not spec.get("variants") or e.get("variant") in spec["variants"])]
        iterations = [] if body.get("scroll_id") else _by_iteration(events, body.get("iters"))
        result.append({"task": spec.get("task"), "iterations": iterations})
    return {"metrics": result, "scroll_id": "debug-images-done"}


@endpoint("events.get_task_plots")
def get_task_plots(state: State, body: Doc, call: Call) -> Doc:
    plots = [] if body.get("scroll_id") else _events(state, body.get("task"), [PLOT])
    if body.get("iters"):
        last = sorted({p["iter"] for p in plots}, reverse=True)[: body["iters"]]
        plots = [p for p in plots if p["iter"] in last]
    return {"plots": copy.deepcopy(plots), "returned": len(plots), "total": len(plots), "scroll_id": "plots-done"}


@endpoint("events.get_task_metrics")
def get_task_metrics(state: State, body: Doc, call: Call) -> Doc:
    kind = body.get("event_type")
    return {"metrics": [
        {"task": t, "metrics": sorted({e.get("metric") for e in _events(state, t, [kind] if kind else None)})}
        for t in body.get("tasks") or []
    ]}


@endpoint("events.get_task_single_value_metrics")
def single_values(state: State, body: Doc, call: Call) -> Doc:
    tasks = []
    for t in body.get("tasks") or []:
        values = [
            {"metric": e["metric"], "variant": e["variant"], "value": e["value"], "timestamp": e["timestamp"]}
            for e in _events(state, t, [SCALAR]) if e["iter"] == SINGLE_VALUE_ITER
        ]
        tasks.append({"task": t, "values": values})
    return {"tasks": tasks}


@endpoint("events.get_task_latest_scalar_values")
def latest_scalars(state: State, body: Doc, call: Call) -> Doc:
    latest: dict[str, dict[str, list[float]]] = {}
    for ev in _events(state, body.get("task"), [SCALAR]):
        latest.setdefault(ev["metric"], {}).setdefault(ev["variant"], []).append(ev["value"])
    return {"metrics": [
        {"name": m, "variants": [{"name": v, "last_value": vals[-1], "last_100_value": vals[-100:]} for v, vals in vs.items()]}
        for m, vs in latest.items()
    ]}


@endpoint("events.delete_for_task")
def delete_for_task(state: State, body: Doc, call: Call) -> Doc:
    if body.get("task") not in state.tasks:
        raise errors.invalid_task_id(body.get("task"))
    return {"deleted": len(state.events.pop(body["task"], []))}
