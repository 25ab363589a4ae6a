"""The one error type users see. Anything raised as UserError becomes a single line and exit
status 2 in the CLI; everything else is a bug and exits 1."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: the message names the problem and how to fix it, on one line."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


def closest(name: str, valid: Iterable[str], n: int = 4) -> str:
    """'did you mean …' text for an unknown name, or the first few valid names."""
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=n, cutoff=0.5)
    if not close:
        close = [v for v in valid if name.lower() in v.lower()][:n]
    if close:
        return "did you mean " + ", ".join(close) + "?"
    shown = ", ".join(valid[:8]) + (", …" if len(valid) > 8 else "")
    return f"valid names: {shown}"
