"""Schedule timing and registration checks (pipelines/schedule.py), including the TaskScheduler traps."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from components.common.errors import ConfigError
from pipelines.config import compose_config
from pipelines.schedule import When, _not_a_draft, next_run, run_overrides, schedule_job, split_overrides, when_from_config

WINTER = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)  # Europe/Berlin is UTC+1
SUMMER = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)  # Europe/Berlin is UTC+2


def settings(**values: object) -> object:
    return OmegaConf.merge(compose_config([]).schedule, values)


@pytest.mark.parametrize("now, hour", [(WINTER, 1), (SUMMER, 0)])
def test_local_time_of_day_becomes_utc_with_the_offset_of_the_next_run(now: datetime, hour: int) -> None:
    when = when_from_config(settings(time="02:30", timezone="Europe/Berlin"), now)
    assert when == When(minute=30, hour=hour, day=1)
    first = next_run(when, now)
    assert first.tzinfo is not None and first.astimezone(timezone.utc).hour == hour
    local = first.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (2, 30) and local.date() > now.date()


@pytest.mark.parametrize("tz, at, days, utc_days, utc_time", [
    ("Europe/Berlin", "00:30", ["monday", "thursday"], ("sunday", "wednesday"), (23, 30)),  # back over midnight
    ("America/New_York", "22:00", ["friday"], ("saturday",), (3, 0)),  # forward over midnight
    ("UTC", "02:30", ["monday"], ("monday",), (2, 30)),
])
def test_weekdays_move_with_the_date_when_the_conversion_crosses_midnight(tz: str, at: str, days: list[str],
                                                                          utc_days: tuple[str, ...],
                                                                          utc_time: tuple[int, int]) -> None:
    when = when_from_config(settings(time=at, timezone=tz, weekdays=days), WINTER)
    assert when.weekdays == utc_days and (when.hour, when.minute) == utc_time and when.day == 1
    first = next_run(when, WINTER)
    assert first.strftime("%A").lower() in utc_days and (first.hour, first.minute) == utc_time


def test_hour_and_minute_without_day_is_a_period_not_a_time_of_day() -> None:
    """The TaskScheduler trap: ``hour=2, minute=30`` alone launches every 2 h 30 min; ``day=1`` makes it daily
    at 02:30. The schedule always passes day=1 with a time of day."""
    start = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    period = schedule_job(When(minute=30, hour=2), starting_time=start).next()
    assert period.date() == start.date() and (period.hour, period.minute) != (2, 30)  # later today, not at 02:30
    daily = schedule_job(When(minute=30, hour=2, day=1), starting_time=start).next()
    assert daily == datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)
    before = schedule_job(When(minute=30, hour=2, day=1), starting_time=start.replace(hour=1)).next()
    assert before == datetime(2026, 11, 24, 2, 30, tzinfo=timezone.utc)  # still today when registered before 02:30


def test_naive_timestamps_from_a_stored_state_still_give_an_aware_next_run() -> None:
    """The naive/aware trap: a 2.1.x release compared naive stored timestamps with an aware "now" and the
    scheduled job never ran. A job restored from naive ISO strings (as older states hold them) must give
    an aware next run that can be compared with an aware now."""
    from clearml.automation.scheduler import ScheduleJob

    job = ScheduleJob().update({"name": "nightly", "base_task_id": "x", "queue": "services", "minute": 30, "hour": 2,
                                "day": 1, "starting_time": "2026-11-20T10:00:00", "_schedule_counter": 1,
                                "_last_executed": "2026-11-21T02:30:00"})
    job.verify()
    nxt = job.next()
    assert nxt.tzinfo is not None
    assert nxt == datetime(2026, 11, 22, 2, 30, tzinfo=timezone.utc)
    assert (nxt - datetime.now(timezone.utc)).total_seconds() < 0  # comparable with an aware now: due, so it runs


def test_interval_schedules_every_n_minutes() -> None:
    when = when_from_config(settings(interval_minutes=15), WINTER)
    assert when == When(minute=15)
    assert next_run(when, WINTER) == datetime(2026, 11, 24, 12, 15, tzinfo=timezone.utc)


@pytest.mark.parametrize("values, key", [
    ({"time": "25:00"}, "schedule.time"), ({"time": "2.30"}, "schedule.time"),
    ({"timezone": "Mars/Olympus"}, "schedule.timezone"), ({"weekdays": ["mon"]}, "schedule.weekdays"),
    ({"weekdays": []}, "schedule.weekdays"), ({"interval_minutes": 0}, "schedule.interval_minutes"),
])
def test_bad_schedule_settings_name_their_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        when_from_config(settings(**values), WINTER)
    assert info.value.key == key


def test_command_line_overrides_win_over_the_scheduled_runs_defaults() -> None:
    settings_, own = split_overrides(["schedule.time=03:00", "experiment=spleen", "train.max_epochs=5"])
    assert settings_ == ["schedule.time=03:00"] and own == ["experiment=spleen", "train.max_epochs=5"]
    cfg = compose_config([])
    assert run_overrides(cfg, own) == own  # experiment=nightly from schedule.run_overrides gives way
    assert run_overrides(cfg, ["train.max_epochs=5"]) == ["experiment=nightly", "train.max_epochs=5"]
    assert compose_config(run_overrides(cfg, [])).train.max_epochs > compose_config([]).train.max_epochs


@pytest.mark.parametrize("task, problem", [
    (SimpleNamespace(task_type="controller", status="completed", get_system_tags=lambda: ["pipeline"]),
     "is a pipeline run (status completed), not the registered draft"),
    (SimpleNamespace(task_type="training", status="created", get_system_tags=lambda: []),
     "is not a pipeline controller (type training)"),
    (SimpleNamespace(task_type="controller", status="created", get_system_tags=lambda: ["pipeline"]), None),
])
def test_only_a_registered_draft_controller_can_be_scheduled(task: object, problem: str | None) -> None:
    assert _not_a_draft(task) == problem
