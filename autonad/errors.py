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
