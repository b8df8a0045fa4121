"""projects.*: nested projects ("a/b" creates "a"), hidden projects, get_all / get_all_ex."""

from __future__ import annotations

from tests.standin import errors, query
from tests.standin.api import Call, endpoint
from tests.standin.state import COMPANY, USER, Doc, State, new_id, now_iso


def _by_name(state: State, name: str) -> Doc | None:
    return next((p for p in state.projects.values() if p["name"] == name), None)


def normalized_name(name: str) -> str:
    """sub_projects.py ``_validate_project_name``: no empty parts, each stripped."""
    cleaned = "/".join(part.strip() for part in name.split("/") if part.strip())
    if not cleaned:
        raise errors.ApiError(400, 407, f"Invalid project name: name={name}", name=name)
    return cleaned


def ensure_project(state: State, name: str, system_tags: list[str] | None = None, **fields: object) -> Doc:
    """Get or create project ``name`` and its parents, as the real server does for paths (``ProjectBLL.create`` and
    ``_ensure_project``): auto-created parents get only an empty description (no tags, no system tags, so a hidden
    child does not hide them), and a parent's ``last_update`` moves when a child is created under it. Each saved
    project's full name needs three characters (``Project.name``: ``min_length=3``, 400/800), so a path whose first
    part is shorter is refused when that parent is created, before anything is saved."""
    name = normalized_name(name)
    existing = _by_name(state, name)
    if existing:
        return existing
    parent_name, _, basename = name.rpartition("/")
    parent = ensure_project(state, parent_name) if parent_name else None
    errors.stripped_name(name)  # _save_under_parent: project.save() validates after the parents are saved
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
    if parent:
        parent["last_update"] = doc["created"]
    return doc


def include_subprojects(state: State, body: Doc) -> Doc:
    """services/utils.py ``process_include_subprojects``: with ``include_subprojects``, ``project`` also covers every
    descendant of the given projects (``project_ids_with_children``: any project with one of them in its path)."""
    body = dict(body)
    wanted = body.pop("include_subprojects", False)
    ids = body.get("project")
    if not ids or not wanted:
        return body
    ids = ids if isinstance(ids, list) else [ids]
    children = [p["id"] for p in state.projects.values() if set(p.get("path") or []) & set(ids)]
    body["project"] = list(dict.fromkeys([*ids, *children]))
    return body


def touch(state: State, project_id: str | None) -> None:
    """Update a project's ``last_update`` (the real server does so on task changes)."""
    if project_id and project_id in state.projects:
        state.projects[project_id]["last_update"] = now_iso()


@endpoint("projects.create")
def create(state: State, body: Doc, call: Call) -> Doc:
    if "name" not in body:  # required_fields=["name"]; an empty name is an invalid project name (400/407)
        raise errors.missing_fields("name")
    if body.get("tags") is not None:  # conform_tag_fields comes before ProjectBLL.create
        errors.validate_tags(body["tags"], body.get("system_tags"))
    name = normalized_name(str(body["name"] or ""))
    if _by_name(state, name):  # ProjectBLL.create: ExpectedUniqueData with a replacement message
        raise errors.ApiError(400, 801, f"Project with the same name already exists: name={name}, company={COMPANY}",
                              name=name, company=COMPANY)
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
    """get_all_ex with ``search_hidden`` marks hidden projects ``hidden: true`` (reading ``system_tags`` even when
    ``only_fields`` leaves them out, and then dropping them again)."""
    body = _adjust_search_parameters(body)
    mark_hidden = call.endpoint == "projects.get_all_ex" and bool(body.get("search_hidden"))
    only_fields = body.get("only_fields")
    drop_system_tags = mark_hidden and isinstance(only_fields, list) and "system_tags" not in only_fields
    if drop_system_tags:
        body["only_fields"] = [*only_fields, "system_tags"]
    results, scroll_id = query.run(state.projects.values(), body, query.PROJECTS)
    if mark_hidden:
        for project in results:
            system_tags = project.pop("system_tags", []) if drop_system_tags else project.get("system_tags", [])
            if "hidden" in (system_tags or []):
                project["hidden"] = True
    return {"projects": results, "scroll_id": scroll_id}


@endpoint("projects.get_by_id")
def get_by_id(state: State, body: Doc, call: Call) -> Doc:
    return {"project": query.project(state.project(body.get("project")), None)}


@endpoint("projects.update")
def update(state: State, body: Doc, call: Call) -> Doc:
    doc = state.project(body.get("project"))
    fields: Doc = {k: body[k] for k in ("name", "description", "tags", "system_tags", "default_output_destination") if k in body}
    if "tags" in fields:  # parse_from_call keeps nulls here, so conform_tag_fields checks whenever tags is sent
        errors.validate_tags(fields["tags"], fields.get("system_tags"))
    old_name = doc["name"]
    if fields.get("name"):
        # ProjectBLL.update: a cleaned-up name in the same location (else 400/408), then project.update validates it
        # (min_length=3, 400/800); the names of its subprojects follow (_update_subproject_names)
        name = normalized_name(fields["name"])
        if name.rpartition("/")[0] != old_name.rpartition("/")[0]:
            raise errors.ApiError(400, 408, f"Cannot update project location. use projects.move instead: name={name}",
                                  name=name)
        fields["name"] = errors.stripped_name(name)
        fields["basename"] = fields["name"].split("/")[-1]
    else:
        fields.pop("name", None)
    doc.update(fields)
    if "name" in fields and fields["name"] != old_name:
        for child in state.projects.values():
            if doc["id"] in (child.get("path") or []):
                child["name"] = fields["name"] + child["name"][len(old_name):]
                child["last_update"] = now_iso()
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
