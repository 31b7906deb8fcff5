"""The runner's alarm (engine/alarm.py): what it learns, when it falls due, reading the next time."""

from __future__ import annotations

import math

from tasker_host.engine.alarm import Alarm


def test_it_keeps_the_earliest_time_and_asks_for_a_wake_up_only_when_earlier_than_its_sleep() -> None:
    alarm = Alarm()
    assert alarm.learn(50.0) is True  # not asleep: any time is earlier than forever
    assert alarm.sleep(poll_at=10.0) == 10.0  # the poll comes first
    assert alarm.learn(20.0) is False and alarm.at == 20.0  # later than the sleep: no wake-up needed
    assert alarm.learn(5.0) is True and alarm.at == 5.0
    alarm.woke()
    assert alarm.sleeping_until == math.inf


def test_a_due_time_is_read_again_and_one_more_round_is_rushed_once() -> None:
    alarm = Alarm()
    alarm.at = 10.0
    assert alarm.fell_due(9.0) is False
    assert alarm.fell_due(10.0) is True and alarm.at is None and alarm.reread
    assert alarm.read(12.0, now=10.0) is False and (alarm.at, alarm.reread) == (12.0, False)  # the next one
    alarm.at = None
    alarm.reread = True
    assert alarm.read(10.5, now=11.0) is True  # fell due meanwhile: one more claim round at once
    assert alarm.read(10.5, now=11.0) is False and alarm.reread  # still due: left to the next wake-up
    alarm.sleep(poll_at=12.0)
    assert alarm.read(10.5, now=12.0) is True  # a new wake-up may rush again
    assert alarm.read(None, now=12.0) is False and (alarm.at, alarm.reread) == (None, False)
