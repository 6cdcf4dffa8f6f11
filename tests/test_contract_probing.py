"""No probing of ganforge's own contract objects (issue 25): families, their configs' owners, datasets, data
specs, step contexts and built networks declare what they have (`Family`, `data.kinds.Dataset`, `DataSpec`,
`StepContext`, `Networks`), so the code reads it instead of asking `hasattr(x, "...")` or
`getattr(x, "...", default)`. Checked on the source with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import ganforge

PKG = Path(ganforge.__file__).parent

# Names that hold ganforge contract objects, as variables or attributes (`self.data`, `family.build(...)`).
WATCHED = frozenset({"family", "fam", "fam_cfg", "data", "ds", "dataset", "spec", "ctx", "nets", "real", "fake", "sampler", "model", "aug"})

# Probing that is allowed although it involves a watched name: only of third-party objects (a library's
# module, an exception, PIL), never of ganforge's own. Key: (path under src/ganforge, the call as
# `ast.unparse` writes it); value: why. Empty: nothing of the kind exists today.
ALLOWED: dict[tuple[str, str], str] = {}


def _spine(node: ast.expr) -> set[str]:
    """The names along an expression's spine: `self.data` -> {self, data}; `family.build(x).cfg` ->
    {family, build, cfg}; `nets["G"].cfg` -> {nets, cfg} (call arguments and subscripts are not followed)."""
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):
        return {node.attr} | _spine(node.value)
    if isinstance(node, ast.Call):
        return _spine(node.func)
    if isinstance(node, ast.Subscript):
        return _spine(node.value)
    return set()


def _is_probe(call: ast.Call) -> bool:
    """hasattr(x, ...), or getattr(x, "name"...) / getattr(x, name, default): asking whether x has something.
    getattr(x, key) with a variable key and no default is reading a field by name (a dataclass's fields)."""
    if not isinstance(call.func, ast.Name) or call.func.id not in ("getattr", "hasattr") or not call.args:
        return False
    if call.func.id == "hasattr":
        return True
    named = len(call.args) > 1 and isinstance(call.args[1], ast.Constant)
    return named or len(call.args) > 2


def probes(source: str) -> list[tuple[int, str]]:
    """(line, call) of each probe of a watched name in `source`."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _is_probe(node) and _spine(node.args[0]) & WATCHED:
            out.append((node.lineno, ast.unparse(node)))
    return sorted(out)


def _all_probes() -> list[tuple[str, int, str]]:
    return [
        (str(path.relative_to(PKG)), line, call)
        for path in sorted(PKG.rglob("*.py"))
        for line, call in probes(path.read_text(encoding="utf-8"))
    ]


def test_the_scanner_finds_probes():
    src = """
def f(family, self, cfg, key, exc, datasets):
    getattr(family, "blocks", None)
    hasattr(self.data, "centers")
    getattr(family.resolve_config(cfg), "lr", None)
    getattr(nets["G"], "cfg")
    getattr(ctx, key, 0)
    getattr(cfg, key)
    getattr(spec, key)
    getattr(exc, "reason", None)
    getattr(datasets.config, "HF_HUB_OFFLINE", False)
    family.blocks
"""
    assert [line for line, _ in probes(src)] == [3, 4, 5, 6, 7]


def test_no_probing_of_contract_objects():
    found = _all_probes()
    bad = [f"src/ganforge/{path}:{line}: {call}" for path, line, call in found if (path, call) not in ALLOWED]
    assert not bad, "probing of contract objects (declare the attribute or method instead):\n" + "\n".join(bad)


def test_the_allow_list_has_no_stale_entries():
    present = {(path, call) for path, _, call in _all_probes()}
    stale = [key for key in ALLOWED if key not in present]
    assert not stale, f"remove these from ALLOWED: {stale}"
