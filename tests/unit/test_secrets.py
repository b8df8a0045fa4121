"""components/common/secrets.py: which names are secret, refused overrides, masking of recorded configs and
model metadata (the remote end-to-end check is tests/remote/test_load_and_secrets.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from components.common import secrets, tracking
from components.common.errors import ConfigError
from pipelines.config import compose_config
from tests.conftest import TINY_OVERRIDES

SECRET_NAMES = ["HOSPITAL_PACS_PASSWORD", "MONAI_DEMO_API_TOKEN", "S3_SECRET_ACCESS_KEY", "CLEARML_API_ACCESS_KEY",
                "CLEARML_API_SECRET_KEY", "AWS_ACCESS_KEY_ID", "pacs_password", "password", "passwd", "db_passphrase",
                "api_key", "apiKey", "apikey", "clientSecret", "client_secret", "authToken", "access_token",
                "GITHUB_TOKEN", "private_key", "ssh_key", "credentials", "secrets", "pacspassword"]
NOT_SECRET_NAMES = ["keys", "key", "image_key", "label_key", "pred_key", "label_names", "max_tokens", "tokenizer",
                    "token_file", "secret_path", "password_env", "AWS_SHARED_CREDENTIALS_FILE", "SSH_AUTH_SOCK",
                    "dataset_id", "model_id", "production_tag", "keep_last", "_target_", "monkey"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name: str) -> None:
    assert secrets.is_secret_name(name)


@pytest.mark.parametrize("name", NOT_SECRET_NAMES)
def test_names_that_are_not_secret(name: str) -> None:
    assert not secrets.is_secret_name(name)


def test_no_key_of_the_project_config_is_secret_named() -> None:
    """MONAI's transform keys and everything else in conf/ stay visible in recorded configs."""
    cfg = OmegaConf.to_container(compose_config(TINY_OVERRIDES), resolve=False)
    assert secrets.mask(cfg, known=[]) == cfg


def test_name_words_split_case_and_separators() -> None:
    assert secrets.name_words("S3_SECRET_ACCESS_KEY") == ["s3", "secret", "access", "key"]
    assert secrets.name_words("secretAccessKey") == ["secret", "access", "key"]
    assert secrets.name_words("HTTPToken") == ["http", "token"]
    assert secrets.name_words("data.pacs-password") == ["data", "pacs", "password"]


@pytest.mark.parametrize("value", ["${oc.env:HOSPITAL_PACS_PASSWORD}", "'${oc.env:X}'", "${oc.env:X,null}",
                                   "${oc.env:X,}", "${data.other_secret}"])
def test_references(value: str) -> None:
    assert secrets.is_reference(value)


@pytest.mark.parametrize("value", ["hunter2", "${oc.env:X,hunter2}", "pre${oc.env:X}", "${oc.env:X}${oc.env:Y}", 7,
                                   None])
def test_not_references(value: Any) -> None:
    assert not secrets.is_reference(value)


def test_a_literal_secret_override_is_refused_with_how_to_reference_it() -> None:
    with pytest.raises(ConfigError) as caught:
        secrets.check_overrides(["debug=tiny", "+data.pacs_password=hunter2"], environ={})
    message = str(caught.value)
    assert message.startswith("config key 'data.pacs_password': is a secret-named key with a literal value")
    assert "data.pacs_password='${oc.env:DATA_PACS_PASSWORD}'" in message
    assert "pacs_password: ${oc.env:DATA_PACS_PASSWORD}' in the config file" in message
    assert "hunter2" not in message


def test_an_override_carrying_a_secret_environment_value_is_refused() -> None:
    environ = {"HOSPITAL_PACS_PASSWORD": "s3cr3t-value", "HOME": "/home/user"}
    with pytest.raises(ConfigError, match="contains the value of the environment variable HOSPITAL_PACS_PASSWORD"):
        secrets.check_overrides(["data.root=https://me:s3cr3t-value@pacs/studies"], environ=environ)
    secrets.check_overrides(["paths.output_root=/home/user/out"], environ=environ)  # HOME is no secret


@pytest.mark.parametrize("override", ["+data.pacs_password=${oc.env:HOSPITAL_PACS_PASSWORD}",
                                      "++data.pacs_password='${oc.env:HOSPITAL_PACS_PASSWORD}'",
                                      "data.pacs_password=null", "~data.pacs_password", "data.pacs_password=",
                                      "image_key=image", "train.max_epochs=3", "model=segresnet"])
def test_overrides_that_are_accepted(override: str) -> None:
    secrets.check_overrides([override], environ={"HOSPITAL_PACS_PASSWORD": "s3cr3t-value"})


