"""The one error type the command-line scripts turn into a single clear line."""


class Flownet2Error(Exception):
    """Bad input or environment: the message names the file and the problem (no traceback shown)."""
