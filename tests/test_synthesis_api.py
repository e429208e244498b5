"""Python synthesis API: determinism, CPU noise, local resampling, interpolation, label checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import oasisgan
from oasisgan import synthesis as S
from oasisgan.loading.checkpoint import save_checkpoint
from oasisgan.config import preset
from oasisgan.errors import LabelError
from oasisgan.labels import one_hot
from oasisgan.nn import Generator
from oasisgan.nn.layers import init_weights, settle_spectral_norms

NAMES = ["unlabeled", "sky", "tree", "grass", "water", "road", "rock", "sand", "snow", "house"]


def blocks_label(n: int = 10, size: int = 64, cell: int = 16) -> torch.Tensor:
    """A (size, size) label of cell x cell squares with ids (i*4+j) % n."""
    ij = torch.arange(size) // cell
    return (ij[:, None] * 4 + ij[None, :]) % n


def lively_generator(cfg, seed: int = 0) -> Generator:
    """A tiny random generator whose output depends strongly on its input: unit-gain init (the
    official 0.02 gives near-zero outputs) and BatchNorm statistics collected in train mode, as
    after training; eval mode, frozen."""
    torch.manual_seed(seed)
    g = Generator.from_config(cfg)
    init_weights(g, gain=1.0)
    settle_spectral_norms(g, 20)
    lab = one_hot(blocks_label(cfg.semantic_nc)[None].expand(4, -1, -1), cfg.semantic_nc)
    g.train()
    with torch.no_grad():
        for k in range(5):
            g(lab, S.sample_noise(g, 4, seed=100 + k))
    return g.eval().requires_grad_(False)


def tiny_cfg(**kw):
    kw = dict(dict(semantic_nc=10, channels_G=8, num_res_blocks=3, class_names=NAMES), **kw)
    return preset("toy", **kw)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    cfg = tiny_cfg()
    g = lively_generator(cfg)
    path = tmp_path_factory.mktemp("syn") / "tiny.ckpt"
    save_checkpoint(path, config=cfg, ema=g, generator=g)
    return oasisgan.load(path)


def test_methods_bound(model):
    for name in ("synthesize", "sample_noise", "class_mask", "resample_region", "resample_classes",
                 "mix_noise", "interpolate_noise", "prepare_label", "read_label"):
        assert callable(getattr(model, name)), name


def test_synthesize_shapes_and_range(model):
    lab = blocks_label()
    x = model.synthesize(lab, seed=0)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert x.abs().max() <= 1 and x.std() > 0.05
    assert model.synthesize(lab.numpy(), seed=0).equal(x)  # numpy ids
    assert model.synthesize(lab[None].numpy().astype(np.uint8), seed=0).equal(x)  # (B, H, W) uint8
    assert torch.allclose(model.synthesize(one_hot(lab[None], 10), seed=0), x, atol=1e-5)  # one-hot
    assert model.synthesize(lab, seed=[0, 1, 2]).shape == (3, 3, 64, 64)  # one label, 3 noises


def test_determinism_per_seed(model):
    lab = blocks_label()
    a, b, c = (model.synthesize(lab, seed=s) for s in (7, 7, 8))
    assert a.equal(b)
    assert (a - c).abs().mean() > 0.01


def test_noise_drawn_on_cpu_generator(model):
    z = model.sample_noise(3, seed=5)
    ref = torch.randn(3, model.config.z_dim, generator=torch.Generator("cpu").manual_seed(5))
    assert z.device.type == "cpu" and z.equal(ref)
    # a list of seeds: row k is the noise of seed k alone (what `oasis synthesize` uses per sample)
    zs = model.sample_noise(seed=[4, 5])
    assert zs[1:].equal(model.sample_noise(1, seed=5))
    # synthesize(seed=) draws exactly this noise, wherever the model lives
    lab = blocks_label()
    assert model.synthesize(lab[None].expand(3, -1, -1), seed=5).equal(model.synthesize(lab, z=z))
    spatial = model.sample_noise(2, seed=5, size=(64, 64))
    assert spatial.shape == (2, model.config.z_dim, 64, 64)
    assert spatial[:, :, 13, 41].equal(model.sample_noise(2, seed=5))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_same_images_on_cpu_and_gpu(model):
    lab = blocks_label()
    cpu = model.synthesize(lab, seed=3)
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    model.to("cuda")
    try:
        gpu_tf32 = model.synthesize(lab, seed=3)  # PyTorch's default: TF32 convolutions
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        gpu = model.synthesize(lab, seed=3)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
        model.to("cpu")
    assert (cpu - gpu).abs().max() < 1e-4  # same noise: only float rounding differs
    assert (cpu - gpu_tf32).abs().max() < 1e-2  # TF32: ~1e-3, at most one uint8 level


def test_batch_size_chunks_give_same_images(model):
    lab = blocks_label()
    z = model.sample_noise(5, seed=1)
    assert torch.allclose(model.synthesize(lab, z=z, batch_size=2), model.synthesize(lab, z=z), atol=1e-5)


def _diff_inside_outside(model, lab, mask):
    z = model.sample_noise(1, seed=1)
    a = model.synthesize(lab, z=z)
    zr = model.resample_region(z, mask, seed=5)
    assert zr.shape == (1, model.config.z_dim, 64, 64)
    assert zr[0, :, ~mask].eq(z[0, :, None]).all()  # same noise outside
    assert not zr[0, :, mask].eq(z[0, :, None]).any()  # new noise inside
    b = model.synthesize(lab, z=zr)
    d = (a - b).abs().mean(1)[0]
    far = F.max_pool2d(mask[None, None].float(), 17, 1, 8)[0, 0] == 0  # >= 8 px from the region
    return d[mask].mean().item(), d[~mask].mean().item(), d[far].mean().item()


@pytest.mark.parametrize("region", ["class", "half"])
def test_local_resampling_changes_the_region_far_more(model, region):
    lab = blocks_label()
    if region == "class":
        mask = model.class_mask(lab, "rock")  # one 16x16 square (id 6) inside the image
        assert mask.sum() == 256
    else:
        mask = torch.zeros(64, 64, dtype=torch.bool)
        mask[:, :32] = True
    inside, outside, far = _diff_inside_outside(model, lab, mask)
    assert inside > 0.1  # the region really changes (images are in [-1, 1])
    # the rest changes only through the receptive field, near the region's border
    assert inside > 5 * outside, (inside, outside)
    assert inside > 15 * far, (inside, far)


def test_resample_classes_and_mix(model):
    lab = blocks_label()
    z = model.sample_noise(1, seed=0)
    zc = model.resample_classes(lab, z, ["sky", 2], seed=9)
    m = model.class_mask(lab, "sky,tree")
    assert m.equal((lab == 1) | (lab == 2))
    other = torch.randn(1, model.config.z_dim, generator=torch.Generator().manual_seed(9))
    assert zc.equal(model.mix_noise(z, other, m))
    assert model.class_mask(one_hot(lab[None], 10), [3]).equal((lab == 3)[None])


def test_interpolation_endpoints(model):
    lab = blocks_label()
    z0, z1 = model.sample_noise(1, seed=0), model.sample_noise(1, seed=1)
    for mode in ("linear", "slerp"):
        zs = model.interpolate_noise(z0, z1, 5, mode=mode)
        assert zs.shape == (5, model.config.z_dim)
        assert zs[0].equal(z0[0]) and zs[-1].equal(z1[0])
        frames = model.synthesize(lab, z=zs)
        assert torch.allclose(frames[0], model.synthesize(lab, z=z0)[0], atol=1e-5)
        assert torch.allclose(frames[-1], model.synthesize(lab, z=z1)[0], atol=1e-5)
        steps = (frames[1:] - frames[:-1]).abs().mean((1, 2, 3))
        assert (steps > 0).all()
    lin = S.interpolate_noise(z0, z1, 3)
    assert torch.allclose(lin[1], (z0[0] + z1[0]) / 2)
    # local interpolation: a vector and a spatial map mix
    zr = model.resample_region(z0, lab == 3, seed=2)
    zs = S.interpolate_noise(z0, zr, 4)
    assert zs.shape == (4, model.config.z_dim, 64, 64)
    assert zs[:, :, lab != 3].eq(z0[0][None, :, None]).all()


def test_bad_labels_give_clear_errors(model):
    lab = blocks_label()
    bad = lab.clone()
    bad[0, 0] = 12
    with pytest.raises(LabelError, match=r"12 .*outside this model's classes 0\.\.9"):
        model.synthesize(bad)
    with pytest.raises(LabelError, match="-1"):
        model.synthesize(lab - 1)
    with pytest.raises(LabelError, match=r"62x64.*multiples of 4.*--size 64x64") as e:
        model.synthesize(lab[:62].numpy())
    assert "resize_label" in str(e.value)
    with pytest.raises(LabelError, match="10 channels"):
        model.synthesize(torch.zeros(1, 7, 64, 64))
    with pytest.raises(LabelError, match="non-integer"):
        model.synthesize(torch.full((64, 64), 0.5))
    with pytest.raises(LabelError, match="labels/x.png"):
        model.prepare_label(bad, name="labels/x.png")
    # resize_label gives a valid map (nearest)
    fixed = S.resize_label(lab[:60].numpy(), S.valid_size(60, 64, 4))
    assert fixed.shape == (60, 64) and set(np.unique(fixed)) <= set(range(10))
    assert S.resize_label(lab[:62].numpy(), (64, 64)).shape == (64, 64)


def test_bad_noise_gives_clear_errors(model):
    lab = blocks_label()
    with pytest.raises(S.SynthesisError, match="z_dim 5.*z_dim 16"):
        model.synthesize(lab, z=torch.randn(1, 5))
    with pytest.raises(S.SynthesisError, match="32x32, the label map is 64x64"):
        model.synthesize(lab, z=torch.randn(1, 16, 32, 32))
    with pytest.raises(S.SynthesisError, match="batch sizes differ"):
        model.synthesize(lab[None].expand(2, -1, -1), z=torch.randn(3, 16))
    with pytest.raises(S.SynthesisError, match="not both"):
        model.synthesize(lab, z=torch.randn(1, 16), seed=1)
    with pytest.raises(S.SynthesisError, match="unknown class 'skye'; did you mean sky"):
        model.class_mask(lab, "skye")
    with pytest.raises(S.SynthesisError, match="outside this model's classes"):
        model.class_mask(lab, 10)


def test_noise_files_roundtrip(tmp_path, model):
    z = model.sample_noise(2, seed=0)
    zs = model.resample_region(z, blocks_label() == 3, seed=1)
    for name, t in (("a.npy", z), ("b.pt", z), ("c.npz", zs)):
        S.save_noise(tmp_path / name, t)
        assert S.load_noise(tmp_path / name, 16).equal(t)
    assert S.load_noise(tmp_path / "a.npy").shape == (2, 16)
    np.save(tmp_path / "one.npy", z[0].numpy())
    assert S.load_noise(tmp_path / "one.npy", 16).shape == (1, 16)
    with pytest.raises(S.SynthesisError, match="a.npy.*z_dim 8"):
        S.load_noise(tmp_path / "a.npy", 8)
    with pytest.raises(S.SynthesisError, match="c.npz.*32x32"):
        S.load_noise(tmp_path / "c.npz", 16, size=(32, 32))
    (tmp_path / "junk.npy").write_text("junk")
    with pytest.raises(S.SynthesisError, match="junk.npy: cannot read noise file"):
        S.load_noise(tmp_path / "junk.npy")
