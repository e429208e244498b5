"""Official checkpoint import: key mapping both ways, checked against a direct computation.

The state dicts here are built from the official layout alone (key names and shapes written
out below), and the reference forward passes are plain functional code, independent of our
modules.
"""
import argparse
import pickle

import pytest
import torch
import torch.nn.functional as F

import oasisgan
from oasisgan.cli import main as cli_main
from oasisgan.labels import one_hot
from oasisgan.loading.official import (OfficialCheckpointError, convert_official, export_official, official_to_ours,
                               ours_to_official, read_official_options)

N, ZD, CH = 5, 3, 2  # classes, z_dim, channels_G
GW = [16 * CH, 16 * CH, 16 * CH, 8 * CH, 4 * CH, 2 * CH, CH]
DW = [3, 128, 128, 256, 256, 512, 512]


def sn_conv(sd, name, cout, cin, k, bias=True, g=None):
    w = torch.randn(cout, cin, k, k, generator=g) * 0.2
    u = F.normalize(torch.randn(cout, generator=g), dim=0)
    for _ in range(5):  # u/v as a trained network has them (power iteration), else sigma is arbitrary
        v = F.normalize(w.flatten(1).t() @ u, dim=0)
        u = F.normalize(w.flatten(1) @ v, dim=0)
    sd[f"{name}.weight_orig"], sd[f"{name}.weight_u"], sd[f"{name}.weight_v"] = w, u, v
    if bias:
        sd[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.1


def conv(sd, name, cout, cin, k, g):
    sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (0.5 / (cin * k * k) ** 0.5)
    sd[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.1


def spade(sd, name, c, g):
    sd[f"{name}.first_norm.running_mean"] = torch.randn(c, generator=g) * 0.1
    sd[f"{name}.first_norm.running_var"] = torch.rand(c, generator=g) + 0.5
    sd[f"{name}.first_norm.num_batches_tracked"] = torch.tensor(7)
    conv(sd, f"{name}.mlp_shared.0", 128, N + ZD, 3, g)
    conv(sd, f"{name}.mlp_gamma", c, 128, 3, g)
    conv(sd, f"{name}.mlp_beta", c, 128, 3, g)


def official_generator_state(g):
    sd = {}
    conv(sd, "fc", GW[0], N + ZD, 3, g)
    for i in range(6):
        fin, fout = GW[i], GW[i + 1]
        mid = min(fin, fout)
        sn_conv(sd, f"body.{i}.conv_0", mid, fin, 3, g=g)
        sn_conv(sd, f"body.{i}.conv_1", fout, mid, 3, g=g)
        if fin != fout:
            sn_conv(sd, f"body.{i}.conv_s", fout, fin, 1, bias=False, g=g)
        spade(sd, f"body.{i}.norm_0", fin, g)
        spade(sd, f"body.{i}.norm_1", mid, g)
        if fin != fout:
            spade(sd, f"body.{i}.norm_s", fin, g)
    conv(sd, "conv_img", 3, GW[-1], 3, g)
    return sd


def official_discriminator_state(g):
    sd = {}
    ups = [(DW[-1], DW[-2])] + [(2 * DW[-1 - i], DW[-2 - i]) for i in range(1, 5)] + [(2 * DW[1], 64)]
    for part, blocks in (("body_down", [(DW[i], DW[i + 1]) for i in range(6)]), ("body_up", ups)):
        for i, (fin, fout) in enumerate(blocks):
            c1 = 0 if (part == "body_down" and i == 0) else (2 if part == "body_up" else 1)
            sn_conv(sd, f"{part}.{i}.conv1.{c1}", fout, fin, 3, g=g)
            sn_conv(sd, f"{part}.{i}.conv2.1", fout, fout, 3, g=g)
            if fin != fout:
                sn_conv(sd, f"{part}.{i}.conv_s", fout, fin, 1, g=g)
    conv(sd, "layer_up_last", N + 1, 64, 1, g)
    return sd


def sn_weight(sd, name):
    w = sd[f"{name}.weight_orig"]
    sigma = torch.dot(sd[f"{name}.weight_u"], w.flatten(1) @ sd[f"{name}.weight_v"])
    return w / sigma


def ref_generator(sd, label, z):
    b, _, h, w = label.shape
    seg = torch.cat([z[:, :, None, None].expand(b, ZD, h, w), label], 1)

    def spade_f(name, x):
        rm, rv = sd[f"{name}.first_norm.running_mean"], sd[f"{name}.first_norm.running_var"]
        xn = (x - rm[None, :, None, None]) / torch.sqrt(rv[None, :, None, None] + 1e-5)
        s = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        a = F.relu(F.conv2d(s, sd[f"{name}.mlp_shared.0.weight"], sd[f"{name}.mlp_shared.0.bias"], padding=1))
        gamma = F.conv2d(a, sd[f"{name}.mlp_gamma.weight"], sd[f"{name}.mlp_gamma.bias"], padding=1)
        beta = F.conv2d(a, sd[f"{name}.mlp_beta.weight"], sd[f"{name}.mlp_beta.bias"], padding=1)
        return xn * (1 + gamma) + beta

    x = F.conv2d(F.interpolate(seg, size=(h // 32, w // 32)), sd["fc.weight"], sd["fc.bias"], padding=1)
    for i in range(6):
        p = f"body.{i}"
        if f"{p}.conv_s.weight_orig" in sd:
            xs = F.conv2d(spade_f(f"{p}.norm_s", x), sn_weight(sd, f"{p}.conv_s"))
        else:
            xs = x
        dx = F.conv2d(F.leaky_relu(spade_f(f"{p}.norm_0", x), 0.2), sn_weight(sd, f"{p}.conv_0"),
                      sd[f"{p}.conv_0.bias"], padding=1)
        dx = F.conv2d(F.leaky_relu(spade_f(f"{p}.norm_1", dx), 0.2), sn_weight(sd, f"{p}.conv_1"),
                      sd[f"{p}.conv_1.bias"], padding=1)
        x = xs + dx
        if i < 5:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
    return torch.tanh(F.conv2d(F.leaky_relu(x, 0.2), sd["conv_img.weight"], sd["conv_img.bias"], padding=1))


def ref_discriminator(sd, x):
    def c(name, h, k):
        return F.conv2d(h, sn_weight(sd, name), sd[f"{name}.bias"], padding=k // 2)

    skips = []
    for i in range(6):
        p = f"body_down.{i}"
        first = i == 0
        h = x if first else F.leaky_relu(x, 0.2)
        h = c(f"{p}.conv1.{0 if first else 1}", h, 3)
        h = F.avg_pool2d(c(f"{p}.conv2.1", F.leaky_relu(h, 0.2), 3), 2)
        if first:
            s = c(f"{p}.conv_s", F.avg_pool2d(x, 2), 1)
        else:
            s = F.avg_pool2d(c(f"{p}.conv_s", x, 1), 2) if f"{p}.conv_s.weight_orig" in sd else F.avg_pool2d(x, 2)
        x = s + h
        skips.append(x)
    for i in range(6):
        p = f"body_up.{i}"
        if i > 0:
            x = torch.cat([skips[-i - 1], x], 1)
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        h = c(f"{p}.conv1.2", F.interpolate(F.leaky_relu(x, 0.2), scale_factor=2, mode="nearest"), 3)
        h = c(f"{p}.conv2.1", F.leaky_relu(h, 0.2), 3)
        s = c(f"{p}.conv_s", up, 1) if f"{p}.conv_s.weight_orig" in sd else up
        x = s + h
    return F.conv2d(x, sd["layer_up_last.weight"], sd["layer_up_last.bias"])


def cfg_small():
    return oasisgan.preset("ade20k", semantic_nc=N, z_dim=ZD, channels_G=CH, crop_size=64, load_size=64)


def rel(a, b):
    return float((a - b).abs().max() / a.abs().max())


def test_official_keys_load_and_match_direct_computation():
    g = torch.Generator().manual_seed(0)
    gsd, dsd = official_generator_state(g), official_discriminator_state(g)
    cfg = cfg_small()
    G = oasisgan.Generator.from_config(cfg, init=False)
    D = oasisgan.Discriminator.from_config(cfg, init=False)
    G.load_state_dict(official_to_ours(gsd, G.state_dict()))  # strict: every official key, no other
    D.load_state_dict(official_to_ours(dsd, D.state_dict()))
    G.eval(), D.eval()
    label = one_hot(torch.randint(0, N, (2, 64, 64), generator=g), N)
    z = torch.randn(2, ZD, generator=g)
    with torch.no_grad():
        img = G(label, z)
        assert rel(ref_generator(gsd, label, z), img) < 1e-5
        assert rel(ref_discriminator(dsd, img), D(img)) < 1e-5
    # and back: our state dict written in the official layout has exactly the official keys
    back = ours_to_official(G.state_dict())
    assert set(back) == set(gsd) and all(torch.equal(back[k], gsd[k]) for k in gsd)


def test_mapping_handles_dataparallel_parametrized_sn_and_missing_bn_counters():
    cfg = cfg_small()
    G = oasisgan.Generator.from_config(cfg, init=False)
    sd = official_generator_state(torch.Generator().manual_seed(1))
    variant = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue  # older SyncBatchNorm files have none
        k = k.replace(".weight_orig", ".parametrizations.weight.original") \
             .replace(".weight_u", ".parametrizations.weight.0._u").replace(".weight_v", ".parametrizations.weight.0._v")
        variant["module." + k] = v
    G.load_state_dict(official_to_ours(variant, G.state_dict()))


def write_official_run(tmp_path, which="best", with_opt=True):
    g = torch.Generator().manual_seed(0)
    gsd, dsd = official_generator_state(g), official_discriminator_state(g)
    run = tmp_path / "label2ade"
    (run / "models").mkdir(parents=True)
    torch.save(gsd, run / "models" / f"{which}_G.pth")
    torch.save({k: v * 1.0 if v.is_floating_point() else v for k, v in gsd.items()}, run / "models" / f"{which}_EMA.pth")
    torch.save(dsd, run / "models" / f"{which}_D.pth")
    if with_opt:
        opt = argparse.Namespace(dataset_mode="ade20k", channels_G=CH, z_dim=ZD, no_3dnoise=False,
                                 EMA_decay=0.9999, lambda_labelmix=10.0, num_res_blocks=6, param_free_norm="syncbatch",
                                 no_spectral_norm=False, gpu_ids="0", checkpoints_dir="./checkpoints", name="label2ade")
        with open(run / "opt.pkl", "wb") as f:
            pickle.dump(opt, f)
    return run, gsd, dsd


def test_convert_official_reproduces_official_outputs(tmp_path):
    run, gsd, dsd = write_official_run(tmp_path)
    out = convert_official(run, tmp_path / "m.ckpt", which="best", semantic_nc=N, crop_size=64, load_size=64)
    model = oasisgan.load(out)
    assert model.config.channels_G == CH and model.config.z_dim == ZD  # read from opt.pkl
    label = one_hot(torch.randint(0, N, (1, 64, 64)), N)
    z = torch.randn(1, ZD)
    with torch.no_grad():
        img = model.generator(label, z)
        assert rel(ref_generator(gsd, label, z), img) < 1e-5
        assert rel(ref_discriminator(dsd, img), model.discriminator(img)) < 1e-5
    written = export_official(out, tmp_path / "back", which="latest")
    assert set(torch.load(written["EMA"], weights_only=True)) == set(gsd)


def test_convert_official_cli_and_errors(tmp_path, capsys):
    run, _, _ = write_official_run(tmp_path, which="latest", with_opt=False)
    (run / "opt.txt").write_text("----------------- Options ---------------\n"
                                 f"               channels_G: {CH:<30}\t[default: 64]\n"
                                 f"                    z_dim: {ZD:<30}\t[default: 64]\n"
                                 "             dataset_mode: ade20k                        \t[default: coco]\n"
                                 "----------------- End -------------------\n")
    assert read_official_options(run)["channels_G"] == CH
    code = cli_main(["convert-official", str(run), "--which", "latest", "--set", f"semantic_nc={N}",
                     "--set", "crop_size=64", "--set", "load_size=64", "--out", str(tmp_path / "c.ckpt"), "--verify"])
    assert code == 0 and "verified" in capsys.readouterr().out
    with pytest.raises(OfficialCheckpointError, match="no best_G.pth or best_EMA.pth"):
        convert_official(run, tmp_path / "x.ckpt", which="best")
    # wrong preset: a clear message, not a size-mismatch traceback
    assert cli_main(["convert-official", str(run), "--which", "latest", "--preset", "cityscapes",
                     "--out", str(tmp_path / "y.ckpt")]) == 2
    assert "does not fit" in capsys.readouterr().err


def test_opt_pkl_with_code_is_refused(tmp_path):
    run, _, _ = write_official_run(tmp_path, with_opt=False)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(run / "opt.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(OfficialCheckpointError, match="not allowed"):
        read_official_options(run)
