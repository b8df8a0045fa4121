"""What clearml 2.1.12's TriggerScheduler (dataset triggers) and TaskScheduler ask of the server.

The query semantics follow clearml-server's ``GetMixin._prepare_query_no_company`` (apiserver/database/
model/base.py): datetime filters (``>``, ``>=``, ``<``, ``<=``, ``[min, max]``), ``_or_``/``_and_`` over
several fields, list fields with ``-x``/``__$not``/``__$all``, range fields. The SDK tests run the real
SDK in child processes (tests/standin/scripts) against the session's server.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.standin import query
from tests.standin.client import ApiCallError, ApiClient
from tests.standin.environment import ClearMLEndpoint
from tests.standin.errors import ApiError
from tests.standin.fixtures import *  # noqa: F401,F403 (pytest fixtures)
from tests.standin.fixtures import SdkRunner
from tests.standin.server import StandinServer

SCRIPTS = Path(__file__).parent / "scripts"
Run = tuple[dict[str, Any], list[str], list[str]]  # a script's JSON, the endpoints it lacked, the calls refused
REF = "2026-11-24T12:00:00.123456+00:00"  # what DatasetTrigger.build_query sends after ">"


# --- the query language, on plain documents ---------------------------------------------------------

def _ids(docs: list[dict[str, Any]], body: dict[str, Any], options: query.QueryOptions = query.TASKS) -> list[str]:
    return [d["id"] for d in query.run(docs, body, options)[0]]


TIMES = [
    {"id": "later-utc", "last_update": "2026-11-24T12:00:00.124000+00:00"},
    {"id": "same-instant", "last_update": "2026-11-24T14:00:00.123456+02:00"},  # == REF
    {"id": "earlier-by-string-later", "last_update": "2026-11-24T12:30:00+02:00"},  # 10:30 UTC
    {"id": "later-by-offset", "last_update": "2026-11-24T11:30:00-01:00"},  # 12:30 UTC
    {"id": "naive-is-utc", "last_update": "2026-11-24T12:00:00"},
    {"id": "missing"},
]


@pytest.mark.parametrize(("condition", "expected"), [
    (f">{REF}", ["later-utc", "later-by-offset"]),
    (f">={REF}", ["later-utc", "same-instant", "later-by-offset"]),
    (f"<{REF}", ["earlier-by-string-later", "naive-is-utc"]),
    (f"<={REF}", ["same-instant", "earlier-by-string-later", "naive-is-utc"]),
    (REF, ["same-instant"]),  # no prefix: equal
    (">2026-11-24T14:00:00.123456+02:00", ["later-utc", "later-by-offset"]),  # the offset of the bound counts too
    (">2026-11-24T12:00:00.123456Z", ["later-utc", "later-by-offset"]),
    ([f">{REF}", "<2026-11-24T12:10:00+00:00"], ["later-utc"]),  # every condition applies
    ([">2026-11-24T00:00:00+00:00", f">{REF}"], ["later-utc", "later-by-offset"]),  # the last one per operator wins
    (["2026-11-24T10:30:00+00:00", "2026-11-24T12:00:00+00:00"], ["earlier-by-string-later", "naive-is-utc"]),  # range, inclusive
    ([None, "2026-11-24T11:00:00+00:00"], ["earlier-by-string-later", "missing"]),  # open min: missing values too
    (">not a date", None),  # unparseable: no condition at all
])
def test_datetime_filter_compares_times(condition: Any, expected: list[str] | None) -> None:
    everything = [d["id"] for d in TIMES]
    assert _ids(TIMES, {"last_update": condition}) == (everything if expected is None else expected)


def test_or_and_over_datetime_fields() -> None:
    docs = [
        {"id": "update-only", "last_update": "2026-11-24T13:00:00+00:00", "last_change": "2026-11-24T11:00:00+00:00"},
        {"id": "change-only", "last_update": "2026-11-24T11:00:00+00:00", "last_change": "2026-11-24T13:00:00+00:00"},
        {"id": "both", "last_update": "2026-11-24T13:00:00+00:00", "last_change": "2026-11-24T13:00:00+00:00"},
        {"id": "neither", "last_update": "2026-11-24T11:00:00+00:00", "last_change": "2026-11-24T11:00:00+00:00"},
    ]
    spec = {"fields": ["last_update", "last_change"], "datetime": [f">{REF}"]}
    assert _ids(docs, {"_or_": spec}) == ["update-only", "change-only", "both"]
    assert _ids(docs, {"_any_": spec}) == ["update-only", "change-only", "both"]
    assert _ids(docs, {"_and_": spec}) == ["both"]
    assert _ids(docs, {"_all_": {**spec, "datetime": f">{REF}"}}) == ["both"]  # a single string works too
    # only the entity's datetime fields take part; none left means no condition
    assert _ids(docs, {"_or_": {**spec, "fields": ["last_update", "name"]}}) == ["update-only", "both"]
    assert _ids(docs, {"_or_": {**spec, "fields": ["created", "name"]}}) == [d["id"] for d in docs]


def test_or_pattern_ignores_case_over_several_fields() -> None:
    docs = [{"id": "a", "name": "Brain MRI", "comment": ""}, {"id": "b", "name": "x", "comment": "mri scans"}, {"id": "c", "name": "ct"}]
    assert _ids(docs, {"_or_": {"fields": ["name", "comment"], "pattern": "MRI"}}) == ["a", "b"]
    assert _ids(docs, {"_and_": {"fields": ["name", "comment"], "pattern": "mri"}}) == []


def test_task_types_is_not_a_task_filter() -> None:
    """The real tasks.get_all has no ``task_types`` (TASKS options): DatasetTrigger's key is ignored, and unknown keys are too."""
    docs = [{"id": "dataset", "type": "data_processing"}, {"id": "training", "type": "training"}]
    assert _ids(docs, {"task_types": ["data_processing"]}) == ["dataset", "training"]
    assert _ids(docs, {"no_such_key": "x"}) == ["dataset", "training"]
    assert _ids(docs, {"type": ["data_processing"]}) == ["dataset"]


