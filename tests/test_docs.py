"""The README and docs/ say only what runs.

Every relative link (and #anchor) between README.md and docs/*.md resolves; every fenced shell command
that runs a script of this repository names one that exists and passes only flags that script accepts
(read from its --help); Python examples import names that exist; and, run for real as written in a
temporary folder: the README's stage block on a two-pair synthetic Sintel (a tiny two-input ONNX model
stands in for the 650 MB export, ATC and ais_bench are the stand-ins of tests/standins), the README's
quick-start Flownet2_predict.py line on two 64x128 frames, and `bash scripts/run_all.sh --help`.
The whole run_all.sh chain with the real export runs in test_pipeline.py.
"""
import argparse
import functools
import importlib
import importlib.util
import os
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from flownet2.cli import other_spellings
from flownet2.data import flo
from flownet2.data.synthetic import make_synthetic_sintel
from tiny_export import tiny_model

REPO = Path(__file__).resolve().parents[1]
STANDINS = REPO / "tests" / "standins"
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README] + DOCS + [REPO / "demo" / "README.md"]
README_MAX_LINES = 200
SHELL_LANGS = {"bash", "sh", "shell"}
SEPARATORS = {"&&", "||", "|", ";", "<", ">", ">>", "2>", "2>&1"}


def fenced_blocks(path):
    """[(language, [lines])] of a markdown file's fenced code blocks."""
    blocks, lang, lines = [], None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and lang is None:
            lang, lines = fence.group(1).lower(), []
        elif fence:
            blocks.append((lang, lines))
            lang = None
        elif lang is not None:
            lines.append(line)
    assert lang is None, f"{path.name}: a fenced block is not closed"
    return blocks


