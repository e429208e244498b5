"""`oasis synthesize`: outputs, saved and reused noise, resampling, interpolation, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from oasisgan.loading.checkpoint import save_checkpoint
from oasisgan.cli import main
from oasisgan.config import preset
from oasisgan.nn import Generator
from oasisgan.nn.layers import init_weights, settle_spectral_norms

NAMES = ["unlabeled", "sky", "tree", "grass", "water", "road", "rock", "sand", "snow", "house"]


def blocks(size=64, cell=16, shift=0):
    ij = torch.arange(size) // cell
    return np.roll(((ij[:, None] * 4 + ij[None, :]) % 10).numpy().astype(np.uint8), shift, 1)


def save_random_model(cfg, path, settle: int = 20) -> None:
    """A checkpoint of a seeded, randomly initialised generator whose images vary visibly."""
    torch.manual_seed(0)
    g = Generator.from_config(cfg)
    init_weights(g, gain=1.0)
    settle_spectral_norms(g, settle)
    save_checkpoint(path, config=cfg, ema=g, generator=g)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    save_random_model(preset("toy", semantic_nc=10, channels_G=8, num_res_blocks=3, class_names=NAMES),
                      root / "m.ckpt")
    labels = root / "labels"
    labels.mkdir()
    Image.fromarray(blocks()).save(labels / "a.png")
    Image.fromarray(blocks(shift=8)).save(labels / "b.png")
    # the same map as a colour PNG in the model's palette
    from oasisgan.labels import colorize

    Image.fromarray(colorize(blocks(), None, 10)).save(root / "colour.png")
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255
    Image.fromarray(mask).save(root / "mask.png")
    return root


def oasis(*args) -> int:
    return main(["synthesize", *map(str, args)])


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_folder_samples_grid_and_noise(files, tmp_path):
    out = tmp_path / "o"
    assert oasis("--checkpoint", files / "m.ckpt", "--labels", files / "labels", "--out", out,
                 "--samples", 3, "--seed", 10, "--batch-size", 2) == 0
    for stem in ("a", "b"):
        assert png(out / f"{stem}_label.png").shape == (64, 64, 3)
        assert png(out / f"{stem}_grid.png").shape == (64, 4 * 64 + 3 * 2, 3)
        for k in range(3):
            assert png(out / f"{stem}_s{k:03d}.png").shape == (64, 64, 3)
            assert np.load(out / f"{stem}_s{k:03d}.npy").shape == (16,)
    assert not np.array_equal(png(out / "a_s000.png"), png(out / "a_s001.png"))
    # sample k uses seed S+k: `--seed 12` alone reproduces sample 2 of `--seed 10`
    out2 = tmp_path / "o2"
    assert oasis("--checkpoint", files / "m.ckpt", "--labels", files / "labels" / "a.png", "--out", out2,
                 "--seed", 12) == 0
    assert np.array_equal(png(out2 / "a_s000.png"), png(out / "a_s002.png"))
    # the saved noise reproduces its image
    out3 = tmp_path / "o3"
    assert oasis("--checkpoint", files / "m.ckpt", "--labels", files / "labels" / "a.png", "--out", out3,
                 "--z-file", out / "a_s001.npy") == 0
    assert np.array_equal(png(out3 / "a_s000.png"), png(out / "a_s001.png"))
    # one sample per map: both label maps go through one batched forward pass, same images
    out5 = tmp_path / "o5"
    assert oasis("--checkpoint", files / "m.ckpt", "--labels", files / "labels", "--out", out5,
                 "--seed", 10) == 0
    for stem in ("a", "b"):
        assert np.abs(png(out5 / f"{stem}_s000.png").astype(int) - png(out / f"{stem}_s000.png")).max() <= 1
    # a colour PNG in the palette gives the same images as the index PNG
    out4 = tmp_path / "o4"
    assert oasis("--checkpoint", files / "m.ckpt", "--labels", files / "colour.png", "--out", out4,
                 "--seed", 10) == 0
    assert np.array_equal(png(out4 / "colour_s000.png"), png(out / "a_s000.png"))


def test_resample_classes_and_mask(files, tmp_path):
    out = tmp_path / "r"
    assert oasis("--checkpoint", files / "m.ckpt", "--labels", files / "labels" / "a.png", "--out", out,
                 "--samples", 2, "--resample-classes", "rock,7", "--seed", 3) == 0
    base = png(out / "a_base.png").astype(int)
    region = np.isin(blocks(), [6, 7])
    for k in (1, 2):
        z = np.load(out / f"a_s{k:03d}.npz")["z"]
        assert z.shape == (16, 64, 64)
        d = np.abs(png(out / f"a_s{k:03d}.png").astype(int) - base).mean(-1)
        assert d[region].mean() > 5 * d[~region].mean()
        # the spatial noise file reproduces the variant
        o = tmp_path / f"z{k}"
        assert oasis("--checkpoint", files / "m.ckpt", "--labels", files / "labels" / "a.png", "--out", o,
                     "--z-file", out / f"a_s{k:03d}.npz") == 0
        assert np.array_equal(png(o / "a_s000.png"), png(out / f"a_s{k:03d}.png"))
    out2 = tmp_path / "m"
    assert oasis("--checkpoint", files / "m.ckpt", "--labels", files / "labels" / "a.png", "--out", out2,
                 "--mask", files / "mask.png", "--seed", 3) == 0
    z = np.load(out2 / "a_s001.npz")["z"]
    assert (z[:, :, 32:] == z[:, :1, 40:41]).all() and not (z[:, :, :32] == z[:, :1, 40:41]).any()


def test_interpolate_frames_and_gif(files, tmp_path):
    out = tmp_path / "i"
    assert oasis("--checkpoint", files / "m.ckpt", "--labels", files / "labels" / "a.png", "--out", out,
                 "--interpolate", 5, "--seed", 4) == 0
    frames = sorted(out.glob("a_f*.png"))
    assert len(frames) == 5
    gif = Image.open(out / "a_interp.gif")
    assert gif.n_frames == 5
    # endpoints: the images of seeds 4 and 5
    ref = tmp_path / "ref"
    assert oasis("--checkpoint", files / "m.ckpt", "--labels", files / "labels" / "a.png", "--out", ref,
                 "--samples", 2, "--seed", 4) == 0
    assert np.abs(png(out / "a_f000.png").astype(int) - png(ref / "a_s000.png")).max() <= 1
    assert np.abs(png(out / "a_f004.png").astype(int) - png(ref / "a_s001.png")).max() <= 1


def _error(capsys, *args) -> str:
    assert oasis(*args) == 2
    return capsys.readouterr().err


def test_bad_inputs_exit_2_with_the_file_named(files, tmp_path, capsys):
    ck = files / "m.ckpt"
    bad = tmp_path / "bad"
    bad.mkdir()
    ids = blocks()
    ids[0, 0] = 12
    Image.fromarray(ids).save(bad / "ids.png")
    Image.fromarray(blocks()[:62]).save(bad / "size.png")
    (bad / "broken.png").write_bytes(b"not a png")
    np.save(bad / "z.npy", np.zeros((2, 5), np.float32))
    common = ("--checkpoint", ck, "--out", tmp_path / "o")

    err = _error(capsys, *common, "--labels", bad / "ids.png")
    assert "ids.png" in err and "12" in err and "0..9" in err
    err = _error(capsys, *common, "--labels", bad / "size.png", "--native-size")
    assert "size.png" in err and "62x64" in err and "--size 62x64" not in err and "--size 64x64" in err
    err = _error(capsys, *common, "--labels", bad / "broken.png")
    assert "broken.png" in err and "cannot read" in err
    err = _error(capsys, *common, "--labels", tmp_path / "missing.png")
    assert "missing.png" in err and "not found" in err
    err = _error(capsys, *common, "--labels", files / "labels", "--z-file", bad / "z.npy")
    assert "z.npy" in err and "z_dim 16" in err
    err = _error(capsys, *common, "--labels", files / "labels", "--size", "62x64")
    assert "--size 62x64" in err and "multiples of 4" in err
    err = _error(capsys, *common, "--labels", files / "labels", "--resample-classes", "skye")
    assert "unknown class 'skye'" in err
    err = _error(capsys, *common, "--labels", files / "labels", "--mask", tmp_path / "nomask.png")
    assert "nomask.png" in err
    err = _error(capsys, "--checkpoint", tmp_path / "none.ckpt", "--labels", files / "labels", "--out", tmp_path)
    assert "none.ckpt" in err
    # --size fixes the size; --skip-bad goes on past bad files and still exits 2
    assert oasis(*common, "--labels", bad / "size.png", "--size", "64x64") == 0
    assert oasis(*common, "--labels", bad, "--skip-bad") == 2
    err = capsys.readouterr().err
    assert "ids.png" in err and "broken.png" in err


def test_label_maps_of_another_size_are_synthesised_at_the_training_size(files, tmp_path, capsys):
    """A full-size label map (here 4x the 64x64 training size) comes out at the training size unless
    --native-size or --size ask otherwise; far above the training size there is a warning."""
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.kron(blocks(), np.ones((4, 4), np.uint8))).save(big / "full.png")  # 256x256
    ck = files / "m.ckpt"
    assert oasis("--checkpoint", ck, "--labels", big, "--out", tmp_path / "o1") == 0
    err = capsys.readouterr().err
    assert "output size: 64x64 (the model's training size" in err and "resized 1 label map" in err
    assert "warning" not in err
    assert png(tmp_path / "o1/full_s000.png").shape == (64, 64, 3)
    assert oasis("--checkpoint", ck, "--labels", big, "--out", tmp_path / "o2", "--native-size") == 0
    err = capsys.readouterr().err
    assert "256x256 is 16x the area of the training size 64x64" in err
    assert png(tmp_path / "o2/full_s000.png").shape == (256, 256, 3)
    assert oasis("--checkpoint", ck, "--labels", big, "--out", tmp_path / "o3", "--size", "128x128") == 0
    assert "output size: 128x128 (--size" in capsys.readouterr().err
    assert png(tmp_path / "o3/full_s000.png").shape == (128, 128, 3)


def test_a_full_size_cityscapes_label_map_is_synthesised_at_the_training_size(tmp_path, capsys):
    """The issue's case: a Cityscapes model (trained at a 1:2 size) given a 1024x2048 gtFine
    labelIds map synthesises at its training size, not at the map's, and says so."""
    from conftest import SHARED

    cfg = preset("cityscapes", channels_G=8, crop_size=64, load_size=64, z_dim=8, spade_hidden=16)
    assert (cfg.height, cfg.width) == (32, 64)
    save_random_model(cfg, tmp_path / "city.ckpt", settle=5)
    labels = tmp_path / "labels"
    labels.mkdir()
    real = sorted((SHARED / "datasets/cityscapes/gtFine").rglob("*_gtFine_labelIds.png"))[:1]
    if real:  # a real full-size map where the dataset samples are at hand
        (labels / real[0].name).write_bytes(real[0].read_bytes())
    else:
        ids = (np.add.outer(np.arange(1024) // 128, np.arange(2048) // 128) % 34).astype(np.uint8)
        Image.fromarray(ids).save(labels / "frankfurt_000000_000294_gtFine_labelIds.png")
    assert Image.open(next(labels.iterdir())).size == (2048, 1024)
    assert oasis("--checkpoint", tmp_path / "city.ckpt", "--labels", labels, "--out", tmp_path / "o") == 0
    err = capsys.readouterr().err
    assert "output size: 32x64 (the model's training size" in err and "resized 1 label map" in err
    assert "warning" not in err
    (out,) = sorted((tmp_path / "o").glob("*_s000.png"))
    assert png(out).shape == (32, 64, 3)
