"""flownet2.cli.parse: every multi-word flag with either separator, abbreviations kept."""
import argparse

import pytest

from flownet2.cli import parse


def parser():
    p = argparse.ArgumentParser()
    p.add_argument("--batch_size", type=int, default=1)   # the guide's spelling
    p.add_argument("--size-mode", default="pad")           # the toolkit's
    p.add_argument("--warmup_count", type=int, default=1)
    p.add_argument("--output")
    p.add_argument("rest", nargs="*")
    return p


@pytest.mark.parametrize("argv, expected", [
    (["--batch-size", "3", "--size_mode", "resize"], {"batch_size": 3, "size_mode": "resize"}),
    (["--batch_size=4", "--size-mode=resize"], {"batch_size": 4, "size_mode": "resize"}),
    (["--warmup", "2"], {"warmup_count": 2}),                   # an abbreviation stays unambiguous
    (["--warmup-c", "5", "--batch-s", "6"], {"warmup_count": 5, "batch_size": 6}),
    (["--output=--batch-size"], {"output": "--batch-size", "batch_size": 1}),  # a value is left alone
    (["--", "--batch-size"], {"rest": ["--batch-size"], "batch_size": 1}),  # after --, every word is a value
])
def test_either_separator_reaches_the_declared_flag(argv, expected):
    args = vars(parse(parser(), argv))
    assert {k: args[k] for k in expected} == expected


@pytest.mark.parametrize("text", ["0", "-2", "1.5", "two", ""])
def test_count_flags_refuse_anything_but_a_whole_number_of_at_least_one(text):
    import argparse

    from flownet2.cli import at_least_one

    with pytest.raises(argparse.ArgumentTypeError, match="not a whole number of at least 1"):
        at_least_one(text)
    assert at_least_one("3") == 3 and at_least_one(" 12 ") == 12
