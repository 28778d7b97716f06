"""The restart policy as a pure function of failures in a row and time up."""

from __future__ import annotations

from lab.runtimes.native.backoff import POLICY, Backoff


def test_first_restart_is_immediate_then_the_wait_doubles_up_to_the_cap() -> None:
    delays = [POLICY.delay(failures) for failures in range(1, 9)]

    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_process_that_dies_soon_after_starting_keeps_counting() -> None:
    failures = 0
    for _ in range(5):
        # Ready after 2 s, dead after 3 s: a short success is no success.
        failures = POLICY.failures_after_exit(failures, up_seconds=3.0)

    assert failures == 5
    assert POLICY.delay(failures) == 8.0


def test_a_stable_run_starts_the_count_over() -> None:
    assert POLICY.failures_after_exit(7, up_seconds=POLICY.stable_seconds) == 1
    assert POLICY.failures_after_exit(7, up_seconds=POLICY.stable_seconds - 0.1) == 8
    assert POLICY.is_stable(POLICY.stable_seconds)
    assert not POLICY.is_stable(POLICY.stable_seconds - 0.1)


def test_crash_loop_from_the_third_failure_in_a_row() -> None:
    assert [POLICY.crash_looping(n) for n in range(5)] == [False, False, False, True, True]


def test_the_policy_is_data() -> None:
    quick = Backoff(first_delay=0.5, factor=3.0, max_delay=5.0, loop_after=2)

    assert [quick.delay(n) for n in range(1, 6)] == [0.0, 0.5, 1.5, 4.5, 5.0]
    assert quick.crash_looping(2)
