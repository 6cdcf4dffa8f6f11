"""Every option vocabulary has one definition (ganforge.vocab) that the CLI, config validation, the library and
the studio's parameter checks all read: compared here, so a second list cannot drift from it."""

from __future__ import annotations

import importlib

import click

from ganforge import augment, config, losses, vocab
from ganforge.cli import main
from ganforge.serve import params
from ganforge.spec import CONDITIONING


def _choices(command: str, option: str) -> tuple[str, ...]:
    cmd = main.commands[command]
    for p in cmd.params:
        if option in p.opts:
            assert isinstance(p.type, click.Choice)
            return tuple(p.type.choices)
    raise AssertionError(f"{command} has no {option}")


def test_cli_choices_are_the_vocabularies():
    assert _choices("train", "--aug") == vocab.AUGMENTATIONS
    assert _choices("train", "--loss") == vocab.LOSSES
    assert _choices("train", "--precision") == vocab.PRECISIONS
    assert _choices("train", "--eval-extractor") == vocab.EXTRACTORS
    assert _choices("eval", "--extractor") == vocab.EXTRACTORS
    assert _choices("generate", "--noise-mode") == vocab.NOISE_MODES
    assert _choices("mix", "--noise-mode") == vocab.NOISE_MODES


def test_library_config_and_studio_read_the_same_definitions():
    assert config.AUGMENTATIONS is vocab.AUGMENTATIONS and augment.AUGMENT_KINDS is vocab.AUGMENTATIONS
    assert config.PRECISIONS is vocab.PRECISIONS and config.EVAL_EXTRACTORS is vocab.EXTRACTORS
    evaluate_module = importlib.import_module("ganforge.metrics.evaluate")
    assert losses.LOSSES is vocab.LOSSES and evaluate_module.EXTRACTORS is vocab.EXTRACTORS
    assert params.NOISE_MODES is vocab.NOISE_MODES and CONDITIONING is vocab.CONDITIONING


def test_config_validation_refuses_what_the_vocabulary_lacks():
    import pytest

    from ganforge.errors import ConfigError

    for key, bad in (("aug", "mixup"), ("precision", "fp8"), ("eval_extractor", "clip")):
        with pytest.raises(ConfigError, match=key):
            config.TrainConfig(**{key: bad}).validate()
