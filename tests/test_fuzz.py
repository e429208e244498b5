"""Property-based tests (Hypothesis): for every generated config value, label or photo file and
painter request body, the answer is a finite result or one of the project's clear errors,
never a traceback. Derandomised (the same examples on every run, in CI too) with small budgets:
the whole file runs in well under a minute on 2 CPU cores."""
from __future__ import annotations

import base64
import io
import json
import typing
from typing import Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import oasisgan
from oasisgan.cli import main
from oasisgan.config import FIELD_NAMES, ConfigError, ModelConfig
from oasisgan.errors import DataError, LabelError

from test_app_helpers import make_test_checkpoint

FUZZ = settings(derandomize=True, deadline=None, max_examples=40, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Any JSON value, the odd ones weighted up: huge, negative, fractional, non-finite, wrong types.
ODD_NUMBERS = st.sampled_from([0, -1, 1, 2, 3, 16.5, 1e30, -1e30, 2**63, 100000, float("nan"),
                               float("inf"), float("-inf"), 1e-300, 0.5, 256, 64])
SCALARS = st.one_of(ODD_NUMBERS, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
                    st.text(max_size=8), st.sampled_from(["true", "false", "1", "none", "nan", "-5", "1e-4"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6),
                                                                                            inner, max_size=4),
                    max_leaves=12)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return oasisgan.load(make_test_checkpoint(tmp_path_factory.mktemp("fuzz") / "toy.ckpt"))


def one_clear_line(text: str) -> None:
    assert "Traceback" not in text
    errors = [line for line in text.strip().splitlines() if ": error: " in line]
    assert len(errors) == 1, text


# --- config.json and --set ------------------------------------------------------------------------
MODEL_FIELDS = sorted(ModelConfig.__dataclass_fields__)


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(MODEL_FIELDS), JSON, min_size=1, max_size=3))
def test_any_config_json_loads_validated_or_names_the_field(model, tmp_path_factory, changes):
    from oasisgan.loading.hub import PretrainedFormatError, read_config

    folder = tmp_path_factory.mktemp("cfg")
    data = json.loads(json.dumps({"model_type": "oasis", **model.config.to_parts("model")["model"]}))
    data.update(changes)
    (folder / "config.json").write_text(json.dumps(data))
    try:
        cfg = read_config(folder)
    except PretrainedFormatError as e:
        assert len(str(e).splitlines()) == 1 and "config" in str(e)
        return
    types = typing.get_type_hints(ModelConfig)
    for name, value in cfg.to_parts("model")["model"].items():  # what was accepted is of its type, finite
        t = types[name]
        if t in (int, Optional[int]) and value is not None:
            assert isinstance(value, int) and not isinstance(value, bool), name
        if t is bool:
            assert isinstance(value, bool), name
        if isinstance(value, float):
            assert np.isfinite(value), name
    assert cfg.height > 0 and cfg.width > 0 and 1 <= cfg.channels_G <= 1024 and cfg.aspect_ratio > 0


@FUZZ
@given(field=st.sampled_from(FIELD_NAMES), text=st.one_of(st.text(max_size=12), SCALARS.map(str)))
def test_any_set_value_gives_a_config_or_one_line(tmp_path_factory, capsys, field, text):
    out = tmp_path_factory.mktemp("run") / "r"
    try:
        rc = main(["train", "--preset", "ade20k", "--out", str(out), "--dry-run", "--set", f"{field}={text}"])
    except SystemExit as e:  # argparse's own refusal (e.g. a value that looks like a flag)
        rc = e.code
    captured = capsys.readouterr()
    if rc == 0:
        assert f"{field}" in captured.out or field in ("class_names", "palette")
    else:
        assert rc == 2
        one_clear_line(captured.err)
    assert not out.exists()


# --- label and photo files --------------------------------------------------------------------
MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]


def image_of(mode: str, arr: np.ndarray) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(arr.astype(np.uint16))
    if mode == "I":
        return Image.fromarray(arr.astype(np.int32), "I")
    if mode == "F":
        return Image.fromarray(arr.astype(np.float32), "F")
    return Image.fromarray((arr % 256).astype(np.uint8), "L").convert(mode)


