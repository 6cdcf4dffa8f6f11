"""Property tests (hypothesis) for the parsers that read what users type or what lies on disk: any input
gives a valid result or one of ganforge's own errors (a one-line message for the CLI), never another
exception and so never a traceback."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image

from ganforge.cli import MAX_SEED, MAX_SEEDS, parse_seeds
from ganforge.config import TrainConfig, apply_overrides, parse_value, setting_problem
from ganforge.data.archive import read_archive, read_dataset_json
from ganforge.errors import ConfigError, DataError, GanforgeError
from ganforge.families.dcgan import DCGANConfig

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON values as json.loads makes them (NaN and infinities included: Python's json reads them).
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


# ------------------------------------------------------------------------------------------------ seeds

seed_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789-, ", max_size=30),
    st.lists(
        st.one_of(
            st.integers(-5, 2**33).map(str),
            st.tuples(st.integers(-5, 2**33), st.integers(-5, 2**33)).map(lambda t: f"{t[0]}-{t[1]}"),
        ),
        max_size=5,
    ).map(",".join),
)


@FUZZ
@given(seed_text)
def test_parse_seeds_gives_seeds_or_one_line_error(text):
    try:
        seeds = parse_seeds(text)
    except GanforgeError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert seeds and len(seeds) <= MAX_SEEDS
    assert all(isinstance(s, int) and 0 <= s <= MAX_SEED for s in seeds)


@FUZZ
@given(st.integers(0, 2**32), st.integers(0, 2**32))
def test_parse_seeds_ranges(lo, hi):
    try:
        seeds = parse_seeds(f"{lo}-{hi}")
    except GanforgeError:
        assert hi < lo or hi - lo + 1 > MAX_SEEDS or hi > MAX_SEED
        return
    assert seeds[0] == lo and seeds[-1] == hi and len(seeds) == hi - lo + 1


def test_parse_seeds_limits():
    with pytest.raises(GanforgeError, match="more than 1,000,000 seeds"):
        parse_seeds("0-99999999")
    with pytest.raises(GanforgeError, match="cannot be negative"):
        parse_seeds("-3")
    with pytest.raises(GanforgeError, match="cannot be negative"):
        parse_seeds("0,5--2")
    with pytest.raises(GanforgeError, match="too large"):
        parse_seeds("9" * 5000)  # int() of this many digits raises ValueError in Python >= 3.11
    assert len(parse_seeds(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS


# ------------------------------------------------------------------------------------------------ config

currents = st.sampled_from([True, 0, 7, 0.5, -1.0, "hinge", None, (1, 2), (0.5,), ("a", "b"), [1], (True,), ()])


@FUZZ
@given(st.text(max_size=30), currents)
def test_parse_value_keeps_the_type_or_says_why(text, current):
    try:
        value = parse_value(text, current)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    if isinstance(current, bool):
        assert isinstance(value, bool)
    elif isinstance(current, int):
        assert type(value) is int
    elif isinstance(current, float):
        assert type(value) is float and math.isfinite(value)
    elif isinstance(current, (list, tuple)):
        assert type(value) is type(current)
        assert setting_problem("x", value) is None
    elif current is None:
        assert value is None or isinstance(value, (int, str)) or (isinstance(value, float) and math.isfinite(value))
    else:
        assert value == text


loop_keys = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "family"]
fam_keys = [f.name for f in dataclasses.fields(DCGANConfig)]
override = st.one_of(
    st.text(max_size=30),
    st.tuples(st.sampled_from(loop_keys + fam_keys + ["nosuch", "LR", "lr-g"]), st.text(max_size=15)).map("=".join),
    st.tuples(
        st.sampled_from(["lr", "lr_g", "lr_d", "beta1", "steps", "kimg", "ema_kimg"]),
        st.sampled_from(["nan", "-nan", "inf", "-inf", "1e400", "-1", "-0.0", "0", "2e-4", "1e-4 ", " 3"]),
    ).map("=".join),
)


@FUZZ
@given(st.lists(override, max_size=4))
def test_apply_overrides_sets_valid_values_or_says_why(items):
    cfg, fam = TrainConfig(), DCGANConfig()
    try:
        apply_overrides(cfg, fam, items)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    default_fam = DCGANConfig()
    for f in dataclasses.fields(fam):
        value = getattr(fam, f.name)
        assert type(value) is type(getattr(default_fam, f.name))
        assert setting_problem(f.name, value) is None
    try:
        cfg.family = dataclasses.asdict(fam)
        cfg.validate()
    except ConfigError:
        return
    json.dumps(cfg.to_dict(), allow_nan=False)  # what --dry-run prints is valid JSON


config_dicts = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(loop_keys + ["family", "nosuch"]), json_values, max_size=6),
    st.fixed_dictionaries(
        {},
        optional={
            "steps": st.integers() | json_scalars,
            "batch": st.integers(-2, 10),
            "kimg": st.none() | st.floats(),
            "aug": st.sampled_from(["none", "ada", "bogus"]),
            "aug_p": st.floats(),
            "grid_size": st.integers(-1, 3),
            "family": st.dictionaries(st.sampled_from(["lr", "lr_g", "ngf", "beta1"]), json_scalars, max_size=3),
        },
    ),
)


@FUZZ
@given(config_dicts)
def test_train_config_from_dict_is_typed_or_says_why(d):
    try:
        cfg = TrainConfig.from_dict(d)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(cfg):
        value, hint = getattr(cfg, f.name), hints[f.name]
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        ok = any(
            (a is float and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (a is int and isinstance(value, int) and not isinstance(value, bool))
            or (a is type(None) and value is None)
            or (a not in (int, float, type(None)) and isinstance(value, typing.get_origin(a) or a))
            for a in allowed
        )
        assert ok, (f.name, value)
    try:
        cfg.validate()
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    json.dumps(cfg.to_dict(), allow_nan=False)


# ------------------------------------------------------------------------------------------------ dataset.json

MEMBER = "00000/img00000000.png"


@pytest.fixture(scope="module")
def one_png_folder(tmp_path_factory):
    """A folder dataset with one tiny PNG; each example writes its own dataset.json beside it."""
    root = tmp_path_factory.mktemp("fuzz-archive")
    (root / "00000").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / MEMBER)
    return root


dataset_json_bytes = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "labels": st.none() | json_values | st.lists(st.tuples(st.just(MEMBER), json_scalars), max_size=2),
            "class_names": json_values,
            "layout": json_values,
        },
    ).map(lambda d: json.dumps(d).encode()),
)


@FUZZ
@given(dataset_json_bytes)
def test_read_dataset_json_gives_an_object_none_or_data_error(one_png_folder, raw):
    (one_png_folder / "dataset.json").write_bytes(raw)
    try:
        meta = read_dataset_json(one_png_folder)
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    assert meta is None or isinstance(meta, dict)


def _check_archive(folder) -> None:
    try:
        data = read_archive(folder)
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    assert data.images.shape == (1, 4, 4, 3) and data.images.dtype == np.uint8
    assert all(isinstance(c, str) for c in data.class_names), data.class_names
    if data.labels is not None:
        assert data.labels.shape == (1,)
        assert 0 <= int(data.labels[0]) < len(data.class_names), (data.labels, data.class_names)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples every run
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the minimal inputs are listed below
    suppress_health_check=[HealthCheck.too_slow],
)
@given(dataset_json_bytes)
def test_read_archive_gives_data_or_data_error(one_png_folder, raw):
    (one_png_folder / "dataset.json").write_bytes(raw)
    _check_archive(one_png_folder)


# Inputs the fuzz test found that read_archive once crashed on (regressions: each must now be a DataError).
_ARCHIVE_CRASHES = [
    b'{"labels": 5}',  # TypeError: 'int' object is not iterable
    b'{"labels": [null]}',  # TypeError: cannot unpack non-iterable NoneType object
    b'{"labels": [[1]]}',  # ValueError: not enough values to unpack
    b'{"labels": {"ab": 1}}',  # ValueError: invalid literal for int() with base 10: 'b'
    b'{"labels": [["00000/img00000000.png", "x"]]}',  # ValueError: invalid literal for int()
    b'{"labels": [["00000/img00000000.png", null]]}',  # TypeError: int() argument must be ... not 'NoneType'
    b'{"labels": [["00000/img00000000.png", 1e400]]}',  # OverflowError: cannot convert float infinity to integer
    b'{"labels": [["00000/img00000000.png", 99999999999999999999999]]}',  # OverflowError: int too large (np.int64)
    b'{"labels": [["00000/img00000000.png", -1]]}',  # a label -1 with no class names, returned as valid
    b'{"class_names": 5}',  # TypeError: 'int' object is not iterable
    b"[" * 100_000,  # RecursionError in json.loads (read_dataset_json catches only JSONDecodeError)
]


@pytest.mark.parametrize("raw", _ARCHIVE_CRASHES, ids=lambda b: b[:40].decode(errors="replace"))
def test_read_archive_damaged_dataset_json(tmp_path, raw):
    (tmp_path / "00000").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / MEMBER)
    (tmp_path / "dataset.json").write_bytes(raw)
    _check_archive(tmp_path)
