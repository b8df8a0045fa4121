"""The ClearML workaround module: version checks and the small pieces that need no server."""

from __future__ import annotations

import logging
import signal

import pytest

from components.common import clearml_compat


def test_a_workaround_warns_once_when_another_clearml_is_installed(monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(clearml_compat, "_warned", set())
    assert clearml_compat.check_version("example", seen_with=clearml_compat.installed_version())
    with caplog.at_level(logging.WARNING, logger=clearml_compat.__name__):
        assert not clearml_compat.check_version("example", seen_with="0.0.1")
        assert not clearml_compat.check_version("example", seen_with="0.0.1")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "'example' was written for clearml 0.0.1" in warnings[0]


def test_the_pinned_clearml_is_the_one_the_workarounds_were_written_for() -> None:
    """requirements/constraints.txt pins the release SEEN_WITH names: bump both together after re-checking."""
    from tests.support import REPO

    pins = dict(line.split("==") for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["clearml"] == clearml_compat.SEEN_WITH


def test_sigterm_gets_a_handler_that_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        clearml_compat.exit_on_sigterm()
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        with pytest.raises(SystemExit) as info:
            handler(signal.SIGTERM, None)
        assert info.value.code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_required_trigger_tags_become_an_all_of_filter() -> None:
    assert clearml_compat.all_of_tags([]) is None and clearml_compat.all_of_tags(None) is None
    assert clearml_compat.all_of_tags(["approved", "ct"]) == ["__$all", "approved", "ct"]
