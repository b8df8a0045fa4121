"""projects.*: nested projects ("a/b" creates "a"), hidden projects, get_all / get_all_ex."""

from __future__ import annotations

from tests.standin import errors, query
from tests.standin.api import Call, endpoint
from tests.standin.state import COMPANY, USER, Doc, State, new_id, now_iso


def _by_name(state: State, name: str) -> Doc | None:
    return next((p for p in state.projects.values() if p["name"] == name), None)


def ensure_project(state: State, name: str, system_tags: list[str] | None = None, **fields: object) -> Doc:
    """Get or create project ``name`` and its parents, as the real server does for paths."""
    name = "/".join(part.strip() for part in name.split("/") if part.strip())
    if not name:
        raise errors.ApiError(400, 407, "Invalid project name")
    existing = _by_name(state, name)
    if existing:
        return existing
    parent_name, _, basename = name.rpartition("/")
    parent = ensure_project(state, parent_name, system_tags=[t for t in system_tags or [] if t == "hidden"]) if parent_name else None
    pid = new_id()
    doc: Doc = {
        "id": pid,
        "name": name,
        "basename": basename,
        "company": COMPANY,
        "user": USER["id"],
        "created": now_iso(),
        "last_update": now_iso(),
        "description": "",
        "tags": [],
        "system_tags": list(system_tags or []),
        "default_output_destination": None,
        "parent": parent["id"] if parent else None,
        "path": (parent["path"] + [parent["id"]]) if parent else [],
    }
    doc.update({k: v for k, v in fields.items() if v is not None})
    state.projects[pid] = doc
    return doc


def touch(state: State, project_id: str | None) -> None:
    """Update a project's ``last_update`` (the real server does so on task changes)."""
    if project_id and project_id in state.projects:
        state.projects[project_id]["last_update"] = now_iso()


@endpoint("projects.create")
def create(state: State, body: Doc, call: Call) -> Doc:
    if not body.get("name"):
        raise errors.missing_fields("name")
    if _by_name(state, body["name"].strip("/")):
        raise errors.ApiError(400, 801, "Value combination already exists (unique field already contains this value)", name=body["name"])
    doc = ensure_project(
        state, body["name"], body.get("system_tags"),
        description=body.get("description"), tags=body.get("tags"),
        default_output_destination=body.get("default_output_destination"),
    )
    return {"id": doc["id"]}


def _adjust_search_parameters(body: Doc) -> Doc:
    """services/projects.py ``_adjust_search_parameters``: ``path`` cannot be queried directly; ``parent``
    matches any ancestor (``path``) unless ``shallow_search``, which without ``parent`` lists top-level projects."""
    body = {k: v for k, v in body.items() if k != "path"}
    if not body.get("shallow_search"):
        if "parent" in body:
            body["path"] = body.pop("parent")
    elif "parent" not in body:
        body["parent"] = [None]
    return body


@endpoint("projects.get_all", "projects.get_all_ex")
def get_all(state: State, body: Doc, call: Call) -> Doc:
    results, scroll_id = query.run(state.projects.values(), _adjust_search_parameters(body), query.PROJECTS)
    return {"projects": results, "scroll_id": scroll_id}


@endpoint("projects.get_by_id")
def get_by_id(state: State, body: Doc, call: Call) -> Doc:
    return {"project": query.project(state.project(body.get("project")), None)}


@endpoint("projects.update")
def update(state: State, body: Doc, call: Call) -> Doc:
    doc = state.project(body.get("project"))
    fields = {k: body[k] for k in ("name", "description", "tags", "system_tags", "default_output_destination") if k in body}
    doc.update(fields)
    doc["last_update"] = now_iso()
    return {"updated": 1, "fields": fields}


@endpoint("projects.delete")
def delete(state: State, body: Doc, call: Call) -> Doc:
    doc = state.project(body.get("project"))
    del state.projects[doc["id"]]
    return {"deleted": 1, "disassociated_tasks": 0, "urls": {}, "deleted_models": 0, "deleted_tasks": 0}


@endpoint("projects.get_task_parents")
def task_parents(state: State, body: Doc, call: Call) -> Doc:
    ids = {t.get("parent") for t in state.tasks.values() if t.get("project") in (body.get("projects") or [t.get("project")])}
    return {"parents": [{"id": i, "name": state.tasks[i]["name"]} for i in ids if i in state.tasks]}
