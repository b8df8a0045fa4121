"""Keep secrets out of what ClearML records: hyperparameters, configuration objects, model configs and metadata.

What counts as a secret is decided by the *name* of a config key or environment variable
(``is_secret_name``), and by *value* for the values of such environment variables (``environment_secrets``),
so that a secret copied into an innocently named key (a URL with a password in it) is caught too.

The name pattern: a name is split into lower-case words at ``_``, ``-``, ``.``, other punctuation and
camelCase boundaries (``S3_SECRET_ACCESS_KEY`` -> s3 secret access key, ``apiKey`` -> api key). It is secret
when a word

* is one of ``SECRET_WORDS`` (password, passwd, passphrase, secret(s), token, credential(s), ...) or ends in
  one of ``SECRET_SUFFIXES`` (``pacspassword``, ``clientsecret``, ``authtoken``), or
* is ``key`` right after a word of ``KEY_QUALIFIERS`` (``api_key``, ``access_key``, ``secret_key``,
  ``private_key``; also written as one word: ``apikey``),

unless the last word is one of ``LOCATOR_WORDS``: ``token_file``, ``secret_path``, ``password_env`` say where a
secret is, and their values (paths, variable names) are needed to find it.

A bare ``key`` is *not* secret: MONAI's dictionary transforms use ``keys``, ``image_key``, ``label_key`` (the
names of the items a transform works on), which must stay visible. ``tokens``/``tokenizer`` are not secret
either (the word must be ``token`` or end in it).

How it is applied:

* ``check_overrides``: a command-line override may not give a secret-named key a literal value, nor carry the
  value of a secret environment variable: ClearML records overrides as the ``Hydra/*`` parameters, and an
  agent re-applies those to a cloned task, so masking them there would break the clone. The value must be a
  reference, ``${oc.env:VAR}``, whose text is what gets recorded.
* ``mask``: a copy of a config or metadata tree with the values of secret-named keys (and any value of a secret
  environment variable inside other strings) replaced by ``MASK``. References (``${...}``) are kept: they show
  only where a value comes from. Used for the resolved run config stored on models, the models' metadata and
  comment, and the ``OmegaConf`` configuration object (``mask_recorded_config``).
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable, Mapping, Sequence

from pipelines.parameters import override_key

from .errors import ConfigError

MASK = "********"
SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "secrets", "token", "credential",
                          "credentials", "apikey", "accesskey", "secretkey", "privatekey"})
SECRET_SUFFIXES = ("password", "passwd", "secret", "token")
KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "auth", "encryption", "signing", "ssh", "client",
                            "account"})
# a name ending in one of these holds where a secret is, not the secret (token_file, secret_path, password_env)
LOCATOR_WORDS = frozenset({"file", "files", "path", "dir", "directory", "env", "var", "variable", "sock", "socket"})
# values of secret environment variables shorter than this are not searched for in other strings ("1", "true")
MIN_SECRET_LENGTH = 6

# one ${...} interpolation, nothing else; oc.env may have a null or empty default, no literal one
_REFERENCE = re.compile(r"\$\{[^${}]+\}")
_ENV_WITH_DEFAULT = re.compile(r"\$\{\s*oc\.env\s*:\s*[^,}]+,\s*(?P<default>[^}]*)\}")


def name_words(name: str) -> list[str]:
    """The lower-case words of a key or variable name (see the module docstring)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", name))
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def is_secret_name(name: str) -> bool:
    """True for a key or variable name that holds a secret (``HOSPITAL_PACS_PASSWORD``, ``api_key``,
    ``clientSecret``), False for ``keys``, ``image_key``, ``label_key``, ``max_tokens``, ``token_file``."""
    words = name_words(str(name))
    if words and words[-1] in LOCATOR_WORDS:
        return False
    for i, word in enumerate(words):
        if word in SECRET_WORDS or word.endswith(SECRET_SUFFIXES):
            return True
        if word == "key" and i > 0 and words[i - 1] in KEY_QUALIFIERS:
            return True
    return False


def is_secret_path(path: str) -> bool:
    """A dotted config key (``data.pacs_password``) with a secret-named part: its value, or all values under it."""
    return any(is_secret_name(part) for part in str(path).split("."))


