"""Request validation as clearml-server's jsonmodels request models refuse bodies (apiserver/apimodels/*.py).

``service_repo/validators.py validate_data`` turns a jsonmodels ValidationError into 400/12 with its text
lower-cased. ``Base.populate`` sets the fields in attribute-name order, and setting a field validates it (a
wrong type, an explicit null of a required field, a value outside an ``Enum``; a list of embedded models
builds and validates its items), wrapped as ``Error for field 'x': <error>.``; then ``Base.validate`` reports
missing required fields in the same order as ``Error for field 'x'.`` plus the inner error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from tests.standin import errors
from tests.standin.state import Doc

TOO_SHORT = "Value '[]' length is lower than allowed minimum '1'."


def jsonmodels_error(detail: str) -> errors.ApiError:
    """A jsonmodels ValidationError: ``validate_data`` lower-cases its text into 400/12."""
    return errors.validation_error(detail.lower())


def wrong_type(expected: str, value: Any) -> str:
    """str() of jsonmodels' two-argument type error, as the server embeds it."""
    return str((f'Value is wrong, expected type "{expected}"', value))


@dataclass(frozen=True)
class Str:
    """A jsonmodels ``StringField`` (``choices``: an ``Enum`` validator)."""

    required: bool = False
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Items:
    """An apimodels ``ListField([Model])`` of embedded models (``min_items``: a ``Length`` validator)."""

    item_class: str
    fields: dict[str, Str] = field(default_factory=dict)
    min_items: int = 0


Rule = Union[Str, Items]


def _set_string(name: str, value: Any, rule: Str) -> str | None:
    """The error text of setting a string field, or None."""
    if value is None:
        return "Field is required!" if rule.required else None
    if not isinstance(value, str):
        return wrong_type("str", value)
    if rule.choices is not None and value not in rule.choices:
        return f"Value '{value}' is not a valid choice."
    return None


def _set_items(name: str, value: Any, rule: Items) -> list[Doc]:
    """Set a list of embedded models: each item is built (its own set-time errors), then the list is validated
    (length, then each item's missing required fields)."""
    if not value:  # None or empty: parse_value gives the default empty list
        if rule.min_items:
            raise jsonmodels_error(f"Error for field '{name}': {TOO_SHORT}.")
        return []
    if not isinstance(value, list):
        raise jsonmodels_error(f"Error for field '{name}': {wrong_type('list', value)}.")
    for item in value:
        if not isinstance(item, dict):  # Model(**item): a CallParsingError, not lower-cased
            raise errors.validation_error(f"{rule.item_class}() argument after ** must be a mapping, not {type(item).__name__}")
        for key in sorted(rule.fields):
            problem = _set_string(key, item[key], rule.fields[key]) if key in item else None
            if problem:
                raise jsonmodels_error(f"Error for field '{name}': Error for field '{key}': {problem}..")
    for item in value:
        for key in sorted(rule.fields):
            if rule.fields[key].required and key not in item:
                inner = (f"Error for field '{key}'.", "ValidationError('Field is required!')")
                raise jsonmodels_error(f"Error for field '{name}': (\"{inner[0]}\", {inner[1]}).")
    return value


def validate(body: Doc, rules: dict[str, Rule]) -> None:
    """Refuse ``body`` as the request model with these fields would (other fields are not checked)."""
    for name in sorted(rules):
        rule = rules[name]
        if name not in body:
            continue
        if isinstance(rule, Items):
            _set_items(name, body[name], rule)
            continue
        problem = _set_string(name, body[name], rule)
        if problem:
            raise jsonmodels_error(f"Error for field '{name}': {problem}.")
    for name in sorted(rules):
        rule = rules[name]
        if name in body:
            continue
        if isinstance(rule, Str) and rule.required:
            raise jsonmodels_error(f"Error for field '{name}'. Field is required!")
        if isinstance(rule, Items) and rule.min_items:
            raise jsonmodels_error(f"Error for field '{name}'. {TOO_SHORT}")


def required_string(body: Doc, name: str) -> None:
    """A ``StringField(required=True)`` missing from the request (reported by ``Base.validate()``)."""
    if body.get(name) is None:
        raise jsonmodels_error(f"Error for field '{name}'. Field is required!")


def nonempty_list(body: Doc, name: str) -> list[Any]:
    """A ``ListField([...], validators=Length(minimum_value=1))`` (apimodels/batch.py, apimodels/metadata.py)."""
    if name not in body:  # left unset: Base.validate() fills in [] and checks it
        raise jsonmodels_error(f"Error for field '{name}'. {TOO_SHORT}")
    value = body[name]
    if not value:  # None or empty: parse_value gives [] when the field is set
        raise jsonmodels_error(f"Error for field '{name}': {TOO_SHORT}.")
    if not isinstance(value, list):
        raise jsonmodels_error(f"Error for field '{name}': {wrong_type('list', value)}.")
    return value


def string_list(body: Doc, name: str) -> list[str]:
    values = nonempty_list(body, name)
    for value in values:
        if not isinstance(value, str):  # ListField._cast_value calls str(**value)
            raise errors.validation_error(f"str() argument after ** must be a mapping, not {type(value).__name__}")
    return values
