"""The schedule's new-data trigger (pipelines/schedule.add_new_data_trigger) against a server: it reacts to
raw Dataset versions finalized since the registration, and "required tags" are all required."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.standin.fixtures import SdkRunner

SCRIPT = Path(__file__).parent / "scripts" / "new_data_trigger.py"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_trigger_reacts_to_new_versions_with_all_required_tags(sdk: SdkRunner, tmp_path: Path, unique_name: str) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "case.txt").write_text("a case")
    out = sdk.run_json(SCRIPT, unique_name, str(folder), cwd=REPO)
    versions = out["versions"]
    assert out["found"]["any"] == sorted(versions.values())  # every version since the registration, not the one before
    assert out["found"]["approved+ct"] == [versions["approved+ct"]]  # all required tags, not any of them
    assert "no raw Dataset" in out["missing"] and f"{unique_name}/no-such-raw/cases" in out["missing"]
