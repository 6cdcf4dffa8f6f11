"""The reliability issue, command by command: invalid settings, huge --seeds, --out that names a file,
damaged run files and messages that name options the command lacks each give one `error:` line (exit
2, no traceback); generation streams to disk in batches."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.cli import sample as cli_sample
from ganforge.config import TrainConfig
from ganforge.errors import ConfigError
from helpers import make_archive

TINY = ["--set", "ngf=8", "--set", "ndf=8", "--set", "nz=8", "--batch", "8", "--precision", "fp32", "--quiet"]


def invoke(args):
    return CliRunner().invoke(main, args)


def assert_one_line_error(r, message: str = "") -> str:
    """Exit 2, no traceback, and one `error:` line that contains `message`; returns that line."""
    out = r.output.strip()
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit), r.output
    assert out.startswith("error:") and len(out.splitlines()) == 1, out
    assert message in out, out
    return out


def options_of(command: str) -> set[str]:
    cmd = main.commands[command]
    return {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("--")} | {"--help"}


_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_COMMAND_LINE = re.compile(r"ganforge ([a-z]+)([^;`)]*)")  # "ganforge train --eval-every N": train's options


def assert_named_options_exist(command: str, text: str) -> None:
    """Every --option in a message exists on `command`, or on the command a quoted `ganforge VERB ...` names."""
    for verb, rest in _COMMAND_LINE.findall(text):
        if verb in main.commands:
            missing = set(_OPTION.findall(rest)) - options_of(verb)
            assert not missing, f"`ganforge {verb}` has no {sorted(missing)}, yet this message names them: {text}"
    missing = set(_OPTION.findall(_COMMAND_LINE.sub("", text))) - options_of(command)
    assert not missing, f"`ganforge {command}` has no {sorted(missing)}, yet this message names them: {text}"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny class-conditional DCGAN run (3 classes c0, c1, c2), trained for one step."""
    root = tmp_path_factory.mktemp("reliability")
    data = make_archive(root / "labelled.zip", classes=3)
    runs = root / "runs"
    r = CliRunner().invoke(
        main, ["train", "--data", str(data), "--cond", "--steps", "1", "--run", "c", "--runs-dir", str(runs), *TINY]
    )
    assert r.exit_code == 0, r.output
    return runs / "c"


# ------------------------------------------------------------------------------------- 1. settings


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("lr=nan", "bad value for lr: 'nan' (not a finite number"),
        ("lr=inf", "bad value for lr: 'inf' (not a finite number"),
        ("lr=-1", "bad value for lr: '-1' (learning rates and their schedules must be 0 or more)"),
        ("lr_d=-1e-3", "bad value for lr_d"),
        ("beta1=NaN", "bad value for beta1"),
        ("gp_weight=1e400", "bad value for gp_weight"),
        ("kimg=nan", "bad value for kimg"),
        ("ema_kimg=-5", "ema_kimg = -5.0 is out of range: use 0 (no EMA) or more"),
        ("grid_size=0", "grid_size = 0 is out of range"),
        ("aug=bogus", "aug = 'bogus' is out of range: use none | ada | fixed | diffaugment"),
        ("aug_p=1.5", "aug_p = 1.5 is out of range: use from 0 to 1"),
        ("aug_target=-0.1", "aug_target"),
        ("eval_num=0", "eval_num = 0 is out of range"),
        ("steps=0", "steps = 0 is out of range"),
        ("keep_ckpts=-1", "keep_ckpts"),
        ("ema_rampup=nan", "bad value for ema_rampup"),
        ("resolution=abc", "resolution = 'abc' is not valid"),
    ],
)
def test_invalid_settings_are_refused_before_the_dry_run_prints(setting, message):
    r = invoke(["train", "--dry-run", "--set", setting])
    assert_one_line_error(r, message)
    assert "{" not in r.output  # no configuration printed


def test_dry_run_prints_strict_json():
    def refuse(name):
        raise AssertionError(f"{name} is not JSON")

    r = invoke(["train", "--dry-run", "--set", "lr=1e-4", "--set", "lr_g=0", "--model", "dcgan"])
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output, parse_constant=refuse)
    assert cfg["family"]["lr"] == 1e-4


def test_invalid_setting_fails_before_training(tmp_path, tiny_data):
    runs = tmp_path / "runs"
    r = invoke(["train", "--data", tiny_data, "--steps", "1", "--runs-dir", str(runs), "--set", "lr=-1", *TINY])
    assert_one_line_error(r, "bad value for lr")
    assert not runs.exists()


