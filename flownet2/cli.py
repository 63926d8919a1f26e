"""Shared entry-point wrapper: library code raises Flownet2Error, the scripts print one line and exit 2
(3 when the output folder is at fault: full, read-only, not permitted)."""
import sys

from .errors import Flownet2Error


def run_main(main, argv=None):
    """Run `main(argv)`; turn Flownet2Error (and Ctrl-C) into one line on stderr and a non-zero exit."""
    try:
        code = main(argv)
    except Flownet2Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))  # 3: the output folder's fault (errors.OutputError)
    except OSError as e:  # unwritable folder, full disk...: the OS message names the file
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
