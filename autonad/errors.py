"""User-facing errors.

Anything the user can fix (a missing file, a bad YAML key, an unknown name) raises
`AutoNADError` with one line that names the problem; the CLI prints it and exits 2
without a traceback. Programming errors stay ordinary exceptions.
"""


class AutoNADError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""

    exit_code = 2
