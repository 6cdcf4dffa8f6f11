"""The studio's parameter validation, fuzzed: any string gives a valid value or the documented 4xx
`ParamError`, never another exception; and what is accepted is in range."""

from __future__ import annotations

import io
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from ganforge.serve import params as P

TEXT = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.from_regex(r"[+-]?[0-9]{0,25}(\.[0-9]{0,5})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(fn, *args):
    """('ok', value) or ('err', status): anything else escapes and fails the test."""
    try:
        return "ok", fn(*args)
    except P.ParamError as e:
        assert 400 <= e.status < 500 and e.detail and "\n" not in e.detail
        return "err", e.status


@FUZZ
@given(TEXT)
@example("4294967295")
@example("4294967296")
@example("-0")
@example("٣")  # an Arabic-Indic digit: int() would take it, the API does not
@example("1_000")
@example("9" * 10_000)
def test_seed(text):
    kind, v = outcome(P.parse_seed, text)
    if kind == "ok":
        assert isinstance(v, int) and 0 <= v <= P.MAX_SEED
        assert text is None or text.strip() == "" or text.strip().lstrip("+").isascii()
    else:
        assert v == 422


def test_seed_bounds():
    assert P.parse_seed("4294967295") == 2**32 - 1
    assert P.parse_seed(" 7 ") == 7 and P.parse_seed(None) == 0 and P.parse_seed("") == 0
    for bad in ("4294967296", "-1", "1.0", "1e3", "0x10", "٣", "1_000", "nan"):
        with pytest.raises(P.ParamError):
            P.parse_seed(bad)


@FUZZ
@given(TEXT)
@example("nan")
@example("-inf")
@example("1e309")
@example("2.0000001")
@example("-2")
def test_psi(text):
    kind, v = outcome(P.parse_psi, text)
    if kind == "ok":
        assert isinstance(v, float) and math.isfinite(v) and -2 <= v <= 2


@FUZZ
@given(TEXT)
def test_frames_fps_size_steps(text):
    for fn, lo, hi in ((P.parse_frames, 2, 240), (P.parse_fps, 1, 50)):
        kind, v = outcome(fn, text)
        if kind == "ok":
            assert lo <= v <= hi
    kind, v = outcome(P.parse_size, text)
    if kind == "ok":
        assert v is None or 8 <= v <= 2048
    kind, v = outcome(P.parse_step, text or "")
    if kind == "ok":
        assert v >= 0


@FUZZ
@given(
    st.one_of(st.none(), st.text(max_size=20)), st.lists(st.text(min_size=1, max_size=8), max_size=5), st.integers(0, 6)
)
def test_class(text, names, n):
    kind, v = outcome(P.parse_class, text, names, n)
    if kind == "ok":
        assert v is None or 0 <= v < n


def test_class_cases():
    assert P.parse_class("cat", ["cat", "dog"], 2) == 0 and P.parse_class("1", ["cat", "dog"], 2) == 1
    assert P.parse_class(None, [], 0) is None
    for bad, names, n in (("2", ["a", "b"], 2), ("fish", ["a"], 1), ("0", [], 0), ("-1", [], 3)):
        with pytest.raises(P.ParamError):
            P.parse_class(bad, names, n)


@FUZZ
@given(TEXT, st.integers(1, 18))
@example("0-3,5", 14)
@example("coarse", 4)
@example("fine", 3)
@example("0-99999999999999999999", 14)
def test_seed_lists_and_styles(text, num_ws):
    kind, v = outcome(P.parse_seed_list, text, "rows", [1, 2])
    if kind == "ok":
        assert 1 <= len(v) <= P.MAX_MIX_SEEDS and all(0 <= s <= P.MAX_SEED for s in v)
    kind, v = outcome(P.parse_styles, text, num_ws)
    if kind == "ok":
        assert all(0 <= s < num_ws for s in v)


def test_style_presets_follow_the_paper():
    """Karras et al. 2019, fig. 3: coarse = 4-8 px (layers 0-3), middle = 16-32 px (4-7), fine = the rest."""
    assert P.parse_styles("coarse", 14) == [0, 1, 2, 3]
    assert P.parse_styles("middle", 14) == [4, 5, 6, 7]
    assert P.parse_styles("fine", 14) == list(range(8, 14))
    small = [P.parse_styles(s, 6) for s in ("coarse", "middle", "fine")]
    assert all(small) and sorted(sum(small, [])) == list(range(6))


@FUZZ
@given(st.one_of(st.none(), st.text(max_size=12)))
def test_noise_and_direction(text):
    kind, v = outcome(P.parse_noise, text)
    if kind == "ok":
        assert v in P.NOISE_MODES
    kind, v = outcome(P.parse_direction, text, ("AtoB",))
    if kind == "ok":
        assert v == "AtoB"


@FUZZ
@given(st.text(max_size=40))
@example("..")
@example("../dc")
@example("dc/..")
@example("dc\x00")
@example("..\\dc")
@example("/etc")
def test_run_names_never_leave_runs_dir(tmp_path_factory, text):
    root = tmp_path_factory.getbasetemp() / "fuzz-runs"
    (root / "dc").mkdir(parents=True, exist_ok=True)
    (root / "dc" / "config.json").write_text("{}")
    kind, v = outcome(P.run_dir, root, text)
    if kind == "ok":
        assert v.parent == root.resolve() and v.name == "dc"
    else:
        assert v == 404


@FUZZ
@given(st.binary(max_size=600))
def test_uploads(data):
    kind, v = outcome(P.check_upload, data)
    if kind == "err":
        assert v in (413, 415)


def test_upload_headers_decide_before_decoding():
    buf = io.BytesIO()
    Image.new("L", (5000, 10)).save(buf, format="PNG")
    with pytest.raises(P.ParamError) as e:
        P.check_upload(buf.getvalue())
    assert e.value.status == 413
    ok = io.BytesIO()
    Image.new("RGB", (7, 9)).save(ok, format="JPEG")
    assert P.check_upload(ok.getvalue()) == ("JPEG", 7, 9)
    with pytest.raises(P.ParamError) as e:
        P.check_upload(b"\x00" * (P.MAX_UPLOAD_BYTES + 1))
    assert e.value.status == 413
