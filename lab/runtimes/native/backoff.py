"""When the supervisor restarts a process that keeps dying: the restart policy as data.

The first restart after a stable run is immediate (one crash costs only the start time);
each further failure in a row doubles the wait, from 1 s up to 30 s. What makes it a
*row* is that the process never stayed up `stable_seconds` in between: answering its
readiness check does not count, so a process that dies right after becoming ready backs
off like one that never starts (supervisord, measured, resets its backoff as soon as a
program passes `startsecs`, and restarts such a program at a fixed pace forever). Each
failure in a row from `loop_after` on is reported as a crash loop, until a stable run
clears it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    # Wait before the second attempt in a row; each later one waits `factor` times longer.
    first_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    # Up this long, a process counts as healthy again: its failure count starts over.
    stable_seconds: float = 30.0
    # This many failures in a row make a crash loop.
    loop_after: int = 3

    def failures_after_exit(self, failures: int, up_seconds: float) -> int:
        """Failures in a row once a process that ran `up_seconds` exits (or fails to start)."""
        return 1 if up_seconds >= self.stable_seconds else failures + 1

    def delay(self, failures: int) -> float:
        """Seconds to wait before the restart that follows `failures` failures in a row."""
        if failures <= 1:
            return 0.0
        return min(self.first_delay * self.factor ** (failures - 2), self.max_delay)

    def is_stable(self, up_seconds: float) -> bool:
        return up_seconds >= self.stable_seconds

    def crash_looping(self, failures: int) -> bool:
        return failures >= self.loop_after


POLICY = Backoff()