def test_dataset_trigger_query_on_documents() -> None:
    """The whole body DatasetTrigger.build_query sends (server 1.17.0, feature set basic)."""
    base = {"type": "data_processing", "system_tags": ["dataset"], "status": "completed",
            "last_update": "2026-11-24T13:00:00+00:00", "last_change": "2026-11-24T13:00:00+00:00"}
    docs = [
        {**base, "id": "new"},
        {**base, "id": "old", "last_update": "2026-11-24T11:00:00+00:00", "last_change": "2026-11-24T11:00:00+00:00"},
        {**base, "id": "running", "status": "in_progress"},
        {**base, "id": "not-a-dataset", "system_tags": []},
        {**base, "id": "hidden-dataset", "system_tags": ["dataset", "hidden"]},
    ]
    body = {"name": None, "project": None, "tags": None, "system_tags": ["dataset"], "task_types": ["data_processing"],
            "status": ["completed"], "_or_": {"fields": ["last_update", "last_change"], "datetime": [f">{REF}"]},
            "_allow_extra_fields_": True, "only_fields": ["id", "name", "status", "completed", "tags", "last_update", "last_change"]}
    assert _ids(docs, body) == ["new"]
    legacy = {k: v for k, v in body.items() if k != "_or_"} | {"last_update": f">{REF}"}
    assert _ids(docs, legacy) == ["new"]


@pytest.mark.parametrize(("values", "expected"), [
    (["a"], ["a", "ab"]),
    (["a", "-b"], ["a"]),  # '-x' excludes, on any list field
    (["__$all", "a", "b"], ["ab"]),
    (["__$not", "a"], ["b", "none"]),
    (["__$any", "a", "__$not", "b"], ["a", "ab", "none"]),  # global 'or' from the first operator
    ([None], ["none"]),  # None: missing or empty
    ([None, "b"], ["ab", "b", "none"]),
    ([], ["a", "ab", "b", "none"]),
])
def test_list_field_operators(values: list[str | None], expected: list[str]) -> None:
    docs = [{"id": "a", "tags": ["a"]}, {"id": "ab", "tags": ["a", "b"]}, {"id": "b", "tags": ["b"]}, {"id": "none", "tags": []}]
    assert _ids(docs, {"tags": values}) == expected


def test_range_fields_and_metric_thresholds() -> None:
    """TaskTrigger sends ``last_metrics.<md5 title>.<md5 series>.max_value: [threshold, None]``."""
    docs = [{"id": "high", "last_metrics": {"t": {"s": {"max_value": 0.9}}}, "last_iteration": 10},
            {"id": "low", "last_metrics": {"t": {"s": {"max_value": 0.2}}}, "last_iteration": 3},
            {"id": "none", "last_metrics": {}}]
    assert _ids(docs, {"last_metrics.t.s.max_value": [0.5, None]}) == ["high"]
    assert _ids(docs, {"last_metrics.t.s.max_value": ["0.5", None]}) == ["high"]  # strings become numbers
    assert _ids(docs, {"last_metrics.t.s.max_value": [None, 0.5]}) == ["low", "none"]
    assert _ids(docs, {"last_iteration": [3, 5]}) == ["low"]


