"""The lab's time scale: AWS durations divided by Metadata.Lab.TimeScale at run time.

A template says e.g. Period: 60 or Cooldown: 300 in AWS's seconds; a lab with TimeScale 10 runs
them in 6 s and 30 s so an experiment of an hour's AWS behaviour takes six minutes. The model
keeps AWS's numbers (testbed.model.autoscaling_types); only the runtime divides, through here.
Wall-clock times (scheduled actions' cron, StartTime, EndTime) are never scaled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TimeScale:
    """How many times faster than AWS the lab's Auto Scaling and alarms run (factor > 0)."""

    factor: float = 1.0

    def __post_init__(self) -> None:
        # A zero or negative factor would make every period infinite or negative: refuse early.
        if not self.factor > 0:
            raise ValueError(f"TimeScale factor must be > 0, not {self.factor!r}")

    def s(self, aws_seconds: float) -> float:
        """The lab's seconds for a duration of aws_seconds in AWS's time."""
        return aws_seconds / self.factor

    def aws(self, lab_seconds: float) -> float:
        """AWS's seconds for a duration of lab_seconds in the lab (the inverse of s)."""
        return lab_seconds * self.factor

    def describe(self) -> str:
        """One line for status and reports, e.g. "time scale 10x (AWS 60 s = lab 6 s)"."""
        if self.factor == 1.0:
            return "time scale 1x (AWS time)"
        return f"time scale {self.factor:g}x (AWS 60 s = lab {self.s(60):g} s)"
