#!/usr/bin/env python
"""Check oasisgan against the official OASIS code, side by side, on random weights.

    python scripts/compare_official.py --official-repo PATH/TO/OASIS [--preset ade20k] [--channels-g 16] [--size 64]

Needs a checkout of boschresearch/OASIS (only its models/ folder is imported; no torchvision).
It builds the official generator and discriminator, perturbs their state (train-mode forwards
update BatchNorm statistics and spectral-norm vectors), writes them as an official run folder
(models/latest_{G,EMA,D}.pth + opt.pkl), converts that with `oasisgan.loading.official.convert_official`,
and compares: eval-mode outputs of G (same one-hot label and z) and D; train-mode losses of the
official `losses_computer` (N+1 CE with class balancing, LabelMix) against ours; and the
gradients of one G step and one D step. Prints the relative differences; exits 1 above 1e-5.
"""
from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_harness import import_official, official_opt, rel, with_z  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official-repo", required=True)
    ap.add_argument("--preset", default="ade20k", choices=["ade20k", "cityscapes", "coco-stuff"])
    ap.add_argument("--channels-g", type=int, default=16)
    ap.add_argument("--size", type=int, default=64, help="image width (crop_size)")
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()
    official = import_official(args.official_repo)
    off_g, off_d, off_losses = official.generator, official.discriminator, official.losses
    from oasisgan import losses as L
    from oasisgan.config import preset
    from oasisgan.labels import one_hot
    from oasisgan.loading.model import load
    from oasisgan.nn.layers import init_weights
    from oasisgan.loading.official import convert_official

    torch.manual_seed(0)
    cfg = preset(args.preset, channels_G=args.channels_g, crop_size=args.size, load_size=args.size)
    opt = official_opt(cfg, args.batch)
    G, D = off_g.OASIS_Generator(opt), off_d.OASIS_Discriminator(opt)
    init_weights(G), init_weights(D)
    b, h, w = args.batch, cfg.height, cfg.width
    ids = torch.randint(0, cfg.semantic_nc, (b, h // 8, w // 8)).repeat_interleave(8, 1).repeat_interleave(8, 2)
    label = one_hot(ids, cfg.semantic_nc)
    real = torch.rand(b, 3, h, w) * 2 - 1
    z = torch.randn(b, cfg.z_dim)

    # perturb the state: a few train-mode forwards (BN stats, spectral-norm vectors)
    with torch.no_grad():
        for _ in range(3):
            D(with_z(lambda: G(label), torch.randn(b, cfg.z_dim)))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        (run / "models").mkdir(parents=True)
        for part, net in (("G", G), ("EMA", G), ("D", D)):
            torch.save(net.state_dict(), run / "models" / f"latest_{part}.pth")
        with open(run / "opt.pkl", "wb") as f:
            pickle.dump(opt, f)
        ckpt = convert_official(run, Path(tmp) / "converted.ckpt", which="latest",
                                channels_G=cfg.channels_G, crop_size=cfg.crop_size, load_size=cfg.crop_size)
        ours = load(ckpt)
    ours_g, ours_d = ours.generator, ours.discriminator
    G.eval(), D.eval()
    with torch.no_grad():
        a = with_z(lambda: G(label), z)
        results["G eval output"] = rel(a, ours_g(label, z))  # the fast ops (default on the CPU)
        from oasisgan import ops

        with ops.use("ref"):
            results["G eval (plain)"] = rel(a, ours_g(label, z))
        results["D eval output"] = rel(D(a), ours_d(a))

    # train mode: losses and gradients of one G step and one D step, on the plain path (the fast
    # path's forward differs by float reassociation, ~1e-6, which train-mode BatchNorm over
    # 2x2 maps amplifies in the backward pass; tests/test_perf_equivalence.py checks it)
    G.train(), D.train()
    ours_g.train().requires_grad_(True), ours_d.train().requires_grad_(True)
    lc = off_losses.losses_computer(opt)
    fake_o = with_z(lambda: G(label), z)
    loss_o = lc.loss(D(fake_o), label, for_real=True)
    loss_o.backward()
    with ops.use("ref"):
        fake_n = ours_g(label, z)
    loss_n = L.n1_loss(ours_d(fake_n), ids, True)
    results["G loss"] = rel(loss_o.detach(), loss_n.detach())
    loss_n.backward()
    go = dict(G.named_parameters())
    if __import__("os").environ.get("DEBUG"):
        scale = max(float(p.grad.abs().max()) for p in go.values())
        for k, p in ours_g.named_parameters():
            d = float((go[k].grad - p.grad).abs().max()) / scale
            if d > 1e-5:
                print("  ", k, f"{d:.2e}", f"{float(p.grad.abs().max()) / scale:.2e}")
    results["G grads"] = rel(torch.cat([go[k].grad.flatten() for k, _ in ours_g.named_parameters()]),
                             torch.cat([p.grad.flatten() for _, p in ours_g.named_parameters()]))
    D.zero_grad(), ours_d.zero_grad()
    with torch.no_grad():
        fake = with_z(lambda: G(label), z)
    torch.manual_seed(1)
    mask_o = label.argmax(1, keepdim=True)
    for c in torch.unique(mask_o):
        mask_o[mask_o == c] = torch.randint(0, 2, (1,))
    mask_o = mask_o.float()
    torch.manual_seed(1)
    mask_n = L.labelmix_mask(ids)
    results["LabelMix mask"] = float((mask_o != mask_n).float().mean())
    outs_o = [D(fake), D(real), D(mask_o * real + (1 - mask_o) * fake)]
    ld_o = (lc.loss(outs_o[0], label, for_real=False) + lc.loss(outs_o[1], label, for_real=True)
            + opt.lambda_labelmix * lc.loss_labelmix(mask_o, outs_o[2], outs_o[0], outs_o[1]))
    ld_o.backward()
    outs_n = [ours_d(fake), ours_d(real), ours_d(L.labelmix_inputs(mask_n, real, fake))]
    ld_n = L.n1_loss(outs_n[0], ids, False) + L.n1_loss(outs_n[1], ids, True) + cfg.lambda_labelmix * L.labelmix_loss(mask_n, outs_n[2], outs_n[0], outs_n[1])
    ld_n.backward()
    results["D loss"] = rel(ld_o.detach(), ld_n.detach())
    do = dict(D.named_parameters())
    results["D grads"] = rel(torch.cat([do[k].grad.flatten() for k, _ in ours_d.named_parameters()]),
                             torch.cat([p.grad.flatten() for _, p in ours_d.named_parameters()]))
    worst = 0.0
    for k, v in results.items():
        print(f"{k:>16}: {v:.2e}")
        worst = max(worst, v)
    print("OK: matches the official code" if worst <= 1e-5 else "MISMATCH")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
