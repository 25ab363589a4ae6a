"""How a render stops: SIGINT and SIGTERM finish the frame in progress and then stop the loop,
a second Ctrl-C drops that frame; whatever stops it, the error that ends a render still says
where its finished frames are."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

from ..base.errors import UserError, out_of_memory


class Stop:
    """SIGINT/SIGTERM ask the loop to stop after the frame in progress; a second Ctrl-C stops
    at once (the unfinished frame is dropped, the finished ones are still saved). Once the
    loop has stopped, further signals are ignored until the video is joined."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self.hard = True  # whether a second signal drops the frame in progress
        self._old: dict[int, object] = {}

    def __enter__(self) -> Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: the caller handles signals
                pass
        # Past a file-size limit the kernel kills the writer with SIGXFSZ. Ignored (which the
        # ffmpeg children inherit), the write fails with EFBIG instead and is reported like a
        # full disk, with the finished frames kept.
        if hasattr(signal, "SIGXFSZ"):
            try:
                self._old[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            except ValueError:
                pass
        return self

    @contextlib.contextmanager
    def soft(self) -> Iterator[None]:
        """While inside, a second signal only asks again (it does not interrupt)."""
        self.hard = False
        try:
            yield
        finally:
            self.hard = True

    def _handle(self, signum, frame) -> None:
        if self.requested and self.hard:
            raise KeyboardInterrupt
        self.requested = self.requested or signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


def with_salvage(error: BaseException, where: str, log: Callable[[str], None]) -> BaseException:
    """The error, telling also where the finished frames are, still on one line."""
    error = out_of_memory(error) or error
    if isinstance(error, UserError):
        return UserError(f"{error.problem}; {where}", error.fix)
    if isinstance(error, FloatingPointError):
        return FloatingPointError(f"{error}; {where}")
    log(f"zoomdream: stopped by an error; {where}")
    return error
