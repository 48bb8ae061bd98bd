"""customers.webhooks.Deadlines: the one thread that cuts an attempt off at its deadline."""

import threading
import time

from customers.webhooks import Deadlines


def test_a_deadline_calls_its_function_once_it_has_passed():
    deadlines = Deadlines()
    called = threading.Event()
    started = time.monotonic()
    deadlines.add(0.2, called.set)
    assert called.wait(5)
    assert time.monotonic() - started >= 0.2


def test_a_cancelled_deadline_never_calls_and_others_still_do():
    deadlines = Deadlines()
    cancelled, kept = threading.Event(), threading.Event()
    handle = deadlines.add(0.1, cancelled.set)
    deadlines.add(0.3, kept.set)
    deadlines.cancel(handle)
    assert kept.wait(5)
    assert not cancelled.is_set()


def test_an_earlier_deadline_added_later_is_not_kept_waiting():
    deadlines = Deadlines()
    late, early = threading.Event(), threading.Event()
    deadlines.add(30, late.set)
    started = time.monotonic()
    deadlines.add(0.1, early.set)
    assert early.wait(5)
    assert time.monotonic() - started < 5
    assert not late.is_set()


def test_a_failing_function_does_not_stop_the_thread():
    deadlines = Deadlines()
    after = threading.Event()

    def fail():
        raise RuntimeError("boom")

    deadlines.add(0.05, fail)
    deadlines.add(0.15, after.set)
    assert after.wait(5)
