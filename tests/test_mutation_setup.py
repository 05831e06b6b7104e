"""`mutmut run` tests a copy of the app in mutants/: the copy must hold every module."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
NOT_IMPORTED_BY_TESTS = {"populate_db.py"}


def test_mutation_testing_copies_every_module_of_the_app():
    mutmut = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    modules = {path.name for path in ROOT.glob("*.py")} - NOT_IMPORTED_BY_TESTS
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert modules | packages <= set(mutmut["source_paths"])
