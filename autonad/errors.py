"""User-facing errors.

Anything the user can fix (a missing file, a bad YAML key, an unknown name) raises
`AutoNADError` with one line that names the problem; the CLI prints it and exits 2
without a traceback. Programming errors stay ordinary exceptions.
"""


class AutoNADError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""

    exit_code = 2


def reason(error: BaseException, limit: int = 200, last: bool = False) -> str:
    """An exception as one short line for an `AutoNADError` message: its first non-empty line (or its
    last, for errors that wrap a traceback, like Ray's), else its type name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return error.__class__.__name__
    return (lines[-1] if last else lines[0])[:limit]


def user_message(error: BaseException) -> str:
    """The line to show for an `AutoNADError`, also when it crossed a process boundary: a DataLoader
    worker or a Ray task re-raises it with the remote traceback in its message, whose last line is
    the original one."""
    text = str(error)
    if "Traceback (most recent call last)" not in text:
        return text
    last = reason(error, limit=10_000, last=True)
    for prefix in ("autonad.errors.AutoNADError: ", "AutoNADError: "):
        last = last.removeprefix(prefix)
    return last


def os_error_message(error: OSError) -> str:
    """An operating-system error (an output path that is a file, a read-only folder, a full disk) as
    one line naming the path."""
    what = error.strerror or error.__class__.__name__
    return f"{error.filename}: {what}" if error.filename else what