@pytest.mark.parametrize(("body", "code"), [
    ({"_or_": {"fields": ["last_update"]}}, (400, 16)),  # neither pattern nor datetime
    ({"_or_": {"fields": ["last_update"], "pattern": "x", "datetime": f">{REF}"}}, (400, 16)),  # both
    ({"_or_": {"fields": ["last_update"], "datetime": f">{REF}", "extra": 1}}, (400, 16)),
    ({"_and_": ["last_update"]}, (400, 16)),
    ({"last_update": [None, f">{REF}", "<x"]}, (400, 16)),  # not a string
    ({"status": [1]}, (400, 16)),
    ({"status": ["__$bogus", "created"]}, (400, 16)),
    ({"last_iteration": [1]}, (400, 12)),  # a range needs [min, max]
    ({"last_iteration": [None, None]}, (400, 12)),
    ({"name": "("}, (400, 21)),
])
def test_refused_queries(body: dict[str, Any], code: tuple[int, int]) -> None:
    with pytest.raises(ApiError) as info:
        query.run([], body, query.TASKS)
    assert (info.value.code, info.value.subcode) == code


# --- over HTTP, on the stand-in ----------------------------------------------------------------------

@pytest.mark.integration
def test_project_parent_matches_any_ancestor(clearml_api: ApiClient, unique_name: str) -> None:
    root = clearml_api.call("projects.create", name=f"standin-tests/{unique_name}")["id"]
    clearml_api.call("projects.create", name=f"standin-tests/{unique_name}/a/b")

    def names(**body: Any) -> set[str]:
        return {p["name"] for p in clearml_api.call("projects.get_all", **body)["projects"]}

    prefix = f"standin-tests/{unique_name}"
    assert names(parent=[root]) == {f"{prefix}/a", f"{prefix}/a/b"}
    assert names(parent=[root], shallow_search=True) == {f"{prefix}/a"}
    assert f"{prefix}/a" not in names(shallow_search=True)  # shallow, no parent: top level only


def test_malformed_or_is_refused_like_the_real_server(standin: StandinServer, clearml_api: ApiClient) -> None:
    with pytest.raises(ApiCallError) as info:
        clearml_api.call("tasks.get_all", _or_={"fields": ["last_update", "last_change"]})
    meta = info.value.meta
    assert (info.value.status, meta["result_code"], meta["result_subcode"]) == (400, 400, 16)
    assert meta["result_msg"].startswith("Invalid value for fields (failed parsing query field)")
    assert meta["error_data"]["field"] == "_or_"


def test_user_properties_are_editable_in_any_status(standin: StandinServer, clearml_api: ApiClient, unique_name: str) -> None:
    """Dataset.create sets its version with set_user_properties while the task runs (hyperparams.py edit_params)."""
    task = clearml_api.call("tasks.create", name=unique_name, type="data_processing")["id"]
    clearml_api.call("tasks.started", task=task)
    before = clearml_api.task(task)
    time.sleep(0.01)  # the server keeps milliseconds
    clearml_api.call("tasks.edit_hyper_params", task=task, hyperparams=[{"section": "Properties", "name": "version", "value": "1.0.0"}])
    after = clearml_api.task(task)
    assert after["hyperparams"]["properties"]["version"]["value"] == "1.0.0"  # section name lower-cased
    assert after["last_update"] == before["last_update"] and after["last_change"] > before["last_change"]
    with pytest.raises(ApiCallError) as info:
        clearml_api.call("tasks.edit_hyper_params", task=task, hyperparams=[{"section": "Args", "name": "x", "value": "1"}])
    assert info.value.meta["result_subcode"] == 110


# --- the real SDK ------------------------------------------------------------------------------------

def _run_script(endpoint: ClearMLEndpoint, tmp: Path, script: str, *args: str) -> Run:
    """Run a script (copied outside any git checkout, so Task.init finds no repository); returns its JSON
    and, on the stand-in, the endpoints it lacked and the calls it refused meanwhile."""
    standin = endpoint.standin
    unknown, failed = (len(standin.state.unknown_calls), len(standin.state.failed_calls)) if standin else (0, 0)
    workdir = tmp / "cwd"
    workdir.mkdir()
    script_copy = shutil.copy(SCRIPTS / script, tmp / script)
    result = SdkRunner(endpoint, tmp, workdir).run_json(script_copy, *args, timeout=120.0)
    if standin is None:
        return result, [], []
    return result, standin.state.unknown_calls[unknown:], standin.state.failed_calls[failed:]