def is_reference(value: Any) -> bool:
    """True for a value that only points at a secret: one ``${...}`` interpolation (``${oc.env:VAR}``), with
    no literal default (``${oc.env:VAR,null}`` is fine, ``${oc.env:VAR,hunter2}`` is not)."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    if not _REFERENCE.fullmatch(text):
        return False
    default = _ENV_WITH_DEFAULT.fullmatch(text)
    return default is None or default.group("default").strip() in ("", "null", "''", '""')


def environment_secrets(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Name -> value of the secret-named environment variables whose value is long enough to search for."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if is_secret_name(k) and len(v.strip()) >= MIN_SECRET_LENGTH}


def _split_override(override: str) -> tuple[str, str | None]:
    _, sep, value = override.partition("=")
    return override_key(override), (value if sep else None)


def refused_overrides(overrides: Iterable[str], environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(key, reason) for each override that would put a secret into the recorded parameters."""
    known = environment_secrets(environ)
    refused = []
    for override in overrides:
        key, value = _split_override(str(override))
        if value is None or is_reference(value):
            continue
        carried = sorted(name for name, secret in known.items() if secret in value)
        if carried:
            refused.append((key, f"its value contains the value of the environment variable {carried[0]}"))
        elif is_secret_path(key) and value.strip() not in ("", "null", "''", '""'):
            refused.append((key, "is a secret-named key with a literal value"))
    return refused


def check_overrides(overrides: Sequence[str], environ: Mapping[str, str] | None = None) -> None:
    """Refuse (ConfigError) an override that would record a secret in plain text; see ``refused_overrides``."""
    refused = refused_overrides(overrides, environ)
    if not refused:
        return
    key, reason = refused[0]
    variable = re.sub(r"[^A-Z0-9]+", "_", key.upper()).strip("_")
    raise ConfigError(key, f"{reason}. Overrides are recorded in plain text (the task's Hydra parameters, the "
                           f"pipeline's overrides); pass the secret through an environment variable instead: "
                           f"{key}='${{oc.env:{variable}}}' with {variable} set where the step runs, or "
                           f"'{key.rsplit('.', 1)[-1]}: ${{oc.env:{variable}}}' in the config file (a remote "
                           f"pipeline needs the config file: ClearML takes ${{...}} in a step parameter for a "
                           f"reference to another step)")


def _mask_strings(text: str, known: Iterable[str]) -> str:
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _mask_all(node: Any) -> Any:
    """Every value under a secret-named key: masked, except unset values and references."""
    if isinstance(node, Mapping):
        return {k: _mask_all(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_mask_all(v) for v in node]
    if node is None or node == "" or is_reference(node):
        return node
    return MASK


def mask(tree: Any, known: Iterable[str] | None = None) -> Any:
    """A copy of ``tree`` (dicts, lists, scalars) with secret-named keys' values and, inside any string, the
    ``known`` secret values (default: ``environment_secrets()``) replaced by ``MASK``."""
    values = sorted(set(environment_secrets().values() if known is None else known), key=len, reverse=True)

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: _mask_all(v) if isinstance(k, str) and is_secret_name(k) else walk(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v) for v in node]
        if isinstance(node, str):
            return _mask_strings(node, values)
        return node

    return walk(tree)


OMEGACONF_SECTION = "OmegaConf"  # the configuration object ClearML's Hydra binding records


def mask_recorded_config(task: Any) -> bool:
    """Mask secrets in the task's ``OmegaConf`` configuration object (the config as composed, before
    resolution: a ``${oc.env:VAR}`` stays as it is, a literal in a config file is masked); True if it changed.

    The object is rewritten only when something had to be masked. (With ``Hydra/_allow_omegaconf_edit_``
    set to True on a clone, an agent runs the clone with this object: a masked literal then stays masked;
    reference secrets with ``${oc.env:VAR}`` to keep such clones runnable.)
    """
    from omegaconf import OmegaConf

    text = task.get_configuration_object(OMEGACONF_SECTION)
    if not text:
        return False
    recorded = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    masked = mask(recorded)
    if masked == recorded:
        return False
    task.set_configuration_object(OMEGACONF_SECTION, config_text=OmegaConf.to_yaml(OmegaConf.create(masked)),
                                  config_type="OmegaConf YAML",
                                  description="Full OmegaConf YAML configuration (secrets masked)")
    return True
