"""The package's layers import only downwards: physics <- learned <- column <- (io) <- solvers
<- train <- applications <- command line. A learned law never imports a solver, a reader or
writer never runs a model. Checked on the source of every module, imports inside functions
included."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hybridland"

LAYERS = [
    {"units", "_custom_types", "_containers", "_params", "_random", "metrics"},
    {"physics"},
    {"learned"},
    {"column"},
    {"io"},
    {"solvers"},
    {"train"},
    {"calibrate", "emulator", "synthetic", "demo", "study"},
    {"cli", "emulator_cli", "__init__"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _top(path: Path) -> str:
    """The package member a module belongs to (``physics`` for physics/snow.py...)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported(path: Path) -> set[str]:
    """Top-level package members imported by a module (relative or absolute imports)."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts) - 1  # folders below the package
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's folder
                base = list(path.relative_to(PACKAGE).parts[:-1])
                up = node.level - 1
                if up > depth:
                    continue
                base = base[: len(base) - up] if up else base
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    found.add(target[0])
                else:  # "from . import x" at the package root
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "hybridland":
                parts = node.module.split(".")
                if len(parts) > 1:
                    found.add(parts[1])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "hybridland" and len(parts) > 1:
                    found.add(parts[1])
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_package_member_has_a_layer():
    members = {_top(p) for p in MODULES}
    assert members <= set(LAYER), sorted(members - set(LAYER))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    own = LAYER[_top(path)]
    upward = sorted(m for m in _imported(path) if m in LAYER and LAYER[m] > own)
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {own}) imports {upward} from above"


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The check can fail: a learned law importing a solver is caught."""
    fake = PACKAGE / "learned" / "networks.py"
    source = fake.read_text() + "\n\ndef _bad():\n    from ..solvers import simulate\n"
    copy = tmp_path / "hybridland" / "learned" / "networks.py"
    copy.parent.mkdir(parents=True)
    copy.write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "hybridland")
    assert "solvers" in _imported(copy)
