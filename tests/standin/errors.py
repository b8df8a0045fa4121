"""Error type carrying the ClearML server's (HTTP code, subcode, message) triple."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API failure answered as ``meta.result_code``/``result_subcode``/``result_msg``."""

    def __init__(self, code: int, subcode: int, msg: str, **data: Any) -> None:
        super().__init__(msg)
        self.code = code
        self.subcode = subcode
        self.msg = msg
        self.data = data


# Codes and subcodes follow clearml-server's apierrors/errors.conf.
def not_supported(endpoint: str, version: str) -> ApiError:
    return ApiError(400, 1, f"Unable to find endpoint for name {endpoint} and version {version}")


def _message(base: str, extra: str | None, data: dict[str, Any]) -> str:
    """``Base (extra): k=v, ...`` as clearml-server's ``BaseError`` formats it (collections as ``(a, b)``)."""
    msg = f"{base} ({extra})" if extra else base
    if data:
        msg += ": " + ", ".join(
            f"{k}=({', '.join(map(str, v))})" if isinstance(v, (list, tuple, set, dict)) else f"{k}={v}" for k, v in data.items()
        )
    return msg


def validation_error(extra: str | None = None, **data: Any) -> ApiError:
    return ApiError(400, 12, _message("Validation error", extra, data), **data)


def fields_value_error(extra: str | None = None, **data: Any) -> ApiError:
    return ApiError(400, 16, _message("Invalid value for fields", extra, data), **data)


def invalid_regex(extra: str) -> ApiError:
    return ApiError(400, 21, _message("Malformed regular expression", extra, {}))


TAG_OPERATOR_PREFIX = "__$"  # base.py GetMixin.NewListFieldBucketHelper.op_prefix


def validate_tags(tags: Any, system_tags: Any) -> None:
    """services/utils.py ``validate_tags``: tags that look like query operators (``__$...``) cannot be stored; the
    first list holding any is reported. Callers decide when it applies (``conform_tag_fields`` only when ``tags``
    is in the request)."""
    for values in filter(None, (tags, system_tags)):
        unsupported = [t for t in values if isinstance(t, str) and t.startswith(TAG_OPERATOR_PREFIX)]
        if unsupported:
            raise fields_value_error("unsupported tag prefix", values=unsupported)


def data_validation_error(**fields: str) -> ApiError:
    """A document that fails mongoengine's validation on save or update (database/errors.py
    ``MongoEngineErrorsHandler.validation_error``): 400/800 with each field's error text."""
    return ApiError(400, 800, _message("Data validation error", None, fields), **fields)


NAME_MIN_LENGTH = 3  # database/model/{project,queue,model}.py: name = StrippedStringField(min_length=3)


def stripped_name(name: Any) -> Any:
    """A queue/project/model name as the real server stores it: stripped (``StrippedStringField``) and at least
    three characters long (checked by mongoengine on save and on update, 400/800)."""
    if not isinstance(name, str):
        return name
    name = name.strip()
    if len(name) < NAME_MIN_LENGTH:
        raise data_validation_error(name="String value is too short")
    return name


def task_already_queued(task_id: str) -> ApiError:
    """``QueueBLL.add_task`` when the queue already holds the task."""
    return ApiError(400, 706, f"Failed adding task to queue since task is already queued: task={task_id}", task=task_id)


def missing_fields(*fields: str) -> ApiError:
    """An endpoint's ``required_fields`` absent from the request (service_repo/validators.py
    ``validate_required_fields``: ``MissingRequiredFields(missing=[...])``)."""
    return ApiError(400, 11, _message("Missing required fields", None, {"missing": list(fields)}), missing=list(fields))


def invalid_task_id(task_id: Any) -> ApiError:
    return ApiError(400, 101, f"Invalid task id: id={task_id}")


def invalid_task_status(extra: str | None = None, **data: Any) -> ApiError:
    return ApiError(400, 110, _message("Invalid task status", extra, data), **data)


def invalid_model_id(model_id: Any) -> ApiError:
    return ApiError(400, 201, f"Invalid model id: id={model_id}")


def model_is_ready(company: str, model_id: str) -> ApiError:
    """``ModelBLL.publish_model`` on a model that is already ready."""
    return ApiError(400, 203, _message("Model is ready", None, {"company": company, "model": model_id}),
                    company=company, model=model_id)


def invalid_project_id(project_id: Any) -> ApiError:
    return ApiError(400, 401, f"Invalid project id: id={project_id}")


def invalid_queue_id(queue_id: Any) -> ApiError:
    return ApiError(400, 701, f"Invalid queue id: id={queue_id}")


def no_default_queue() -> ApiError:
    return ApiError(400, 707, "No queue is tagged as the default queue for this company")


def invalid_worker_id(worker: Any) -> ApiError:
    return ApiError(400, 1001, f"Invalid worker id: worker={worker}")


def unauthorized(subcode: int, msg: str) -> ApiError:
    return ApiError(401, subcode, msg)
