"""Networks: shapes for every preset, exact official parameter counts, eval-mode sanity."""
import json

import pytest
import torch

from oasisgan import Discriminator, Generator, preset
from oasisgan.cli import main as cli_main
from oasisgan.labels import one_hot
from oasisgan.nn.layers import count_parameters

OFFICIAL_COUNTS = {  # generator, discriminator: boschresearch/OASIS, every parameter counted
    "ade20k": (74_314_691, 22_258_904),
    "cityscapes": (71_107_523, 22_251_364),
    "coco-stuff": (75_199_427, 22_260_984),
}


@pytest.mark.parametrize("name", list(OFFICIAL_COUNTS))
def test_exact_official_parameter_counts(name):
    cfg = preset(name)
    g, d = Generator.from_config(cfg, init=False), Discriminator.from_config(cfg, init=False)
    assert (count_parameters(g), count_parameters(d)) == OFFICIAL_COUNTS[name]


@pytest.mark.parametrize("name", list(OFFICIAL_COUNTS))
def test_info_json_reports_official_counts(name, capsys):
    assert cli_main(["info", "--preset", name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["generator_params"], info["discriminator_params"]) == OFFICIAL_COUNTS[name]


@pytest.mark.parametrize("name", ["ade20k", "ade20k-outdoor", "cityscapes", "coco-stuff"])
def test_shapes_every_preset_reduced_width(name):
    cfg = preset(name, channels_G=4, channels_D=4, crop_size=64 if name != "cityscapes" else 128)
    g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    label = one_hot(torch.randint(0, cfg.semantic_nc, (2, cfg.height, cfg.width)), cfg.semantic_nc)
    img = g(label)
    assert img.shape == (2, 3, cfg.height, cfg.width)
    assert d(img).shape == (2, cfg.semantic_nc + 1, cfg.height, cfg.width)


def test_any_multiple_of_32_and_aspect_ratio():
    cfg = preset("ade20k", channels_G=4)
    g = Generator.from_config(cfg).eval()
    for h, w in [(32, 96), (64, 32), (96, 160)]:
        label = one_hot(torch.randint(0, 151, (1, h, w)), 151)
        assert g(label).shape == (1, 3, h, w)
    with pytest.raises(ValueError, match="multiple of 32"):
        g(one_hot(torch.randint(0, 151, (1, 48, 40)), 151))


def test_z_broadcast_equals_constant_spatial_z_and_is_used():
    cfg = preset("ade20k", channels_G=4)
    g = Generator.from_config(cfg).eval()
    label = one_hot(torch.randint(0, 151, (2, 64, 64)), 151)
    z = torch.randn(2, 64)
    a = g(label, z)
    b = g(label, z[:, :, None, None].expand(2, 64, 64, 64).contiguous())
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, g(label, torch.randn(2, 64)))  # the official G ignores z; ours does not
    with pytest.raises(ValueError, match="z has shape"):
        g(label, torch.randn(2, 32))


def test_noise_from_torch_generator_is_reproducible():
    cfg = preset("ade20k", channels_G=4)
    g = Generator.from_config(cfg).eval()
    label = one_hot(torch.randint(0, 151, (1, 32, 32)), 151)
    a = g(label, generator=torch.Generator().manual_seed(3))
    b = g(label, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["ade20k", "cityscapes"])
def test_fresh_network_is_finite_in_eval_mode(name):
    torch.manual_seed(0)
    cfg = preset(name)  # full size: the official networks give inf/NaN here
    g, d = Generator.from_config(cfg).eval(), Discriminator.from_config(cfg).eval()
    label = one_hot(torch.randint(0, cfg.semantic_nc, (1, cfg.height // 4, cfg.width // 4)), cfg.semantic_nc)
    with torch.no_grad():
        img = g(label)
        out = d(img)
    assert torch.isfinite(img).all() and torch.isfinite(out).all()


def test_no_3d_noise_and_no_spectral_norm_options():
    cfg = preset("ade20k", channels_G=4, noise_3d=False, spectral_norm=False, param_free_norm="instance")
    g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    assert g.fc.in_channels == 151
    assert not any("weight_orig" in k for k in list(g.state_dict()) + list(d.state_dict()))
    label = one_hot(torch.randint(0, 151, (1, 64, 64)), 151)  # instance norm needs > 1 pixel at 1/32
    assert d(g(label)).shape == (1, 152, 64, 64)


def test_config_is_split_by_concern_with_flat_access():
    """Model / data / train / runtime parts; flat names read and write through; old flat
    checkpoints and YAML still load; --set parses by the dataclass types."""
    from oasisgan.config import (ConfigError, DataConfig, ModelConfig, OASISConfig, RuntimeConfig,
                                 TrainConfig, parse_value, preset)

    cfg = preset("cityscapes", channels_G=16, batch_size=4, amp="bf16")
    assert isinstance(cfg.model, ModelConfig) and isinstance(cfg.data, DataConfig)
    assert isinstance(cfg.train, TrainConfig) and isinstance(cfg.runtime, RuntimeConfig)
    assert cfg.model.channels_G == cfg.channels_G == 16 and cfg.train.batch_size == 4
    assert cfg.runtime.amp == "bf16" and cfg.height == cfg.model.height == 256
    assert OASISConfig.from_dict(cfg.to_dict()) == cfg == OASISConfig.from_dict(cfg.to_parts())
    old = dict(cfg.to_dict(), retired_field=1)  # a flat checkpoint config of another version
    assert OASISConfig.from_dict(old, strict=False) == cfg
    with pytest.raises(ConfigError, match="retired_field"):
        OASISConfig.from_dict(old)
    assert parse_value("iters", "null") is None and parse_value("iters", "12") == 12
    assert parse_value("sn_init_gain", "1") == 1.0 and parse_value("no_flip", "on") is True
    assert parse_value("palette", "[[1, 2, 3]]") == [[1, 2, 3]] and parse_value("amp", "bf16") == "bf16"
    with pytest.raises(ConfigError, match="cannot read 'x' as int"):
        parse_value("batch_size", "x")
    with pytest.raises(ConfigError, match="cannot read"):
        parse_value("palette", "{}")
    with pytest.raises(AttributeError):
        cfg.not_a_field = 1