def prose(path):
    """The text outside fenced blocks and inline code: where a markdown link is a link."""
    text = re.sub(r"^\s*```.*?^\s*```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return re.sub(r"``.*?``|`[^`\n]*`", "", text)


def slug(heading):
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces -> '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    seen, result = {}, set()
    for line in prose(path).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            result.add(base if n == 0 else f"{base}-{n}")
    return result


def command_lines(lines):
    """The shell lines of a fenced block, backslash continuations joined, blank and comment lines dropped."""
    for line in re.sub(r"\\\n\s*", " ", "\n".join(lines)).splitlines():
        if shlex.split(line, comments=True):
            yield line.strip()


def commands(path):
    """(line, argv) of each command in a page's shell blocks: lines split at && | ; and redirections,
    leading VAR=value assignments dropped."""
    for lang, lines in fenced_blocks(path):
        if lang in SHELL_LANGS:
            yield from block_commands(lines)


def block_commands(lines):
    """(line, argv) of each command of one shell block."""
    for line in command_lines(lines):
        current = []
        for word in shlex.split(line, comments=True) + [";"]:
            if word in SEPARATORS:
                while current and re.match(r"^[A-Za-z_]\w*=", current[0]):
                    current.pop(0)
                if current:
                    yield line, current
                current = []
            else:
                current.append(word)


def repo_cli(argv):
    """('script path' or 'module', args) for a command that runs a CLI of this repository (or
    ais_bench / onnxsim, whose commands the chain names), else None."""
    if argv[0] == "bash" and len(argv) > 1 and argv[1].endswith(".sh"):
        return argv[1], argv[2:]
    if argv[0] not in ("python", "python3") or len(argv) < 2:
        return None
    if argv[1] == "-m" and len(argv) > 2:
        module = argv[2]
        if module.split(".")[0] in ("flownet2", "ais_bench", "onnxsim"):
            return module, argv[3:]
        return None
    if argv[1].endswith(".py"):
        return argv[1], argv[2:]
    return None


def flags_used(args):
    return {a.split("=", 1)[0] for a in args if re.match(r"^--?[A-Za-z]", a)}


def _shell_help(script):
    """(returncode, flags) of a shell script's --help: every flag its help text names, and --help."""
    r = subprocess.run(["bash", str(REPO / script), "--help"], capture_output=True, text=True, cwd=REPO)
    return r.returncode, set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", r.stdout)) | {"-h", "--help"}


def _env(*, standins=False):
    env = dict(os.environ)
    paths = [str(REPO)] + ([str(STANDINS)] if standins else []) + [p for p in [env.get("PYTHONPATH")] if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if standins:
        env["PATH"] = f"{STANDINS}{os.pathsep}{env['PATH']}"
    return env


class _Parser(Exception):
    """Raised in place of parsing: carries the CLI's own argparse parser out of its main()."""


def _argparse_flags(cli):
    """Every spelling a Python CLI takes: its parser's option strings, and each with the other separator."""
    parser = _argparse_parser(cli)
    declared = set(parser._option_string_actions) if parser else set()
    return declared | {o for f in declared if f.startswith("--") for o in other_spellings(f)}


@functools.lru_cache(maxsize=None)
def _argparse_parser(cli):
    """A Python CLI's own parser; None for a script without one."""
    text = (REPO / cli).read_text(encoding="utf-8") if cli.endswith(".py") else ""
    if cli.endswith(".py") and "argparse" not in text and "flownet2.commands" not in text:
        return None  # takes no flags (and running it would run the benchmark)
    return _parse_call(cli, ["--help"])[0]


def _parse_call(cli, argv):
    """(parser, the words handed to it) when a Python CLI run with `argv` is about to parse: its own
    ArgumentParser taken from main() (in this process: no second interpreter, no torch import per CLI)."""
    def capture(parser, args=None, *rest, **kwargs):
        raise _Parser(parser, args)

    saved_argv, saved_path, saved_modules = sys.argv[:], sys.path[:], set(sys.modules)
    sys.path[:0] = [str(STANDINS)] if cli == "ais_bench" else [str((REPO / cli).parent)] if cli.endswith(".py") else []
    sys.argv = [cli, *argv]
    try:
        with mock.patch.object(argparse.ArgumentParser, "parse_args", capture), \
                mock.patch.object(argparse.ArgumentParser, "parse_known_args", capture):
            if cli.endswith(".py"):
                runpy.run_path(str(REPO / cli), run_name="__main__")
            else:
                with warnings.catch_warnings():  # the module is imported already: runpy warns, harmlessly
                    warnings.simplefilter("ignore", RuntimeWarning)
                    runpy.run_module(cli, run_name="__main__", alter_sys=False)
    except _Parser as found:
        return found.args
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        for name in set(sys.modules) - saved_modules:  # the stand-in ais_bench must not look installed later
            if name.split(".")[0] in ("ais_bench", "standin_atc"):
                del sys.modules[name]
    raise AssertionError(f"{cli}: no argparse parser reached")


def _flags(cli):
    """(returncode, flags) a CLI accepts."""
    if cli == "scripts/atc.sh":  # its own flags, and every ATC flag it passes on as typed
        sys.path.insert(0, str(STANDINS))
        try:
            atc_flags = {f"--{name}" for name in importlib.import_module("standin_atc").FLAGS}
        finally:
            sys.path.remove(str(STANDINS))
        code, own = _shell_help(cli)
        return code, own | atc_flags
    if cli == "benchmarks/gpu_check.sh":  # passes its arguments on to bench_gpu.py
        return _flags("benchmarks/bench_gpu.py")
    if cli.endswith(".sh"):
        return _shell_help(cli)
    return 0, _argparse_flags(cli)


def _doc_commands():
    """[(page, command line, cli, args)] of every repository CLI the README and docs run."""
    found = []
    for page in PAGES:
        for line, argv in commands(page):
            cli = repo_cli(argv)
            if cli:
                found.append((page.relative_to(REPO), line, *cli))
    return found


@pytest.fixture(scope="module")
def cli_flags():
    """{cli: (returncode, flags)} of every CLI the pages run."""
    clis = sorted({cli for _, _, cli, _ in _doc_commands()
                   if cli != "onnxsim" and (not cli.endswith((".py", ".sh")) or (REPO / cli).is_file())}
                  | {"scripts/run_all.sh"})
    return {cli: _flags(cli) for cli in clis}


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; at most {README_MAX_LINES} (detail goes to docs/)"


def test_every_link_resolves():
    broken, checked = [], 0
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(page)):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s), mailto: outside the repository
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            checked += 1
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(REPO)}: {target}: {dest.name} has no heading #{anchor}")
    assert checked > 20, f"only {checked} links found: the link pattern no longer matches the pages"
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_page_is_linked_from_the_index():
    index = prose(REPO / "docs" / "index.md")
    missing = [p.name for p in DOCS if p.name != "index.md" and f"]({p.name})" not in index]
    assert not missing, f"docs/index.md does not list: {missing}"


def test_commands_name_real_scripts_and_flags(cli_flags):
    found = _doc_commands()
    assert len(found) > 40, f"only {len(found)} commands found: the fenced-block parser no longer matches the pages"
    problems = []
    for page, line, cli, args in found:
        if cli == "onnxsim":
            if importlib.util.find_spec("onnxsim") is None:
                problems.append(f"{page}: {line}: onnxsim is not installed (requirements.txt)")
            continue
        if cli.endswith((".py", ".sh")) and not (REPO / cli).is_file():
            problems.append(f"{page}: {line}: {cli} does not exist")
            continue
        code, accepted = cli_flags[cli]
        if code != 0:
            problems.append(f"{page}: {line}: `{cli} --help` exits {code}")
            continue
        unknown = sorted(flags_used(args) - accepted)
        if unknown:
            problems.append(f"{page}: {line}: {cli} does not accept {', '.join(unknown)}")
    assert not problems, "\n".join(problems)


def test_readme_test_command_is_what_ci_runs():
    quick = [line for line, _ in commands(README) if "pytest" in line]
    assert quick == ["python -m pytest -q tests"]
    assert "python -m pytest -q tests" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_python_examples_import_what_exists():
    checked = 0
    for page in PAGES:
        for lang, lines in fenced_blocks(page):
            if lang != "python":
                continue
            for line in lines:
                m = (re.match(r"^\s*from (flownet2[\w.]*) import (.+)$", line)
                     or re.match(r"^\s*import (flownet2[\w.]*)\s*$", line))
                if not m:
                    continue
                module = importlib.import_module(m.group(1))
                names = [n.strip() for n in re.sub(r"#.*", "", m.group(2)).split(",")] if m.re.groups > 1 else []
                missing = [n for n in names if not hasattr(module, n)]
                assert not missing, f"{page.name}: {line.strip()}: {m.group(1)} has no {missing}"
                checked += 1
    assert checked >= 3


def _page_block(page, *needles):
    """(line, argv) of each command of the one shell block of `page` that contains every needle."""
    blocks = [lines for lang, lines in fenced_blocks(page) if lang in SHELL_LANGS
              and all(any(n in line for line in lines) for n in needles)]
    assert len(blocks) == 1, f"expected one {page.name} shell block with {needles}, found {len(blocks)}"
    return [(line, shlex.split(line, comments=True)) for line in command_lines(blocks[0])]


def _readme_block(*needles):
    return _page_block(README, *needles)


def _as_written(argv):
    """The command as typed, with this interpreter for `python` and this checkout for repository paths."""
    argv = list(argv)
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    if len(argv) > 1 and (REPO / argv[1]).is_file():
        argv[1] = str(REPO / argv[1])
    return argv


def _option(argv, flag):
    return argv[argv.index(flag) + 1]


def _as_in_a_clone(folder):
    """`folder` as the root of a fresh clone for commands that read the shipped demo frames."""
    (folder / "demo").symlink_to(REPO / "demo", target_is_directory=True)


def _start_predict(folder):
    """The README's quick-start Flownet2_predict.py line, started in `folder` on the shipped frames."""
    [(line, argv)] = [(l, a) for l, a in _readme_block("bash scripts/run_all.sh") if "Flownet2_predict.py" in a]
    _as_in_a_clone(folder)
    proc = subprocess.Popen(_as_written(argv), cwd=folder, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return line, argv, proc


def test_readme_commands_run_as_written(tmp_path):
    """The stage block (all but the export, replaced by a tiny model of the same contract) and the
    quick-start predict line (stand-in weights: builds FlowNet2 once, ~10 s) run side by side."""
    predict_dir = tmp_path / "predict"
    predict_dir.mkdir()
    predict_line, predict_argv, predict = _start_predict(predict_dir)

    try:
        work = tmp_path / "stages"
        work.mkdir()
        stages = _readme_block("Flownet2_preprocess.py", "fix_onnx.py")
        dataset = _option(stages[0][1], "--dataset")
        make_synthetic_sintel(work / Path(dataset).parent, scenes=1, pairs=2, height=64, width=128, seed=0)
        outputs = {}
        for line, argv in stages:
            if "Flownet2_pth2onnx.py" in argv[1]:
                tiny_model(work / _option(argv, "--out_path"), batch=int(_option(argv, "--batch_size")),
                            height=64, width=128)
                continue
            r = subprocess.run(_as_written(argv), cwd=work, env=_env(standins=True), capture_output=True,
                               text=True, timeout=300)
            assert r.returncode == 0, f"README: {line}\nexit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
            outputs[line] = r.stdout + r.stderr
        post = next(out for line, out in outputs.items() if "Flownet2_postprocess.py" in line)
        assert re.search(r"^2 samples, Average EPE = \d+\.\d+$", post, re.M), post
        assert re.search(r"throughput 1000\*batchsize\.mean\(1\)/NPU_compute_time\.mean\(", outputs[stages[-1][0]])
        assert (work / "flownet2_bs1.om").is_file()
        preds = sorted((work / "result" / "bs1").glob("*_0.bin"))
        assert [p.stat().st_size for p in preds] == [2 * 64 * 128 * 4] * 2  # (1, 2, H, W) float32 per batch
        out, _ = predict.communicate(timeout=300)
    finally:
        if predict.poll() is None:  # a stage failed first: stop the predict run too
            predict.kill()
            predict.communicate()
    assert predict.returncode == 0, f"README: {predict_line}\nexit {predict.returncode}\n{out[-3000:]}"
    folder = predict_dir / _option(predict_argv, "--output")
    frames = sorted((REPO / _option(predict_argv, "--input")).iterdir())
    assert sorted(p.name for p in folder.glob("*.flo")) == [f"{p.stem}.flo" for p in frames[:-1]]  # one per pair
    for first in frames[:-1]:
        assert flo.read_flo(str(folder / f"{first.stem}.flo")).shape == Image.open(first).size[::-1] + (2,)
        assert (folder / f"{first.stem}.png").is_file()


def test_run_all_help(cli_flags):
    code, flags = cli_flags["scripts/run_all.sh"]
    assert code == 0 and {"--dataset", "--checkpoint", "--batch-size", "--backend", "--emulate"} <= flags


def test_stages_page_lists_every_run_all_flag(cli_flags):
    """stages.md's run_all.sh table names every flag of `run_all.sh --help` (help, --bs aside)."""
    page = REPO / "docs" / "stages.md"
    [rows] = [rows for clis, rows in _sections(page) if "scripts/run_all.sh" in clis and rows]
    named = {flag for row in rows for flag in re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", row.split("|")[1])}
    script = (REPO / "flownet2" / "commands" / "run_all.sh").read_text(encoding="utf-8")
    [valued] = re.findall(r"^\s+(--dataset\|[-\w|]+)\)", script, re.M)  # the flags its loop takes a value for
    flags = set(valued.split("|")) | set(re.findall(r"^\s+(--\w[\w-]*)\) \w+=1; shift", script, re.M))
    missing = sorted(flags - named)
    assert not missing, f"stages.md's run_all.sh table lacks {missing}"


DATASETS = REPO / "docs" / "datasets.md"


def _inline_command(page, prefix):
    """argv of the one inline `command` of a page's prose that starts with `prefix`."""
    found = [c for c in re.findall(r"`([^`\n]+)`", page.read_text(encoding="utf-8")) if c.startswith(prefix)]
    assert len(found) == 1, f"{page.name}: expected one inline `{prefix} ...`, found {found}"
    return shlex.split(found[0])


def _run(argv, cwd, *, env=None, line=""):
    r = subprocess.run(_as_written(argv), cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{line or argv}\nexit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def kitti_block(tmp_path_factory):
    """datasets.md's KITTI 2015 stage-by-stage block, run as written on the synthetic KITTI set its
    prose makes (the export replaced by a tiny model of the same shapes): (work folder, {line: output})."""
    work = tmp_path_factory.mktemp("kitti")
    _run(_inline_command(DATASETS, "python -m flownet2.data.synthetic --layout kitti2015"), work)
    outputs = {}
    for line, argv in _page_block(DATASETS, "Flownet2_preprocess.py --dataset data_scene_flow"):
        if "Flownet2_pth2onnx.py" in argv[1]:
            tiny_model(work / _option(argv, "--out_path"), batch=int(_option(argv, "--batch_size")),
                       height=int(_option(argv, "--height")), width=int(_option(argv, "--width")))
            continue
        outputs[line] = _run(argv, work, line=f"datasets.md: {line}")
    return work, outputs


def test_kitti_block_runs_as_written(kitti_block):
    work, outputs = kitti_block
    post = next(out for line, out in outputs.items() if "Flownet2_postprocess.py" in line)
    assert re.search(r"^2 samples, Average EPE = \d+\.\d+, Fl-all = [\d.]+%", post, re.M), post
    assert [p.stat().st_size for p in sorted((work / "prep_kitti15" / "image1").iterdir())] == [3 * 384 * 1280 * 4] * 2


def test_a_sintel_sized_model_on_kitti_batches_names_the_export_that_fits(kitti_block, tmp_path):
    """The export's default size (448x1024) on the 384x1280 KITTI batches: refused, naming both fixes."""
    work, _ = kitti_block
    tiny_model(tmp_path / "sintel_size.onnx", batch=1, height=448, width=1024)
    r = subprocess.run([sys.executable, "-m", "flownet2.infer", "--model", str(tmp_path / "sintel_size.onnx"),
                        "--input", "prep_kitti15/image1,prep_kitti15/image2", "--output", str(tmp_path / "result")],
                       cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--height 384 --width 1280" in r.stderr and "--size 448x1024" in r.stderr, r.stderr
    assert not list((tmp_path / "result").rglob("*.bin"))


def test_run_all_synthetic_kitti_runs_as_written(tmp_path):
    """datasets.md's `run_all.sh --synthetic kitti2015` line, as written, in an empty folder; a Python
    wrapper puts the tiny model in the export's place (the real export runs in test_pipeline.py)."""
    [(line, argv)] = [(l, a) for l, a in _page_block(DATASETS, "bash scripts/run_all.sh --synthetic kitti2015")
                      if "--synthetic" in a]
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/usr/bin/env bash\ncase "$1 $2" in "-m flownet2.commands.pth2onnx") shift 2; exec '
                       f'{shlex.quote(sys.executable)} {shlex.quote(str(REPO / "tests" / "tiny_export.py"))} "$@" ;; '
                       f'esac\nexec {shlex.quote(sys.executable)} "$@"\n')
    wrapper.chmod(0o755)
    out = _run(argv, tmp_path, env=dict(_env(), PYTHON=str(wrapper)), line=f"datasets.md: {line}")
    assert re.search(r"^\d+ samples, Average EPE = \d+\.\d+, Fl-all = [\d.]+%", out, re.M), out[-3000:]
    size = _option(argv, "--size").split("x")
    model = onnx.load(tmp_path / "flownet2_work" / "flownet2_bs1_sim_fix.onnx")
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, *map(int, size)]


def _sections(page):
    """[(CLIs the section's shell blocks run, [flag-table rows])] per heading of a page."""
    sections, lang, lines = [(set(), [])], None, []
    for line in page.read_text(encoding="utf-8").splitlines():
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and lang is None:
            lang, lines = fence.group(1).lower(), []
        elif fence:
            if lang in SHELL_LANGS:
                sections[-1][0].update(cli[0] for _, argv in block_commands(lines) if (cli := repo_cli(argv)))
            lang = None
        elif lang is not None:
            lines.append(line)
        elif re.match(r"^#{1,6}\s", line):
            sections.append((set(), []))
        elif line.startswith("|") and line.split("|")[1].strip().startswith("`-"):
            sections[-1][1].append(line)
    return sections


def _stated_default(text):
    """The value a table row's meaning states as the default ("default 1", "(default `pad`, ...)")."""
    found = re.search(r"\bdefault:?\s+`?([\w.,+-]+?)`?(?=[\s,;)]|$)", text)
    return found.group(1) if found else None


def _default_problem(action, stated):
    """None when the parser's default is the one stated, else what differs."""
    default = action.default
    if default in (None, "") or isinstance(default, bool):  # worked out at run time: the help says how
        said = re.search(rf"(?<![\w-]){re.escape(stated)}\b[^;]*\(default\)|default:? `?{re.escape(stated)}\b",
                         action.help or "")
        if action.choices and stated in action.choices and not said:
            return f"the page says default {stated}, the parser has none and its help does not say so"
        return None
    if isinstance(default, (tuple, list)):
        forms = {",".join(map(str, default)), "x".join(map(str, default))}
    elif isinstance(default, float) and default.is_integer():
        forms = {str(default), str(int(default))}
    else:
        forms = {str(default)}
    return None if stated in forms else f"the page says default {stated}, the parser's is {default!r}"


def test_every_flag_in_a_table_exists_with_the_default_stated(cli_flags):
    """Every `--flag` of a flag table is accepted by a CLI the same section (or page) runs, and a default
    the row states is the parser's own (Python CLIs; the shell scripts' flags are read from --help)."""
    problems, checked = [], 0
    for page in PAGES:
        sections = _sections(page)
        page_clis = set().union(*(clis for clis, _ in sections))
        for clis, rows in sections:
            candidates = sorted(c for c in (clis or page_clis) if c in cli_flags)
            for row in rows:
                cells = row.split("|")
                flags = re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", cells[1])
                for flag in flags:
                    checked += 1
                    owners = [c for c in candidates if flag in cli_flags[c][1]]
                    if not owners:
                        problems.append(f"{page.name}: {flag}: not a flag of {', '.join(candidates) or 'any CLI here'}")
                        continue
                    stated = _stated_default("|".join(cells[2:]))
                    parsers = [_argparse_parser(c) for c in owners if not c.endswith(".sh")]
                    if len(flags) != 1 or stated is None or not any(parsers):
                        continue
                    found = [_default_problem(p._option_string_actions[flag], stated) for p in parsers if p]
                    if all(found):
                        problems.append(f"{page.name}: {flag}: {found[0]}")
    assert checked > 60, f"only {checked} table flags found: the table pattern no longer matches the pages"
    assert not problems, "\n".join(problems)


def test_every_multi_word_flag_takes_both_separators(cli_flags):
    """Each Python CLI the pages run hands its parser --batch_size when typed --batch-size, and the other
    way round, for every multi-word flag its parser declares (flags added later too: read from the parser)."""
    swap = str.maketrans("-_", "_-")
    problems, checked = [], 0
    for cli in cli_flags:
        parser = None if cli.endswith(".sh") or cli == "ais_bench" else _argparse_parser(cli)  # ais_bench: Huawei's
        declared = [f for f in (parser._option_string_actions if parser else ()) if re.match(r"^--\w+[-_]\w", f)]
        pairs = [(f, f[:2] + f[2:].translate(swap)) for f in declared if f[:2] + f[2:].translate(swap) not in declared]
        if not pairs:
            continue
        checked += len(pairs)
        _, handed = _parse_call(cli, [typed for _, typed in pairs])
        if handed is None:  # argparse read sys.argv itself
            problems.append(f"{cli}: parses without flownet2.cli.parse")
            continue
        problems += [f"{cli}: {typed} reached the parser as {got}, not {flag}"
                     for (flag, typed), got in zip(pairs, handed) if got != flag]
    assert checked > 30 and not problems, "\n".join(problems)


def test_pages_spell_each_flag_one_way():
    """A page's command spells a flag as its CLI declares it (the guide's and ais_bench's underscores for
    their flags, hyphens for the toolkit's own), never by the other separator the parser also takes."""
    problems = []
    for page, line, cli, args in _doc_commands():
        parser = _argparse_parser(cli) if cli.endswith(".py") or cli.startswith("flownet2") else None
        if parser is None:
            continue
        declared = set(parser._option_string_actions)
        for flag in sorted(flags_used(args) - declared):
            problems.append(f"{page}: {line}: {flag} is not spelled as {cli} declares it")
    assert not problems, "\n".join(problems)


def _needs_only_the_repository(cli, args):
    """A page's command that runs on what a fresh clone holds: the stand-in weights on the shipped
    frames, or a synthetic set."""
    if cli == "Flownet2_predict.py" and "--input" in args and "--model" in args:
        inputs = args[args.index("--input") + 1:]
        inputs = inputs[:next((i for i, a in enumerate(inputs) if a.startswith("-")), len(inputs))]
        return _option(args, "--model").startswith("stand-in:") and all(a.startswith("demo/") for a in inputs)
    return cli == "flownet2.data.synthetic"


def test_every_self_contained_command_runs_as_written(tmp_path):
    """Every fenced predict or synthetic-set command that needs only the repository, once per distinct
    line, side by side, each in a folder of its own laid out as a fresh clone (the README's quick-start
    line runs in test_readme_commands_run_as_written)."""
    quick = {line for line, _ in _readme_block("bash scripts/run_all.sh")}
    lines = sorted({(line, cli) for _, line, cli, args in _doc_commands()
                    if line not in quick and _needs_only_the_repository(cli, args)})
    assert lines, "no self-contained command found: the predicate no longer matches the pages"
    runs = []
    for n, (line, _) in enumerate(lines):
        folder = tmp_path / str(n)
        folder.mkdir()
        _as_in_a_clone(folder)
        runs.append((line, folder, subprocess.Popen(_as_written(shlex.split(line)), cwd=folder, env=_env(),
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for line, folder, proc in runs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{line}\nexit {proc.returncode}\n{out[-3000:]}"
