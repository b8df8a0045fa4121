"""Each kind of bad input is caught with a message naming the file or key and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.common.errors import ConfigError, DataError
from components.common.manifest import Case, assign_splits
from components.common.sources import list_decathlon, list_folder
from components.common.validation import inspect_case, validate_cases
from tests.conftest import make_case, write_nifti


def _problems(case: Case, num_classes: int = 2) -> str:
    return "; ".join(inspect_case(case, num_classes).problems)


def test_valid_case_has_no_problem_and_statistics(tmp_path: Path) -> None:
    image, label = make_case(tmp_path, "ok", classes=3)
    report = inspect_case(Case("ok", str(image), str(label)), num_classes=3)
    assert report.ok, report.problems
    assert report.stats["shape"] == [24, 24, 24]
    assert report.stats["spacing"] == [1.0, 1.0, 1.0]
    assert set(report.stats["class_voxels"]) == {"0", "1", "2"}
    assert report.stats["intensity_percentiles"]["p0.5"] < report.stats["intensity_percentiles"]["p99.5"]


def test_unreadable_non_nifti_file(tmp_path: Path) -> None:
    _, label = make_case(tmp_path, "a")
    bogus = tmp_path / "imagesTr" / "bogus.nii.gz"
    bogus.write_text("this is not an image")
    problems = _problems(Case("a", str(bogus), str(label)))
    assert "bogus.nii.gz" in problems and "unreadable or not NIfTI" in problems


def test_missing_label(tmp_path: Path) -> None:
    image, _ = make_case(tmp_path, "a")
    assert "missing label file" in _problems(Case("a", str(image), None))
    assert "does not exist" in _problems(Case("a", str(image), str(tmp_path / "nope.nii.gz")))


def test_shape_mismatch(tmp_path: Path) -> None:
    image, _ = make_case(tmp_path, "a")
    label = write_nifti(tmp_path / "l.nii.gz", np.ones((20, 24, 24), np.uint8))
    assert "does not match label shape" in _problems(Case("a", str(image), str(label)))


def test_affine_mismatch(tmp_path: Path) -> None:
    image, label = make_case(tmp_path, "a")
    import nibabel as nib
    data = np.asarray(nib.load(str(label)).dataobj)
    shifted = write_nifti(tmp_path / "shifted.nii.gz", data, np.diag([2.0, 1.0, 1.0, 1.0]))
    assert "affines differ" in _problems(Case("a", str(image), str(shifted)))


def test_label_values_outside_declared_classes(tmp_path: Path) -> None:
    image, label = make_case(tmp_path, "a", classes=3)
    assert "label values [2] are outside the declared classes 0..1" in _problems(Case("a", str(image), str(label)), 2)


def test_empty_label(tmp_path: Path) -> None:
    image, _ = make_case(tmp_path, "a")
    empty = write_nifti(tmp_path / "empty.nii.gz", np.zeros((24, 24, 24), np.uint8))
    assert "label is empty" in _problems(Case("a", str(image), str(empty)))


def test_nan_and_inf_intensities(tmp_path: Path) -> None:
    _, label = make_case(tmp_path, "a")
    data = np.zeros((24, 24, 24), np.float32)
    data[0, 0, 0], data[1, 1, 1] = np.nan, np.inf
    image = write_nifti(tmp_path / "nan.nii.gz", data)
    assert "2 NaN/Inf voxel(s)" in _problems(Case("a", str(image), str(label)))


def test_fail_mode_names_every_bad_file_and_skip_mode_reports(tmp_path: Path) -> None:
    good = [Case(f"g{i}", *map(str, make_case(tmp_path, f"g{i}", seed=i))) for i in range(2)]
    image, _ = make_case(tmp_path, "bad")
    bad = Case("bad", str(image), None)
    with pytest.raises(DataError) as err:
        validate_cases([*good, bad], 2, "fail")
    assert "bad.nii.gz" in str(err.value) and "missing label" in str(err.value)
    valid, invalid = validate_cases([*good, bad], 2, "skip")
    assert [r.case.id for r in valid] == ["g0", "g1"]
    assert [r.case.id for r in invalid] == ["bad"]
    with pytest.raises(ConfigError, match="data.on_invalid"):
        validate_cases(good, 2, "ignore")


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed JSON"),
    ('{"labels": {"0": "bg", "1": "x"}}', "'training' must be a non-empty list"),
    ('{"training": [{"image": "a.nii.gz"}]}', "'labels' must be a non-empty object"),
    ('{"labels": {"0": "bg", "2": "x"}, "training": [{"image": "a.nii.gz"}]}', "0..N-1 with no gaps"),
    ('{"labels": {"0": "bg"}, "training": [{"label": "a.nii.gz"}]}', "training[0] must be an object"),
])
def test_malformed_dataset_json(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(DataError) as err:
        list_decathlon(tmp_path)
    assert "dataset.json" in str(err.value) and message in str(err.value)


def test_decathlon_listing_reads_real_files(tmp_path: Path) -> None:
    for i in range(3):
        make_case(tmp_path, f"spleen_{i}", seed=i)
    entries = [{"image": f"./imagesTr/spleen_{i}.nii.gz", "label": f"./labelsTr/spleen_{i}.nii.gz"} for i in range(3)]
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "spleen"},
                                                       "training": entries, "test": []}))
    cases, labels = list_decathlon(tmp_path)
    assert labels == {"0": "background", "1": "spleen"}
    assert [c.id for c in cases] == ["spleen_0", "spleen_1", "spleen_2"]
    assert all(Path(c.image).is_file() and Path(str(c.label)).is_file() for c in cases)


def test_folder_listing_pairs_by_name_and_reports_missing_labels(tmp_path: Path) -> None:
    make_case(tmp_path, "a")
    make_case(tmp_path, "b")
    (tmp_path / "imagesTr" / "b.nii.gz").rename(tmp_path / "imagesTr" / "b_0000.nii.gz")  # nnU-Net naming
    (tmp_path / "labelsTr" / "a.nii.gz").unlink()
    cases, _ = list_folder(tmp_path / "imagesTr", tmp_path / "labelsTr", {"0": "bg", "1": "fg"})
    by_id = {c.id: c for c in cases}
    assert by_id["a"].label is None
    assert by_id["b"].label is not None and by_id["b"].label.endswith("b.nii.gz")
    with pytest.raises(ConfigError, match="data.images_dir"):
        list_folder(tmp_path / "missing", tmp_path / "labelsTr", {"0": "bg"})


def test_split_is_deterministic_and_covers_every_split() -> None:
    cases = [Case(f"c{i:02d}", f"i{i}", f"l{i}") for i in range(10)]
    a = assign_splits(cases, 0.2, 0.2, seed=1)
    b = assign_splits(list(reversed(cases)), 0.2, 0.2, seed=1)
    assert [(c.id, c.split) for c in a] == [(c.id, c.split) for c in b]
    assert sorted({c.split for c in a}) == ["test", "train", "val"]
    assert [c.split for c in a] != [c.split for c in assign_splits(cases, 0.2, 0.2, seed=2)]


def test_too_few_cases_for_split() -> None:
    with pytest.raises(ConfigError) as err:
        assign_splits([Case("a", "i", "l"), Case("b", "i", "l")], 0.2, 0.2, seed=0)
    assert "2 valid case(s) are too few" in str(err.value) and "data.split" in str(err.value)


def test_a_console_command_turns_user_errors_into_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    from components.common.errors import ConfigError, exit_code_of

    def fails() -> int:
        raise ConfigError("schedule.time", "bad")

    assert exit_code_of(lambda: 0) == 0
    assert exit_code_of(fails) == 2
    assert "error: config key 'schedule.time': bad" in capsys.readouterr().err
    with pytest.raises(RuntimeError):  # anything else is a bug: its traceback is kept
        exit_code_of(lambda: (_ for _ in ()).throw(RuntimeError("boom")))