def test_mask_replaces_secret_named_values_and_known_values_and_keeps_the_rest() -> None:
    tree = {"data": {"pacs_password": "hunter2", "root": "https://me:envsecret1@pacs", "keys": ["image", "label"],
                     "image_key": "image", "token_file": "/run/token"},
            "credentials": {"user": "me", "port": 5, "unset": None, "ref": "${oc.env:PW}"},
            "api_key": "${oc.env:API_KEY}", "list": [{"secret": 3}, "envsecret1"], 1: "low"}
    masked = secrets.mask(tree, known=["envsecret1"])
    assert masked == {"data": {"pacs_password": secrets.MASK, "root": f"https://me:{secrets.MASK}@pacs",
                               "keys": ["image", "label"], "image_key": "image", "token_file": "/run/token"},
                      "credentials": {"user": secrets.MASK, "port": secrets.MASK, "unset": None, "ref": "${oc.env:PW}"},
                      "api_key": "${oc.env:API_KEY}", "list": [{"secret": secrets.MASK}, secrets.MASK], 1: "low"}
    assert tree["data"]["pacs_password"] == "hunter2", "the input must stay unchanged"
    assert secrets.mask(None) is None


def test_mask_takes_known_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONAI_DEMO_API_TOKEN", "tok-1234567")
    monkeypatch.setenv("SOME_SECRET", "1")  # too short to search for
    assert secrets.environment_secrets()["MONAI_DEMO_API_TOKEN"] == "tok-1234567"
    assert "SOME_SECRET" not in secrets.environment_secrets()
    assert secrets.mask({"note": "x tok-1234567 y", "n": "1"}) == {"note": f"x {secrets.MASK} y", "n": "1"}


class FakeTask:
    """The parts of a ClearML Task the recorded-config masking and model registration use."""

    def __init__(self, omegaconf_text: str = "") -> None:
        self.configuration = {"OmegaConf": omegaconf_text}
        self.set_calls: list[dict[str, Any]] = []

    def get_configuration_object(self, name: str) -> str | None:
        return self.configuration.get(name)

    def set_configuration_object(self, name: str, config_text: str, config_type: str, description: str) -> None:
        self.configuration[name] = config_text
        self.set_calls.append({"name": name, "type": config_type, "description": description})

    def is_offline(self) -> bool:
        return False


def test_recorded_config_literal_secrets_are_masked_and_references_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOSPITAL_PACS_PASSWORD", raising=False)
    text = ("data:\n  pacs_password: hunter2\n  keys: [image, label]\n  api_token: ${oc.env:MONAI_DEMO_API_TOKEN}\n"
            "paths:\n  run_dir: ${paths.output_root}/${paths.run_id}\n")
    task = FakeTask(text)
    assert secrets.mask_recorded_config(task)
    recorded = OmegaConf.create(task.configuration["OmegaConf"])
    assert recorded.data.pacs_password == secrets.MASK
    assert OmegaConf.to_container(recorded, resolve=False)["data"]["api_token"] == "${oc.env:MONAI_DEMO_API_TOKEN}"
    assert list(recorded.data["keys"]) == ["image", "label"]
    assert OmegaConf.to_container(recorded, resolve=False)["paths"]["run_dir"] == "${paths.output_root}/${paths.run_id}"
    assert task.set_calls[0]["type"] == "OmegaConf YAML"
    # nothing to mask: the object the Hydra binding recorded is left alone
    clean = FakeTask("data:\n  api_token: ${oc.env:MONAI_DEMO_API_TOKEN}\n")
    assert not secrets.mask_recorded_config(clean) and clean.set_calls == []
    assert not secrets.mask_recorded_config(FakeTask(""))


def test_registered_model_config_comment_and_metadata_are_masked(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    created: list[Any] = []

    class RecordingModel:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs, self.metadata = kwargs, {}
            created.append(self)

        def set_metadata(self, key: str, value: str, v_type: str) -> None:
            self.metadata[key] = value

    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "s3-very-secret")
    monkeypatch.setattr(tracking, "OutputModel", RecordingModel)
    monkeypatch.setattr(tracking.clearml_compat, "upload_weights", lambda *args: None)
    config = {"data": {"pacs_password": "hunter2", "keys": ["image"]}, "clearml": {"output_uri": "s3://k:s3-very-secret@b"}}
    tracking.register_model(FakeTask(), tmp_path / "best.pt", "train best", config=config,  # type: ignore[arg-type]
                            metadata={"seed": 0, "api_token": "tok-abcdef", "dataset_id": "abc"})
    model = created[0]
    assert model.kwargs["config_dict"] == {"data": {"pacs_password": secrets.MASK, "keys": ["image"]},
                                           "clearml": {"output_uri": f"s3://k:{secrets.MASK}@b"}}
    assert model.kwargs["comment"] == f"seed=0, api_token={secrets.MASK}, dataset_id=abc"
    assert model.metadata == {"seed": "0", "api_token": secrets.MASK, "dataset_id": "abc"}


def test_a_step_refuses_a_literal_secret_override_before_its_task_records_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_task(**kwargs: Any) -> None:
        raise AssertionError("Task.init must not run: it would record the override")

    monkeypatch.setattr(tracking, "_hydra_overrides", lambda: ["debug=tiny", "+data.pacs_password=hunter2"])
    monkeypatch.setattr(tracking.Task, "init", no_task)
    cfg = compose_config(TINY_OVERRIDES)
    with pytest.raises(ConfigError, match="config key 'data.pacs_password'"):
        tracking.init_step_task(cfg, "train", "training")