@pytest.fixture(scope="module")
def dataset_triggers(clearml_server: ClearMLEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("dataset-triggers")
    folder = tmp / "data"
    folder.mkdir()
    (folder / "case_001.txt").write_text("voxels\n")
    suffix = uuid.uuid4().hex[:8]
    return _run_script(clearml_server, tmp, "dataset_triggers.py", f"standin-tests/triggers-{suffix}", str(folder), f"q-triggers-{suffix}")


@pytest.fixture(scope="module")
def task_scheduler(clearml_server: ClearMLEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("task-scheduler")
    suffix = uuid.uuid4().hex[:8]
    return _run_script(clearml_server, tmp, "task_scheduler.py", f"standin-tests/scheduler-{suffix}", f"q-sched-{suffix}")


@pytest.mark.integration
def test_dataset_trigger_query_finds_only_datasets_finalized_after_the_reference(dataset_triggers: Run) -> None:
    run = dataset_triggers[0]
    ids = run["ids"]
    assert run["query"]["_or_"] == {"fields": ["last_update", "last_change"], "datetime": [run["query"]["_or_"]["datetime"][0]]}
    assert run["query"]["task_types"] == ["data_processing"]
    ours = set(ids.values())
    found = [t["id"] for t in run["found"] if t["id"] in ours]
    assert sorted(found) == sorted([ids["new"], ids["other_new"]])  # not ids["old"] nor ids["other_old"]
    assert all(t["last_update"] != "None" and t["last_change"] != "None" for t in run["found"])


@pytest.mark.integration
def test_in_progress_dataset_is_not_found(dataset_triggers: Run) -> None:
    run = dataset_triggers[0]
    found = {t["id"] for t in run["found"]}
    assert run["ids"]["new"] in found and run["ids"]["pending"] not in found  # both made after the reference


@pytest.mark.integration
def test_legacy_last_update_query_finds_the_same(dataset_triggers: Run) -> None:
    run = dataset_triggers[0]
    assert run["legacy_query"]["last_update"].startswith(">") and "_or_" not in run["legacy_query"]
    ours = set(run["ids"].values())
    assert sorted(t["id"] for t in run["found_legacy"] if t["id"] in ours) == sorted([run["ids"]["new"], run["ids"]["other_new"]])


@pytest.mark.integration
def test_trigger_project_finds_hidden_dataset_projects_by_regex(dataset_triggers: Run) -> None:
    run = dataset_triggers[0]
    assert [name.rsplit("/", 2)[1:] for _, name in run["hidden_projects"]] == [[".datasets", "images"]]
    assert run["trigger_projects"] == [run["hidden_projects"][0][0]]  # not the "-other" project's
    assert run["visible_projects"] == []  # dataset projects are hidden


@pytest.mark.integration
def test_trigger_scheduler_step_calls_the_function_once_with_the_new_dataset(dataset_triggers: Run) -> None:
    run = dataset_triggers[0]
    assert run["steps"] == [False, True, False]
    assert run["calls"] == [run["ids"]["new"]]


@pytest.mark.integration
def test_trigger_scheduler_launches_a_clone_with_the_dataset_id(dataset_triggers: Run) -> None:
    run = dataset_triggers[0]
    [launched] = run["launched"]
    assert launched["parent"] == run["template"] and launched["status"] == "queued" and launched["queue"] == run["queue_id"]
    assert launched["params"]["Args/dataset_id"] == run["ids"]["new"]
    assert launched["tags"] == ["launch"]
    assert '"name": "on-dataset"' in run["configuration"]


@pytest.mark.integration
def test_dataset_triggers_need_nothing_the_stand_in_lacks(dataset_triggers: Run) -> None:
    _, unknown, failed = dataset_triggers
    assert unknown == []
    # get_queue_id tries the queue name as an id first; the real server refuses that the same way
    assert [f for f in failed if not f.startswith("queues.get_by_id: 400/701")] == []


@pytest.mark.integration
def test_task_scheduler_clones_with_overrides_and_enqueues(task_scheduler: Run) -> None:
    run, unknown, failed = task_scheduler
    assert run["launched"] is True
    [job] = run["jobs"]
    assert job["parent"] == run["template"] and job["status"] == "queued" and job["queue"] == run["queue_id"]
    assert job["params"] == {"General/lr": "0.5", "General/epochs": "3"}
    assert job["branch"] == "release" and job["project"].endswith("/out") and job["config"] == "seed: 1\n"
    assert [c["name"] for c in run["configuration"]] == ["nightly"] and run["scheduled"] == ["nightly"]
    assert run["artifacts"] == ["state"]
    assert unknown == []
    assert [f for f in failed if not f.startswith("queues.get_by_id: 400/701")] == []