@st.composite
def image_files(draw):
    """Bytes of an image file (mode, size, format drawn), or a mangled one."""
    mode = draw(st.sampled_from(MODES))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    fill = draw(st.sampled_from(["random", "zero", "max", "nan"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    top = {"I;16": 65535, "I": 2**31 - 1, "F": 1e6}.get(mode, 255)
    arr = {"random": rng.integers(0, top, (h, w), endpoint=True).astype(np.float64),
           "zero": np.zeros((h, w)), "max": np.full((h, w), float(top)),
           "nan": np.full((h, w), np.nan if mode == "F" else 0.0)}[fill]
    fmt = draw(st.sampled_from(["PNG", "TIFF"] + (["JPEG"] if mode in ("L", "RGB", "CMYK") else [])))
    if fmt == "PNG" and mode in ("I", "F", "CMYK"):
        fmt = "TIFF"
    buf = io.BytesIO()
    image_of(mode, arr).save(buf, format=fmt)
    data = buf.getvalue()
    cut = draw(st.sampled_from([None, None, "truncate", "flip", "garbage"]))
    if cut == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif cut == "flip":
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    elif cut == "garbage":
        data = draw(st.binary(max_size=64))
    return data


@FUZZ
@given(data=image_files())
def test_any_label_file_gives_valid_ids_or_a_label_error(model, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("lab") / "label.png"
    path.write_bytes(data)
    try:
        ids = model.read_label(path)
    except LabelError as e:
        assert str(path) in str(e)
        return
    assert ids.dtype == np.int64 and ids.ndim == 2
    assert 0 <= ids.min() and ids.max() < model.config.semantic_nc


@FUZZ
@given(data=image_files())
def test_any_photo_file_gives_an_rgb_image_or_a_data_error(model, tmp_path_factory, data):
    from oasisgan.data.photos import read_photo
    from oasisgan.editing import EditingError, read_image

    path = tmp_path_factory.mktemp("photo") / "photo.img"
    path.write_bytes(data)
    try:
        rgb = read_photo(path)
    except DataError as e:
        assert str(path) in str(e)
        with pytest.raises(EditingError):  # what invert reads: the same verdict
            read_image(path)
        return
    assert rgb.mode == "RGB" and np.asarray(rgb).dtype == np.uint8
    t = read_image(path)
    assert bool(t.isfinite().all()) and -1 <= float(t.min()) and float(t.max()) <= 1


# --- the painter's request bodies --------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@st.composite
def bodies(draw, model):
    """A valid body of an endpoint with some fields replaced by anything, or anything at all."""
    cfg = model.config
    lab = np.zeros((cfg.height, cfg.width), np.uint8)
    png = io.BytesIO()
    Image.fromarray(lab).save(png, format="PNG")
    valid = {
        "synthesize": {"label": {"encoding": "u8", "data": b64(lab.tobytes())}, "noise": {"seeds": [1], "map": None}},
        "decode_upload": {"file": b64(png.getvalue()), "name": "x.png"},
        "label_png": {"label": {"encoding": "u8", "data": b64(lab.tobytes())}},
        "photos.start": {"image": b64(png.getvalue()), "label": b64(png.getvalue()), "steps": 0},
    }
    endpoint = draw(st.sampled_from(sorted(valid)))
    body = draw(st.one_of(JSON, st.just(None)))
    if draw(st.booleans()):
        body = dict(valid[endpoint])
        for key in draw(st.lists(st.sampled_from(sorted(body) + ["seed", "photo", "steps"]), min_size=1, max_size=2)):
            body[key] = draw(JSON | st.sampled_from([b64(b"\x89PNG\r\n\x1a\n" + b"\0" * 20), "data:,", "%%%"]))
    return endpoint, body


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_any_painter_body_gives_an_answer_or_a_request_error(model, data):
    from oasisgan.app import Painter
    from oasisgan.app.core import RequestError

    painter = getattr(test_any_painter_body_gives_an_answer_or_a_request_error, "painter", None)
    if painter is None:
        painter = test_any_painter_body_gives_an_answer_or_a_request_error.painter = Painter(model)
        painter.photos.steps = 1
    endpoint, body = data.draw(bodies(model))
    call = {"synthesize": painter.synthesize, "decode_upload": painter.decode_upload,
            "label_png": lambda b: painter.label_png(painter.parse_label(b)),
            "photos.start": painter.photos.start}[endpoint]
    try:
        out = call(body)
    except RequestError as e:
        assert 400 <= e.status < 600 and str(e)
        return
    assert out is not None
    if endpoint == "photos.start":  # a job started: let it finish before the next example
        import time

        while painter.photos.status(out["job"])["state"] == "running":
            time.sleep(0.01)
