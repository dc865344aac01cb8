"""The architecture's rules, checked: stages never import each other, light modules stay light, no module
does work at import time, and the README's two commands are what CI runs."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from conftest import REPO

STAGES = ("tracking", "manipulation", "rendering", "compositing", "occlusion")


def _imports(path) -> set[str]:
    """Every module name a file imports, relative imports resolved to absolute ones (``from ...x import y``
    in ``ned_fx/a/b/c.py`` is ``ned_fx.x`` and ``ned_fx.x.y``), at any depth in the file."""
    tree = ast.parse(path.read_text())
    package = list(path.relative_to(REPO).with_suffix("").parts[:-1])      # the file's package
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join(parent + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def test_relative_imports_are_resolved(tmp_path):
    """The check sees nested relative imports for what they are."""
    sub = REPO / "ned_fx" / "rendering" / "mouth"
    fake = sub / "_layering_probe.py"
    code = "def f():\n    from ...compositing import Compositor\n    from .. import mesh\n    from . import x\n"
    names = _imports_of_text(code, fake)
    assert "ned_fx.compositing" in names and "ned_fx.compositing.Compositor" in names
    assert "ned_fx.rendering.mesh" in names and "ned_fx.rendering.mouth.x" in names


def _imports_of_text(code: str, path):
    class _Fake:
        def __init__(self, p):
            self.p = p

        def read_text(self):
            return code

        def relative_to(self, root):
            return self.p.relative_to(root)

    return _imports(_Fake(path))


@pytest.mark.parametrize("stage", STAGES)
def test_stages_do_not_import_each_other(stage):
    folder = REPO / "ned_fx" / stage
    if not folder.is_dir():
        pytest.skip(f"stage {stage} not built yet")
    others = [s for s in STAGES if s != stage]
    for py in folder.rglob("*.py"):
        for name in _imports(py):
            for other in others:
                assert name != f"ned_fx.{other}" and not name.startswith(f"ned_fx.{other}."), \
                    f"{py.relative_to(REPO)} imports {name}"


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["ned_fx", "ned_fx.errors", "ned_fx.media", "ned_fx.topology",
                                    "ned_fx.tracking", "ned_fx.cli", "ned_fx.protocol", "ned_fx.client",
                                    "ned_fx.hosts.params", "ned_fx.hosts.link", "ned_fx.hosts.analysis",
                                    "ned_fx.hosts.frames", "ned_fx.hosts.resolve", "ned_fx.provenance",
                                    "ned_fx.manipulation", "ned_fx.manipulation.rule",
                                    "ned_fx.rendering.geometry_renderer", "ned_fx.rendering.field",
                                    "ned_fx.pipeline", "ned_fx.appearance", "ned_fx.tracking.tracker",
                                    "ned_fx.tracking.ort", "ned_fx.tracking.geometry", "ned_fx.filters"])
def test_light_modules_do_not_load_torch(module):
    loaded = _modules_loaded_by(f"import {module}")
    assert "torch" not in loaded, f"import {module} loaded torch"


def test_every_module_imports_without_side_effects(tmp_path):
    """Importing every module writes nothing and starts nothing (run in an empty working folder)."""
    mods = sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                  for p in (REPO / "ned_fx").rglob("*.py"))
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    result = subprocess.run([sys.executable, "-c", code, *mods], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(REPO), "NED_FX_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == [], "importing must not write files"


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text().splitlines()
    blocks = [line.strip() for line in readme[:40] if line.strip().startswith("install/setup.sh")]
    assert len(blocks) >= 2, "the README opens with the main-job command and the test command"
    main_cmd, test_cmd = blocks[0], blocks[1]
    assert ".venv/bin/ned-fx" in main_cmd and "pytest" in test_cmd
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci == [test_cmd], ".ci/run must run exactly the README's test command"
