"""Progress with an ETA, for anything done in counted units (frames of a render, cells of an
atlas)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable


class Progress:
    """Progress with an ETA: a live bar on a terminal; in a log (stderr redirected, nohup, CI)
    a plain line after the first unit and then every `every` seconds, so a long job visibly
    lives. ZOOMDREAM_LOG_SECONDS sets `every`."""

    def __init__(self, total: int, done: int, log: Callable[[str], None], tty: bool | None = None,
                 unit: str = "frame"):
        self.total, self.first, self.log, self.unit = total, done, log, unit
        try:
            self.every = float(os.environ.get("ZOOMDREAM_LOG_SECONDS", "10"))
        except ValueError:
            self.every = 10.0
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty() if tty is None else tty:
            # rich loads only for a bar (71 ms): a render into a log, a child job or a test needs none.
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("[bold]dreaming"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                           TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self.bar.add_task(unit, total=total, completed=done, rate="")
            self.bar.start()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        per_frame = (now - self.t0) / max(done - self.first, 1)
        per = f"{self.unit[0]}ps" if self.unit == "frame" else f"{self.unit}s/s"
        rate = f"{1 / per_frame:.2f} {per}" if per_frame <= 1 else f"{per_frame:.1f} s/{self.unit}"
        if self.bar is not None:
            self.bar.update(self.bar.task_ids[0], completed=done, rate=rate)
        elif done == self.first + 1 or now - self.last >= self.every or done == self.total:
            self.last = now
            eta = _duration(per_frame * (self.total - done))
            self.log(f"{self.unit} {done}/{self.total} ({100 * done // self.total}%), {per_frame:.2f} s/{self.unit}, "
                     f"ETA {eta}")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
