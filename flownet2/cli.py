"""What the scripts share: the entry-point wrapper (library code raises Flownet2Error, the scripts print one
line and exit 2), the --precision flag, and the stand-in banner around a printed EPE."""
import sys

from .errors import Flownet2Error
from .model.provenance import STAND_IN_BANNER, is_stand_in


def run_main(main, argv=None):
    """Run `main(argv)`; turn Flownet2Error (and Ctrl-C) into one line on stderr and a non-zero exit."""
    try:
        code = main(argv)
    except Flownet2Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # unwritable folder, full disk...: the OS message names the file
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def add_precision(parser, **kwargs):
    """--precision, its choices the PyTorch backend's precisions."""
    from .runtime.torch_backend import PRECISIONS  # torch is imported only by a script that offers the flag

    parser.add_argument("--precision", choices=tuple(PRECISIONS), **kwargs)


def print_between_banners(lines, weights, *, more=()):
    """Print `lines` between the stand-in banner (when `weights` is a stand-in label) and the `more` banners:
    a stand-in or unverified EPE must never be read without its warning, whichever line a reader greps."""
    banner = ([STAND_IN_BANNER] if is_stand_in(weights) else []) + list(more)
    print("\n".join(banner + list(lines) + banner))
