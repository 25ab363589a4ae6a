"""The ground floor, imported by every layer above and importing none: the one error type
users see (errors), every setting declared once with its range and help (settings), the
checks on every path a user gives (paths), and progress with an ETA (progress). No torch, so
a bad flag or path is refused in a blink."""
