"""The import layering the architecture promises (DESIGN.md): spec at the bottom; data and families
below training; inference (sample/) and the server (serve/) never import training/. Checked on the
source with `ast`, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import ganforge

PKG = Path(ganforge.__file__).parent


def _imports(path: Path) -> set[str]:
    """Absolute module names `path` imports (relative imports resolved)."""
    mod = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
    # The package a relative import starts from: a package's own __init__ is in the package itself.
    pkg = mod.removesuffix(".__init__") if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            # `from pkg import x` is an edge to the module pkg.x when there is one, else to pkg (x is a name
            # of it): `_module_graph` walks each name up to the nearest module. Not to pkg as well: that
            # would make `from . import sibling` inside a package a cycle with the package's own __init__.
            out |= {f"{name}.{a.name}" for a in node.names}
    return {m for m in out if m.startswith("ganforge")}


def _modules(sub: str) -> list[Path]:
    root = PKG / sub
    return sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]


def _violations(subs: list[str], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for sub in subs:
        for path in _modules(sub):
            if not path.exists():
                continue
            for m in _imports(path):
                if m.startswith(forbidden):
                    bad.append(f"{path.relative_to(PKG)} imports {m}")
    return bad


def test_inference_and_server_do_not_import_training():
    assert not _violations(["sample", "serve"], ("ganforge.training",))


def test_data_and_families_are_below_training_and_inference():
    assert not _violations(["data", "families", "nn", "augment", "losses"], ("ganforge.training", "ganforge.sample", "ganforge.serve", "ganforge.cli"))


def test_spec_is_at_the_bottom():
    assert _imports(PKG / "vocab.py") == set()
    assert _imports(PKG / "text.py") == set()
    assert _imports(PKG / "spec.py") <= {
        "ganforge.vocab", "ganforge.vocab.CONDITIONING", "ganforge.text", "ganforge.text.TEXT_BYTES",
        "ganforge.text.text_problem",
    }


def test_images_sit_below_everything():
    """One image module below data/, sample/, serve/ and share/: it imports nothing of ganforge but errors."""
    assert _imports(PKG / "images.py") <= {"ganforge.errors", "ganforge.errors.DataError"}


def test_sample_does_not_depend_on_the_server():
    assert not _violations(["sample"], ("ganforge.serve",))


# ---- the full floor plan, and no cycles ---------------------------------------------------------------


def _module_graph() -> dict[str, set[str]]:
    """ganforge module -> the ganforge modules it imports (at any depth of the file: lazy imports count)."""
    mods: dict[str, Path] = {}
    for p in sorted(PKG.rglob("*.py")):
        name = ".".join(p.relative_to(PKG.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    graph: dict[str, set[str]] = {}
    for name, p in mods.items():
        deps = set()
        for m in _imports(p):
            while m and m not in mods:  # `from ganforge.x import name`: the module is ganforge.x
                m = m.rsplit(".", 1)[0] if "." in m else ""
            if m and m != name and m != "ganforge":
                deps.add(m)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_training_imports_no_interop_and_inference_no_training():
    assert not _violations(["training"], ("ganforge.interop",))
    assert not _violations(["sample", "serve", "share", "interop"], ("ganforge.training",))


def test_sample_imports_no_share():
    """share/ exports and pushes what sample/ loads; `hf:` runs resolve in `ganforge.locate`, below both."""
    assert not _violations(["sample"], ("ganforge.share",))
    assert not _violations(["locate"], ("ganforge.sample", "ganforge.share", "ganforge.serve", "ganforge.training"))


def test_dataset_sources_are_above_the_dataset_kinds():
    """`data.kinds` (the in-memory datasets) is below the sources that build them (builtin, pairs, downloads,
    digits, points), and only `data.dataset` (load_dataset) chooses between those sources."""
    assert not _violations(["data/kinds"], ("ganforge.data.",))
    sources = ["builtin", "pairs", "downloads", "digits", "points", "archive", "prepare"]
    assert not _violations([f"data/{s}" for s in sources], ("ganforge.data.dataset",))


# The import cycles that remain. None may be added; remove each entry as its cycle is broken. (The last one,
# the CLI's, went with issue 25: a cli/ package whose __init__ registers the verbs explicitly.)
KNOWN_CYCLES: list[list[str]] = []


def test_no_new_import_cycles():
    found = _cycles(_module_graph())
    new = [c for c in found if c not in KNOWN_CYCLES]
    assert not new, f"new import cycles: {new}"
    gone = [c for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"cycles broken (remove them from KNOWN_CYCLES): {gone}"


def test_nothing_imports_the_cli():
    """The command is the top floor: only `python -m ganforge` (__main__) imports it, from outside cli/."""
    outside = [p for p in sorted(PKG.rglob("*.py")) if p.parent != PKG / "cli" and p.name != "__main__.py"]
    bad = [f"{p.relative_to(PKG)} imports {m}" for p in outside for m in _imports(p) if m.split(".")[:2] == ["ganforge", "cli"]]
    assert not bad, bad


def test_verb_modules_do_not_import_the_cli_package():
    """The package's __init__ registers the verbs on `main` (from cli.app); a verb module that imported the
    package (ganforge.cli) would close the cycle again."""
    graph = _module_graph()
    verbs = [m for m in graph if m.startswith("ganforge.cli.")]
    assert {"ganforge.cli.app", "ganforge.cli.train", "ganforge.cli.sample"} <= set(verbs)
    bad = [m for m in verbs if "ganforge.cli" in graph[m]]
    assert not bad, f"{bad} import ganforge.cli; import ganforge.cli.app (main) or the helper module instead"
    assert not [m for m in graph["ganforge.cli.app"] if m.startswith("ganforge.cli.")], "cli.app imports a verb"
