"""clearml.Dataset: create, add files, finalize, then get a local copy in another process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.standin.client import ApiClient
from tests.standin.fixtures import SdkRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCRIPTS = Path(__file__).parent / "scripts"


def test_dataset_round_trip(sdk: SdkRunner, clearml_api: ApiClient, unique_name: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "images").mkdir(parents=True)
    files = {"images/case_001.txt": "voxels 1\n", "images/case_002.txt": "voxels 2\n", "labels.csv": "case,label\n1,0\n"}
    for rel, text in files.items():
        (source / rel).write_text(text)

    created = sdk.run_json(SCRIPTS / "dataset_create.py", f"standin-tests/{unique_name}", "tiny", str(source))
    task = clearml_api.task(created["dataset_id"])
    assert task["status"] in ("completed", "published")
    assert "dataset" in task["system_tags"]

    fetched = sdk.run_json(SCRIPTS / "dataset_get.py", created["dataset_id"])
    assert fetched == files
