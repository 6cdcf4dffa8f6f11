"""Every option vocabulary has one definition (ganforge.vocab) that the CLI, config validation, the library and
the studio's parameter checks all read: compared here, so a second list cannot drift from it."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path

import click
import pytest

import ganforge
from ganforge import augment, config, losses, vocab
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.registry import family_names
from ganforge.serve import params
from ganforge.spec import CONDITIONING

VOCABULARIES = {name: value for name, value in vars(vocab).items() if name.isupper()}

# (command path, option) -> the vocabulary its click.Choice is.
CLI_CHOICES = {
    ("train", "--aug"): "AUGMENTATIONS",
    ("train", "--loss"): "LOSSES",
    ("train", "--precision"): "PRECISIONS",
    ("train", "--eval-extractor"): "EXTRACTORS",
    ("train", "--on-nan"): "ON_NAN",
    ("eval", "--extractor"): "EXTRACTORS",
    ("generate", "--noise-mode"): "NOISE_MODES",
    ("mix", "--noise-mode"): "NOISE_MODES",
    ("translate", "--direction"): "DIRECTIONS",
    ("export", "--direction"): "DIRECTIONS",
    ("prepare", "--fit"): "FITS",
    ("prepare", "--filter"): "RESAMPLE_FILTERS",
    ("attack", "--method"): "ATTACK_METHODS",
    ("attack", "--norm"): "ATTACK_NORMS",
}
# Choices that are no shared vocabulary: numbers, one command's own modes, the registered families.
CLI_OWN_CHOICES = {
    ("train", "--channels"): ("1", "3"),
    ("prepare", "--channels"): ("1", "3"),
    ("project", "--loss"): ("auto", "lpips", "pixel"),
    ("export", "--format"): ("onnx", "safetensors"),
}

# TrainConfig field -> the vocabulary its values come from (its option's choices and its validation).
CONFIG_CHOICES = {"aug": "AUGMENTATIONS", "precision": "PRECISIONS", "eval_extractor": "EXTRACTORS", "on_nan": "ON_NAN"}

# Other spellings of a vocabulary in src/, in modules whose owners switch them to ganforge.vocab: remove each
# entry as it goes (the test fails while an entry is stale). None may be added.
KNOWN_COPIES: set[tuple[str, str]] = set()


def _cli_choices() -> dict[tuple[str, str], tuple[str, ...]]:
    """(command path, option) -> choices, for every click.Choice option of every command of `ganforge`."""
    out = {}

    def walk(cmd: click.Command, path: tuple[str, ...]) -> None:
        for p in cmd.params:
            if isinstance(p.type, click.Choice):
                out[(" ".join(path), p.opts[0])] = tuple(p.type.choices)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))

    walk(main, ())
    return out


def test_cli_choices_are_the_vocabularies():
    found = _cli_choices()
    assert found.pop(("train", "--model")) == tuple(family_names())  # read from the registry when it runs
    for key, name in CLI_CHOICES.items():
        assert found.pop(key) == VOCABULARIES[name], key
    assert found == CLI_OWN_CHOICES, "a new click.Choice: read its list from ganforge.vocab (add it there first)"


def test_every_vocabulary_is_used_by_the_cli_or_the_library():
    used = set(CLI_CHOICES.values()) | {"CONDITIONING"}  # CONDITIONING: Capabilities (ganforge.spec)
    assert used == set(VOCABULARIES)


def test_library_config_and_studio_read_the_same_definitions():
    assert config.AUGMENTATIONS is vocab.AUGMENTATIONS and augment.AUGMENT_KINDS is vocab.AUGMENTATIONS
    assert config.PRECISIONS is vocab.PRECISIONS and config.EVAL_EXTRACTORS is vocab.EXTRACTORS
    assert config.ON_NAN is vocab.ON_NAN
    evaluate_module = importlib.import_module("ganforge.metrics.evaluate")
    assert losses.LOSSES is vocab.LOSSES and evaluate_module.EXTRACTORS is vocab.EXTRACTORS
    assert params.NOISE_MODES is vocab.NOISE_MODES and CONDITIONING is vocab.CONDITIONING


def test_config_fields_name_their_vocabulary():
    fields = {f.name: f for f in dataclasses.fields(config.TrainConfig)}
    with_choices = {name for name, f in fields.items() if "choices" in f.metadata and name != "channels"}
    assert with_choices == set(CONFIG_CHOICES)
    for name, vocabulary in CONFIG_CHOICES.items():
        assert fields[name].metadata["choices"] is VOCABULARIES[vocabulary], name
        assert fields[name].default in VOCABULARIES[vocabulary], name


@pytest.mark.parametrize("field", sorted(CONFIG_CHOICES))
def test_config_validation_refuses_what_the_vocabulary_lacks(field):
    members = VOCABULARIES[CONFIG_CHOICES[field]]
    with pytest.raises(ConfigError, match=field) as exc:
        config.TrainConfig(**{field: "bogus"}).validate()
    assert all(m in str(exc.value) for m in members), str(exc.value)
    for member in members:
        config.TrainConfig(**{field: member}).validate()


def _literal_copies(path: Path) -> set[str]:
    """The vocabularies `path` spells out: a tuple, list, set (or a dict's keys) of exactly its strings."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        if len(items) < 2 or not all(isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items):
            continue
        words = {i.value for i in items}  # type: ignore[attr-defined]
        found |= {name for name, value in VOCABULARIES.items() if words == set(value)}
    return found


def test_no_module_spells_a_vocabulary():
    pkg = Path(ganforge.__file__).parent
    copies = {
        (path.relative_to(pkg).as_posix(), name)
        for path in sorted(pkg.rglob("*.py"))
        if path.name != "vocab.py" or path.parent != pkg
        for name in _literal_copies(path)
    }
    assert not copies - KNOWN_COPIES, f"import these from ganforge.vocab instead: {sorted(copies - KNOWN_COPIES)}"
    assert not KNOWN_COPIES - copies, f"fixed: remove from KNOWN_COPIES {sorted(KNOWN_COPIES - copies)}"


def test_the_copy_finder_finds_copies(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('A = ["fp16", "bf16", "auto", "fp32"]\nB = {"stop": 1, "rollback": 2}\nC = ("const", "random")\n')
    assert _literal_copies(f) == {"PRECISIONS", "ON_NAN"}


def test_the_studio_page_uses_the_same_limits():
    """app.js cannot import Python: its copies of the seed limit and the prompt length are checked here."""
    import re
    from importlib import resources

    from ganforge.sample.seeds import MAX_SEED
    from ganforge.text import TEXT_BYTES

    js = (resources.files("ganforge.serve") / "static" / "app.js").read_text()
    assert re.search(r"const MAX_SEED = (\d+);", js).group(1) == str(MAX_SEED)
    assert f'id: "prompt", maxlength: {TEXT_BYTES}' in js
