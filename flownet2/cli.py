"""What the scripts share: the entry-point wrapper (library code raises Flownet2Error, the scripts print one
line and exit 2; 3 when the output folder is at fault: full, read-only, not permitted), the --precision
flag, the stand-in banner around a printed EPE, and both spellings of every multi-word flag."""
import argparse
import sys

from .errors import Flownet2Error
from .precisions import PRECISIONS
from .model.provenance import STAND_IN_BANNER, is_stand_in


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


def command(main):
    """A console script's entry point (pyproject.toml) for `main`: run_main(main) with sys.argv."""
    return lambda: run_main(main)


def at_least_one(text):
    """argparse type of every count flag (a batch size, a step, workers, loops): a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number of at least 1")
    return value


def auto_or_at_least_one(text):
    """argparse type of a count whose default the engine picks: "auto" or a whole number >= 1."""
    return "auto" if text == "auto" else at_least_one(text)


def add_precision(parser, **kwargs):
    """--precision, its choices every engine's precisions (flownet2/precisions.py)."""
    parser.add_argument("--precision", choices=PRECISIONS, **kwargs)


def print_between_banners(lines, weights, *, more=()):
    """Print `lines` between the stand-in banner (when `weights` is a stand-in label) and the `more` banners:
    a stand-in or unverified EPE must never be read without its warning, whichever line a reader greps."""
    banner = ([STAND_IN_BANNER] if is_stand_in(weights) else []) + list(more)
    print("\n".join(banner + list(lines) + banner))


def other_spellings(option):
    """The spellings of a long option with the other separator: --batch_size -> --batch-size."""
    body = option[2:]
    return {"--" + body.replace("_", "-"), "--" + body.replace("-", "_")} - {option}


def declared_spelling(parser, arg):
    """`arg` with its flag spelled as the parser declares it: --batch-size -> --batch_size.

    The Ascend guide and ais_bench spell with underscores, our own flags with hyphens; a user who types
    the other one should not be refused. Rewriting the argument instead of adding aliases to the parser
    keeps --help to one spelling per flag and keeps abbreviations unambiguous (--warmup alone would
    otherwise match --warmup_count and --warmup-count)."""
    if not isinstance(arg, str) or not arg.startswith("--") or len(arg) == 2:
        return arg
    name, eq, value = arg.partition("=")
    declared = parser._option_string_actions
    if any(option.startswith(name) for option in declared):
        return arg
    for other in other_spellings(name):
        if any(option.startswith(other) for option in declared):
            return other + eq + value
    return arg


def parse(parser, argv=None):
    """parse_args, taking every multi-word flag with either separator (declared_spelling)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    end = argv.index("--") if "--" in argv else len(argv)  # after "--" every word is a value
    return parser.parse_args([declared_spelling(parser, a) for a in argv[:end]] + argv[end:])
