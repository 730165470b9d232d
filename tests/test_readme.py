"""The README's examples run as written: every command of its ``bash`` blocks (from the
repository root, the data in ``../shared/data``) and its Python blocks.

Commands run in this process on small settings where the command allows it: ``--basins`` and a
short period for ``simulate``, ``evaluate``; the YAML a ``train`` or ``calibrate`` command names
is loaded as written (so it is valid) and then run shrunk to a few basins and steps; ``emulate
train`` gets a few steps. The climate-shift study's configuration is loaded and its command
parsed; running the study (minutes even with ``--quick``) is ``test_study.py``'s job. The setup
block (``make demo``, ``make test``) is checked to be unchanged; the demo itself runs in
``test_cli.py`` and ``make test`` is this suite.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import warnings
from pathlib import Path

import pytest
import yaml

from hybridland.cli import build_parser, main
from hybridland.io._report import DataAdjustmentWarning
from hybridland.io.paths import data_dir
from hybridland.train.config import read_with_base
from runs import BASINS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SETUP = ["make demo", "make test"]
DAYS = ("1995-01-01", "1996-12-31")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def steps(block: str) -> list[tuple[str, object]]:
    """``("file", (name, text))`` for a ``cat > NAME <<'EOF'`` here-document and ``("run",
    tokens)`` for a command (continuation lines joined, comments dropped)."""
    out, lines = [], iter(block.splitlines())
    for line in lines:
        heredoc = re.match(r"^cat > (\S+) <<'?(\w+)'?$", line.strip())
        if heredoc:
            name, end = heredoc.groups()
            body = []
            for text in lines:
                if text == end:
                    break
                body.append(text)
            out.append(("file", (name, "\n".join(body) + "\n")))
            continue
        while line.endswith("\\"):
            line = line[:-1] + next(lines)
        tokens = shlex.split(line, comments=True)
        if tokens:
            out.append(("run", tokens))
    return out


def _with(argv: list[str], option: str, *values: str) -> list[str]:
    return argv if option in argv else [*argv, option, *values]


def _shrunk_yaml(path: Path, name: str, change) -> str:
    raw = read_with_base(path)  # the copy lies elsewhere: its base is merged in
    change(raw)
    small = Path.cwd() / name  # beside the commands, never in the repository
    small.write_text(yaml.safe_dump(raw))
    return str(small)


def _tiny_training(raw: dict) -> None:
    data = raw["data"]
    for key in ("n_basins", "aridity_range"):
        data.pop(key, None)
    data["basins"] = BASINS
    raw["training"].update(epochs=1, batches_per_epoch=1, batch_basins=3, window_days=90,
                           patience=None)


def _tiny_calibration(raw: dict) -> None:
    raw["data"].pop("n_basins", None)
    raw["data"]["basins"] = BASINS
    raw["calibration"].update(starts=1, steps=2)


def small(argv: list[str]) -> list[str]:
    """``argv`` (without ``hybridland``) on small settings; configurations are validated as
    written first."""
    command = argv[0]
    value = dict(zip(argv, argv[1:]))
    if command in ("simulate", "evaluate"):
        argv = _with(argv, "--basins", ",".join(BASINS))
        if command == "simulate" and "--run-dir" not in argv:
            argv = _with(_with(argv, "--start", DAYS[0]), "--end", DAYS[1])
    elif command == "train":
        from hybridland.train import load_config

        load_config(value["--config"])
        tiny = _shrunk_yaml(Path(value["--config"]), "readme_tiny.yaml", _tiny_training)
        argv = [tiny if a == value["--config"] else a for a in argv] + ["--no-progress"]
    elif command == "calibrate":
        from hybridland.calibrate import load_calibration_config

        load_calibration_config(value["--config"])
        tiny = _shrunk_yaml(Path(value["--config"]), "readme_tiny.yaml", _tiny_calibration)
        argv = [tiny if a == value["--config"] else a for a in argv] + ["--no-progress"]
    elif argv[:2] == ["emulate", "train"]:
        for option, n in (("--steps", "2"), ("--columns", "2"), ("--days", "60"),
                          ("--window-days", "20"), ("--batch", "2")):
            argv = _with(argv, option, n)
        argv = _with(argv, "--quiet")
    return argv


@pytest.fixture
def repo(tmp_path, monkeypatch, mopex_file):
    """A folder laid out like the repository root, with ``../shared/data`` beside it."""
    work = tmp_path / "hybridland"
    work.mkdir()
    (work / "experiments").symlink_to(ROOT / "experiments")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(data_dir())
    monkeypatch.chdir(work)
    return work


def test_setup_commands_are_unchanged():
    assert [" ".join(tokens) for kind, tokens in steps(blocks("bash")[0])] == SETUP


def test_readme_commands_run_as_written(repo):
    experiments = sorted((ROOT / "experiments").rglob("*"))
    commands = [s for block in blocks("bash")[1:] for s in steps(block)]
    ran = []
    for kind, payload in commands:
        if kind == "file":
            name, text = payload
            (repo / name).write_text(text)
            continue
        assert payload[0] == "hybridland", payload
        argv = payload[1:]
        if argv[:2] == ["study", "climate-shift"]:
            from hybridland.study.config import load_study

            args = build_parser().parse_args(argv)
            load_study(args.config)  # runs in test_study.py (minutes)
            ran.append("study (configuration loaded)")
            continue
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", DataAdjustmentWarning)
            status = main(small(argv))
        assert status == 0, (argv, err.getvalue()[-2000:])
        ran.append(" ".join(argv[:2]))
    assert len(ran) >= 8, ran  # simulate, train, evaluate, simulate, calibrate, emulate, ...
    for name in ("out.nc", "metrics.csv", "sim.nc", "params.nc", "emulator/emulator.eqx",
                 "runs/mopex-hybrid/model.eqx"):
        assert (repo / name).is_file(), name
    assert sorted((ROOT / "experiments").rglob("*")) == experiments  # nothing written there


def test_readme_simulate_as_written_repairs_and_reports(repo, capsys):
    """The README's first command on the whole shared file stops on nothing: it drops and
    swaps (reported), and --strict refuses the same file."""
    line = next(tokens for kind, tokens in steps(blocks("bash")[1]) if kind == "run")
    argv = [*line[1:], "--start", "1948-01-01", "--end", "1948-03-31"]  # all basins, 3 months
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "dropped" in printed and "swapped" in printed and "--strict" in printed
    assert main([*argv, "--strict"]) == 2
    assert "missing" in capsys.readouterr().err


def test_readme_python_runs(repo, capsys):
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataAdjustmentWarning)  # the swaps it reports
        for code in blocks("python"):
            exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - README's code
    assert float(namespace["sim"].max_abs_water_residual) < 1e-3
    assert float(namespace["hl"].simulate(namespace["flax_hybrid"],
                                          namespace["forcing"]).max_abs_water_residual) < 1e-3
