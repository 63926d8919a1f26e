"""The one error type the command-line scripts turn into a single clear line."""


class Flownet2Error(Exception):
    """Bad input or environment: the message names the file and the problem (no traceback shown)."""


class OutputError(Flownet2Error):
    """The output folder cannot take the files (full, over quota, read-only, not permitted): no input's
    fault, so a run stops whole, with its own exit code, and resumes once the cause is fixed."""

    exit_code = 3