def test_unknown_setting_still_lists_the_keys():
    out = assert_one_line_error(invoke(["train", "--dry-run", "--set", "nosuch=1"]), "unknown setting 'nosuch'")
    assert "lr, lr_d, lr_g" in out


def test_train_config_validate():
    assert TrainConfig().validate() == TrainConfig()
    for bad in [dict(batch=0), dict(kimg=0.0), dict(channels=2), dict(precision="fp8"), dict(eval_extractor="x")]:
        with pytest.raises(ConfigError):
            TrainConfig(**bad).validate()
    with pytest.raises(ConfigError, match="learning rates"):
        TrainConfig(family={"lr": -1.0}).validate()
    with pytest.raises(ConfigError, match="finite"):
        TrainConfig(family={"beta2": float("nan")}).validate()
    with pytest.raises(ConfigError, match="'steps' has the value 'x'"):
        TrainConfig.from_dict({"steps": "x"})
    with pytest.raises(ConfigError, match="JSON object"):
        TrainConfig.from_dict([1, 2])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- 2. streaming


def test_generate_writes_each_batch_before_the_next(run_dir, tmp_path, monkeypatch):
    from ganforge.sample.model import Model

    out = tmp_path / "many"
    calls: list[tuple[int, int]] = []  # (images asked for, PNGs already on disk)
    real_generate = Model.generate

    def spy(self, seeds, **kw):
        calls.append((len(seeds), len(list(out.glob("*.png"))) if out.exists() else 0))
        return real_generate(self, seeds, **kw)

    monkeypatch.setattr(Model, "generate", spy)
    r = invoke(["generate", str(run_dir), "--seeds", "0-149", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert calls == [(64, 0), (64, 64), (22, 128)]
    assert len(list(out.glob("*.png"))) == 150
    assert "%|" not in r.output  # no progress bar when stderr is not a terminal
    # Same seed, same image, whichever batch it was generated in.
    r = invoke(["generate", str(run_dir), "--seeds", "130", "--out", str(tmp_path / "one")])
    assert (tmp_path / "one" / "seed0130.png").read_bytes() == (out / "seed0130.png").read_bytes()


def test_generate_shows_progress_on_a_terminal(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(cli_sample, "_is_terminal", lambda stream: True)
    r = invoke(["generate", str(run_dir), "--seeds", "0-99", "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert re.search(r"\d+/100 \[", r.output), r.output  # a tqdm bar on stderr


def test_grid_of_too_many_images_is_refused(run_dir, tmp_path, monkeypatch):
    r = invoke(["generate", str(run_dir), "--seeds", "0-4096", "--grid", "--out", str(tmp_path / "g.png")])
    assert_one_line_error(r, "a grid of more than 4096 images is not viewable")
    monkeypatch.setattr(cli_sample, "MAX_GRID_PIXELS", 1000)
    r = invoke(["generate", str(run_dir), "--seeds", "0-8", "--grid", "--out", str(tmp_path / "g.png")])
    assert_one_line_error(r, "would be 52x52 pixels, too large to view")
    assert not (tmp_path / "g.png").exists()


def test_grid_is_streamed_too(run_dir, tmp_path):
    r = invoke(["generate", str(run_dir), "--seeds", "0-99", "--grid", "--out", str(tmp_path / "g.png")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "g.png").size == (10 * 17 + 1, 10 * 17 + 1)
    r = invoke(["generate", str(run_dir), "--seeds", "97", "--grid", "--out", str(tmp_path / "one.png")])
    one = Image.open(tmp_path / "one.png").crop((1, 1, 17, 17))
    tile = Image.open(tmp_path / "g.png").crop((1 + 7 * 17, 1 + 9 * 17, 17 + 7 * 17, 17 + 9 * 17))  # seed 97
    assert list(one.getdata()) == list(tile.getdata())


def test_huge_seed_lists_are_refused_at_once(run_dir):
    assert_one_line_error(invoke(["generate", str(run_dir), "--seeds", "0-99999999"]), "more than 1,000,000 seeds")
    assert_one_line_error(invoke(["generate", str(run_dir), "--seeds", "-5"]), "seeds cannot be negative")


# ------------------------------------------------------------------------------------- 3. --out


def test_out_naming_an_existing_file_is_an_error(run_dir, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    out = assert_one_line_error(invoke(["generate", str(run_dir), "--seeds", "0-3", "--out", str(f)]), "is a file")
    assert_named_options_exist("generate", out)
    assert f.read_text() == "mine"
    out = assert_one_line_error(invoke(["generate", str(run_dir), "--seeds", "0-3", "--grid", "--out", str(f)]))
    assert "not an image" in out and f.read_text() == "mine"


def test_out_with_an_image_suffix_needs_grid(run_dir, tmp_path):
    r = invoke(["generate", str(run_dir), "--seeds", "0-3", "--out", str(tmp_path / "pic.png")])
    out = assert_one_line_error(r, "names a file; give a folder, or add --grid")
    assert_named_options_exist("generate", out)
    assert not (tmp_path / "pic.png").exists()


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("grid.jpg", "JPEG"), ("grid.JPEG", "JPEG"), ("grid.webp", "WEBP"), ("g.png", "PNG"), ("g.bmp", "BMP"),
        ("g.tif", "TIFF"), ("g.tiff", "TIFF"),
    ],
)
def test_grid_out_is_the_file_in_its_format(run_dir, tmp_path, name, fmt):
    # Regression (issue 24): --grid --out g.bmp made a folder g.bmp/ with a PNG in it.
    r = invoke(["generate", str(run_dir), "--seeds", "0-3", "--grid", "--out", str(tmp_path / name)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / name).is_file()
    assert Image.open(tmp_path / name).format == fmt


@pytest.mark.parametrize("name", ["g.gif", "g.GIF", "g.ico", "g.ppm"])
def test_grid_out_with_an_image_suffix_it_is_not_written_as_is_refused(run_dir, tmp_path, name):
    out = assert_one_line_error(
        invoke(["generate", str(run_dir), "--seeds", "0-3", "--grid", "--out", str(tmp_path / name)]),
        "a grid is not written as",
    )
    assert ".png" in out and ".bmp" in out
    assert_named_options_exist("generate", out)
    assert not (tmp_path / name).exists()
    assert_one_line_error(
        invoke(["generate", str(run_dir), "--seeds", "0-3", "--out", str(tmp_path / name)]), "names a file"
    )


@pytest.mark.parametrize("psi", ["1e30", "-1e30", "2.5", "-3", "nan", "inf", "-inf"])
def test_trunc_out_of_range_is_refused_as_the_api_does(run_dir, tmp_path, psi):
    # Regression (issue 24): --trunc 1e30 saturated silently; the studio's API refuses psi outside [-2, 2].
    from ganforge.serve.params import PSI_RANGE

    assert cli_sample.PSI_RANGE == PSI_RANGE
    out = assert_one_line_error(
        invoke(["generate", str(run_dir), "--seeds", "0", "--trunc", psi, "--out", str(tmp_path / "o")]),
        "is out of range: truncation psi goes from -2 to 2",
    )
    assert_named_options_exist("generate", out)
    assert not (tmp_path / "o").exists()


def test_grid_into_an_existing_folder(run_dir, tmp_path):
    (tmp_path / "shots.png").mkdir()  # a folder, whatever its name says
    r = invoke(["generate", str(run_dir), "--seeds", "0-3", "--grid", "--out", str(tmp_path / "shots.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "shots.png" / "grid-seeds-0-3.png").is_file()


def test_default_grid_names_keep_classes_apart(run_dir):
    for label in ("c0", "c1", "2"):
        r = invoke(["generate", str(run_dir), "--seeds", "0-3", "--grid", "--class", label])
        assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (run_dir / "generated").glob("grid-*.png"))
    assert names == ["grid-seeds-0-3-class2.png", "grid-seeds-0-3-classc0.png", "grid-seeds-0-3-classc1.png"]


def test_output_tag():
    tag = cli_sample._output_tag
    assert tag("0-3", [0, 1, 2, 3], None, 1.0, "const", False) == "seeds-0-3"
    assert (
        tag("0-3, 7", [0, 1, 2, 3, 7], "a/b", 0.7, "random", True) == "seeds-0-3_7-classa_b-trunc0.7-noiserandom-noema"
    )
    long = ",".join(map(str, range(0, 100, 3)))
    assert tag(long, list(range(0, 100, 3)), None, 1.0, "const", False) == "seeds-0-99-34images"


# ------------------------------------------------------------------------------------- 4. damaged run files


@pytest.fixture
def damaged_run(run_dir, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(run_dir, dst)
    return dst


def test_info_skips_garbage_in_metrics_jsonl(damaged_run):
    with open(damaged_run / "metrics.jsonl", "ab") as f:
        f.write(bytes(range(256)) + b"\n\xff\xfe{\n5\n[1, 2]\n")
        f.write(b'{"step": 9, "loss_D": NaN, "loss_G": 1.5}\n\x00\x00')
    r = invoke(["info", str(damaged_run), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output, parse_constant=lambda c: pytest.fail(f"{c} in --json output"))
    assert info["last"] == {"step": 9, "loss_D": None, "loss_G": 1.5}
    r = invoke(["info", str(damaged_run)])
    assert r.exit_code == 0 and "loss_G=1.5" in r.output


@pytest.mark.parametrize("content", [b"\x00\xff\xfe garbage", b'{"step": ', b"[3]"])
def test_info_with_a_damaged_best_json(damaged_run, content):
    (damaged_run / "checkpoints" / "best.json").write_bytes(content)
    out = assert_one_line_error(invoke(["info", str(damaged_run)]), "best.json is damaged")
    assert "delete it" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00{", "config.json is damaged (not valid JSON)"),
        (b'{"model": "dcgan", "steps"', "config.json is damaged (not valid JSON)"),
        (b"[1, 2]", "a config must be a JSON object"),
        (b'{"steps": "many"}', "config key 'steps' has the value 'many'"),
        (b'{"nosuch": 1}', "unknown config keys ['nosuch']"),
    ],
)
def test_info_with_a_damaged_config_json(damaged_run, content, message):
    (damaged_run / "config.json").write_bytes(content)
    assert_one_line_error(invoke(["info", str(damaged_run)]), message)


def test_info_with_a_damaged_checkpoint_json(damaged_run):
    (damaged_run / "checkpoints" / "step-000001.json").write_bytes(b"\x89garbage")
    out = assert_one_line_error(invoke(["info", str(damaged_run)]), "step-000001.json is damaged")
    assert "only checkpoint" in out


# ------------------------------------------------------------------------------------- 5. options named


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "{run}", "--seeds", "3-1"],
        ["generate", "{run}", "--seeds", ""],
        ["generate", "{run}", "--class", "nosuch"],
        ["generate", "{run}", "--trunc", "0.5"],
        ["generate", "{run}", "--checkpoint", "7"],
        ["generate", "{run}", "--seeds", "0-4096", "--grid"],
        ["train", "--dry-run", "--set", "lr=-1"],
        ["train", "--dry-run", "--set", "novalue"],
        ["train", "--dry-run", "--model", "vae", "--loss", "hinge"],
        ["info", "/no/such/run"],
    ],
)
def test_messages_name_options_the_command_has(run_dir, args):
    args = [a.replace("{run}", str(run_dir)) for a in args]
    out = assert_one_line_error(invoke(args))
    assert_named_options_exist(args[0], out)


def test_generate_best_without_evaluation_names_where_the_option_is(run_dir):
    out = assert_one_line_error(invoke(["generate", str(run_dir), "--checkpoint", "best"]), "no best checkpoint")
    assert_named_options_exist("generate", out)


def test_resume_with_a_damaged_checkpoint_names_train_options(damaged_run):
    (damaged_run / "checkpoints" / "step-000001.json").write_text("{")
    r = invoke(["train", "--run", damaged_run.name, "--runs-dir", str(damaged_run.parent), "--resume", "--steps", "2"])
    assert_named_options_exist("train", assert_one_line_error(r, "step-000001.json"))


def test_train_without_inception_weights_names_train_options(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    r = invoke(
        ["train", "--data", tiny_data, "--steps", "1", "--runs-dir", str(tmp_path / "r"), "--eval-every", "1", *TINY]
    )
    assert_named_options_exist("train", assert_one_line_error(r, "Inception weights"))


def test_eval_with_a_bad_zip_names_eval_options(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    r = invoke(["eval", "--real", str(bad), "--fake", str(bad), "--extractor", "classifier"])
    assert_named_options_exist("eval", assert_one_line_error(r, "not a valid zip file"))


@pytest.mark.parametrize(
    ("name", "content"),
    [("latest.json", b"[1]"), ("step-000001.json", b"\xff\xfe"), ("step-000001.json", b"[2]")],
)
def test_generate_with_damaged_checkpoint_json(damaged_run, name, content):
    (damaged_run / "checkpoints" / name).write_bytes(content)
    r = invoke(["generate", str(damaged_run), "--seeds", "0"])
    if name == "latest.json":  # a damaged pointer: the newest complete checkpoint is used
        assert r.exit_code == 0, r.output
    else:
        assert "damaged" in assert_one_line_error(r)
