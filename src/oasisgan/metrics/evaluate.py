"""`evaluate()`: the paper's protocol on a generator, used by `oasis evaluate` and training's `--eval-every`.

Protocol (docs/evaluation.md): the generator runs in eval mode (the EMA generator when a
checkpoint has one) over the validation split at its own resolution, one fake per label map with
a fresh z per image drawn from a seeded CPU generator. FID compares pytorch-fid Inception
features of the fakes with those of the real validation images (real statistics cached per
dataset, split, resolution and weights). mIoU/pixel accuracy segment the fakes and score them
against the label maps (don't care ignored) at the generated resolution. Diversity generates
`samples` images per label map for the first `diversity_maps` maps and averages LPIPS and
MS-SSIM over all pairs. FSD ("Fréchet Segmenter Distance") is the Fréchet distance between the
reference U-Net segmenter's bottleneck features of real and fake images: an offline stand-in
for FID on data without downloadable networks; it is NOT comparable to FID.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from ..data import build_dataset, eval_loader
from ..data.photos import read_photo
from ..data.toy import appearance_paths
from ..data.transforms import BICUBIC, image_to_tensor
from ..errors import OASISError
from ..loading.weights import WeightsError, cache_dir as default_cache, resolve_weights
from .diversity import BACKBONE_FILES, LPIPS_LINEAR_SHA256, LPIPS_LINEAR_URL, load_lpips, ms_ssim, pairwise_mean
from .fid import (FID_WEIGHTS_FILENAME, FID_WEIGHTS_SHA256, FID_WEIGHTS_URL, FeatureStats, inception_features,
                  load_inception, stats_cache_path)
from .longtail import frequency_groups, iou_by_group
from .miou import SegmentationScore
from .periodicity import PeriodicSpectrum, RegionSpectra, excess_db, regional_excess
from .segmenters import ReferenceSegmenter, default_segmenter_name, load_segmenter
from .twins import find_twins, masked_spread

METRICS = ("fid", "miou", "lpips", "msssim", "spread", "fsd", "periodicity")
# What each reported key means, and whether lower is better.
METRIC_INFO: Dict[str, Tuple[str, bool]] = {
    "fid": ("Fréchet Inception Distance (pytorch-fid InceptionV3)", True),
    "miou": ("mean IoU of a segmenter on the generated images", False),
    "accuracy": ("pixel accuracy of a segmenter on the generated images", False),
    "lpips": ("mean LPIPS between samples of one label map (diversity)", False),
    "msssim": ("mean MS-SSIM between samples of one label map (lower = more diverse)", True),
    "fsd": ("Fréchet Segmenter Distance (reference U-Net features; not FID)", True),
    "miou_ratio": ("mIoU on generated images / the segmenter's mIoU on the real ones", False),
    "spread": ("per-pixel std (0-255) between samples of one label map (diversity)", False),
    "spread_real": ("the same between the real looks of one label map (toy --appearances), or between a "
                    "photo and its layout twin (CamVid)", False),
    "spread_ratio": ("spread / spread_real: generated diversity against the real one", False),
    "msssim_real": ("mean MS-SSIM between the real looks of one label map", True),
    "miou_rare": ("mIoU over the rare classes (frequency groups: metrics.longtail)", False),
    "miou_common": ("mIoU over the common classes", False),
    "miou_frequent": ("mIoU over the frequent classes", False),
    "periodicity": ("grid-locked period-2/4/8 patterns (checkers, hatching): the largest excess of the "
                    "generated images' spectral peak over the real images', dB (~0: as clean as the photos)", True),
    "periodicity_regions": ("the same excess on 32x32 tiles that one class fills, the worst class with 20 "
                            "tiles or more (a checker confined to road or trees)", True),
}


def lower_is_better(name: str) -> bool:
    return METRIC_INFO.get(name, ("", True))[1]


def parse_metrics(metrics: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = [m for m in metrics.replace(" ", "").split(",") if m]
    out = []
    for m in metrics:
        m = m.lower().replace("-", "")
        m = {"ms_ssim": "msssim", "ssim": "msssim", "iou": "miou", "diversity": "lpips",
             "std": "spread"}.get(m, m)
        if m not in METRICS:
            raise OASISError(f"unknown metric {m!r}: choose from {', '.join(METRICS)}")
        if m not in out:
            out.append(m)
    return tuple(out)


@dataclass
class EvalReport:
    metrics: Dict[str, float]
    info: Dict[str, Any] = field(default_factory=dict)
    skipped: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"metrics": self.metrics, "skipped": self.skipped, **self.info}

    def format_table(self) -> str:
        lines = [f"{'metric':<12} {'value':>10}  meaning"]
        for k, v in self.metrics.items():
            text, low = METRIC_INFO.get(k, (k, True))
            arrow = "lower is better" if low else "higher is better"
            lines.append(f"{k:<12} {v:>10.4f}  {text}, {arrow}")
        for k, why in self.skipped.items():
            lines.append(f"{k:<12} {'skipped':>10}  {why.splitlines()[0]}")
        return "\n".join(lines)

    def quality_summary(self) -> Optional[str]:
        """One line of the figures that compare with the real data, when they were measured."""
        m, parts = self.metrics, []
        if "miou_ratio" in m:
            parts.append(f"generated images are segmented at {m['miou_ratio']:.2f} of the real images' mIoU")
        if "spread_ratio" in m:
            parts.append(f"noises vary them {m['spread_ratio']:.2f} as much as the real looks vary")
        return ("quality: " + "; ".join(parts)) if parts else None


def _unwrap(generator):
    """Accept an OASISModel (any object, not a module, that holds `.generator` and
    `.discriminator`), a (DDP/compiled) Generator, or any module with z_dim."""
    disc = None
    if not isinstance(generator, nn.Module) and hasattr(generator, "generator"):
        generator, disc = generator.generator, getattr(generator, "discriminator", None)
    g = getattr(generator, "module", generator)  # DDP
    g = getattr(g, "_orig_mod", g)  # torch.compile
    return g, disc


def _stats_path(kind, cfg, data_root, split, extractor_id, n, cache_dir):
    return stats_cache_path(cache_dir or default_cache(), kind, f"{cfg.preset}-{cfg.dataset}", data_root, split,
                            (cfg.height, cfg.width), extractor_id, n)


@dataclass
class DataSelection:
    """Which images are evaluated and how they are batched.

    dataset: any dataset of {"image", "label"} dicts instead of ``build_dataset(cfg, data_root, split)``
    (its real statistics are not cached). max_images: the first N items. cache_dir / use_cache:
    where the real images' FID/FSD statistics are cached (default: the weights cache), and whether.
    """

    split: str = "val"
    dataset: Any = None
    max_images: Optional[int] = None
    batch_size: int = 16
    num_workers: int = 0
    cache_dir: Any = None
    use_cache: bool = True


@dataclass
class Segmentation:
    """Which segmenter scores mIoU (and gives FSD its features), and how it is fed.

    segmenter: None (the paper's for the dataset, or the dataset's reference segmenter),
    "drn" | "upernet" | "deeplab" | "discriminator", a file (reference segmenter, TorchScript, or
    original state dict) or a `Segmenter`; weights: for the named architectures; class_map /
    input_range: for TorchScript; input_size (H, W): resize fakes before segmenting (scores stay at
    the generated size); scales: multi-scale testing with these short sides (CSAIL's protocol);
    discriminator: the D for "discriminator" (default: the model's). fsd_segmenter: the reference
    segmenter for FSD (default: `segmenter` when it is one). frequency_groups: how mIoU is also
    reported per frequency group (``miou_rare`` ...): auto | pixels | images | none (`metrics.longtail`).
    """

    segmenter: Any = None
    weights: Any = None
    class_map: Any = None
    input_range: str = "minus1_1"
    input_size: Optional[Tuple[int, int]] = None
    scales: Optional[Sequence[int]] = None
    discriminator: Optional[nn.Module] = None
    fsd_segmenter: Any = None
    frequency_groups: str = "auto"


@dataclass
class InceptionOptions:
    """FID's network: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (`weights`, default:
    cache/download; checksum checked unless `verify` is False), or an already built `model` (tests)."""

    weights: Any = None
    verify: bool = True
    model: Optional[nn.Module] = None


@dataclass
class LPIPSOptions:
    """LPIPS: network (alex | vgg | squeeze), version, backbone and linear weight files, or a built `model`."""

    net: str = "alex"
    version: str = "0.1"
    backbone: Any = None
    weights: Any = None
    model: Optional[nn.Module] = None


@dataclass
class DiversitySampling:
    """Diversity (LPIPS, MS-SSIM, spread): `samples` images per label map for the first `label_maps` maps."""

    samples: int = 10
    label_maps: int = 50


def evaluate(generator, cfg, data_root=None, metrics: Union[str, Sequence[str]] = ("fid",),
             **options) -> Dict[str, float]:
    """Compute `metrics` for `generator` on the validation split of `data_root`: a dict of floats.

    Keys: ``fid``, ``miou`` and ``accuracy`` (from ``"miou"``), ``lpips``, ``msssim``, ``fsd``.
    See `evaluate_report` for the options; the generator's train/eval mode is restored afterwards.
    """
    return evaluate_report(generator, cfg, data_root, metrics, **options).metrics


# The order of `EvalReport.metrics`.
REPORT_ORDER = ("fid", "fsd", "miou", "miou_ratio", "accuracy", "miou_rare", "miou_common", "miou_frequent",
                "lpips", "msssim", "msssim_real", "spread", "spread_real", "spread_ratio", "periodicity",
                "periodicity_regions")


@torch.no_grad()
def evaluate_report(generator, cfg, data_root=None, metrics: Union[str, Sequence[str]] = ("fid",), *,
                    data: Optional[DataSelection] = None, segmentation: Optional[Segmentation] = None,
                    inception: Optional[InceptionOptions] = None, lpips: Optional[LPIPSOptions] = None,
                    diversity: Optional[DiversitySampling] = None, device=None, seed: int = 0,
                    progress: bool = True, on_missing: str = "raise") -> EvalReport:
    """The full evaluation, with details (`EvalReport`). Each option group has its defaults
    (`DataSelection`, `Segmentation`, `InceptionOptions`, `LPIPSOptions`, `DiversitySampling`), e.g.
    ``evaluate_report(model, cfg, root, ["miou", "spread"], segmentation=Segmentation("ref.pt"),
    diversity=DiversitySampling(samples=4))``.

    device: where the metric networks run (default: the generator's). seed: of the noises.
    on_missing: "raise" (default) or "skip" a metric whose weights/segmenter are unavailable
    (`report.skipped` says why).

    Steps: load the networks of the wanted metrics (`_Networks`; a missing file fails, or is
    skipped, before the long pass), the validation batches (`_eval_data`), one fake per label map
    for FID/FSD/mIoU (`_fake_pass`, reduced by `_reduce_fake_pass`), then the diversity pass
    (`_diversity`).
    """
    data, seg_opts = data or DataSelection(), segmentation or Segmentation()
    inc_opts, lp_opts, div = inception or InceptionOptions(), lpips or LPIPSOptions(), diversity or DiversitySampling()
    wanted = parse_metrics(metrics)
    if on_missing not in ("raise", "skip"):
        raise ValueError("on_missing must be 'raise' or 'skip'")
    gen, model_disc = _unwrap(generator)
    discriminator = seg_opts.discriminator if seg_opts.discriminator is not None else model_disc
    gen_device = next(gen.parameters()).device
    dev = torch.device(device) if device is not None else gen_device
    t0 = time.time()
    split = data.split
    report = EvalReport({}, {"protocol": {"split": split, "resolution": [cfg.height, cfg.width], "seed": seed,
                                          "noise": "fresh z per image", "generator_mode": "eval"}})

    def attempt(name, load):
        """`load()`; a missing network raises, or (on_missing="skip") is noted in report.skipped."""
        try:
            return load()
        except (WeightsError, OASISError) as e:
            if on_missing == "raise":
                raise
            report.skipped[name] = str(e)
            return None

    # ---- networks first, so a missing file fails before the long pass -----------------------
    segmenter, fsd_segmenter = _default_reference(cfg, data_root, wanted, seg_opts.segmenter, seg_opts.fsd_segmenter)
    nets = _Networks()
    if "fid" in wanted:
        nets.inception, nets.inception_sha = attempt("fid", lambda: _load_inception(
            inc_opts.model, inc_opts.weights, inc_opts.verify, dev, report)) or (None, None)
    if "miou" in wanted:
        nets.segmenter = attempt("miou", lambda: _load_miou_segmenter(
            segmenter, cfg, dev, report, weights=seg_opts.weights, class_map=seg_opts.class_map,
            input_range=seg_opts.input_range, input_size=seg_opts.input_size, discriminator=discriminator,
            scales=seg_opts.scales))
    if "fsd" in wanted:
        nets.fsd = attempt("fsd", lambda: _load_fsd_segmenter(fsd_segmenter, nets.segmenter, segmenter, cfg, dev,
                                                              report))
    if "lpips" in wanted:
        nets.lpips = attempt("lpips", lambda: _load_lpips(lp_opts.model, lp_opts.net, lp_opts.version,
                                                          lp_opts.backbone, lp_opts.weights, dev, report))

    # ---- data --------------------------------------------------------------------------------
    batch_size = data.batch_size
    dataset, loader = _eval_data(cfg, data_root, split, data.dataset, batch_size, data.max_images, data.num_workers)
    report.info["num_images"] = len(loader.dataset)

    was_training = gen.training
    gen.eval()
    try:
        want_periodicity = "periodicity" in wanted
        if nets.inception is not None or nets.segmenter is not None or nets.fsd is not None or want_periodicity:
            cacheable = data.use_cache and data_root is not None
            n = f"{len(loader.dataset)}of{len(dataset)}"
            real = {kind: (None, None) if not cacheable else
                    _cached_real_stats(kind, sha, cfg, data_root, split, n, data.cache_dir)
                    for kind, sha in (("fid", nets.inception_sha), ("fsd", nets.fsd_sha)) if sha is not None}
            fakes = _fake_pass(gen, cfg, loader, nets, {k: s is None for k, (_, s) in real.items()}, seed,
                               batch_size, gen_device, dev, progress, want_periodicity)
            _reduce_fake_pass(fakes, nets, real, split, report)
            if fakes.score is not None:
                _longtail(cfg, data_root, fakes.score, seg_opts.frequency_groups, report)
        want_ms, want_spread = "msssim" in wanted, "spread" in wanted
        if nets.lpips is not None or want_ms or want_spread:
            _diversity(gen, cfg, dataset, nets.lpips, want_ms, want_spread, div.samples, div.label_maps, batch_size,
                       seed + 1, gen_device, dev, progress, report, data_root)
    finally:
        gen.train(was_training)
    report.metrics = {k: report.metrics[k] for k in REPORT_ORDER if k in report.metrics}
    report.info["seconds"] = round(time.time() - t0, 2)
    return report


# ------------------------------------------------------------------------------------------------
# evaluate_report's steps
# ------------------------------------------------------------------------------------------------
@dataclass
class _Networks:
    """The networks of the wanted metrics (None: not wanted, or skipped)."""

    inception: Optional[nn.Module] = None
    inception_sha: Optional[str] = None
    segmenter: Optional[nn.Module] = None  # a `Segmenter` (mIoU)
    fsd: Optional[nn.Module] = None  # a `ReferenceSegmenter` (FSD features)
    lpips: Optional[nn.Module] = None

    @property
    def fsd_sha(self) -> Optional[str]:
        return None if self.fsd is None else (self.fsd.weights_sha256 or "?")


def _load_inception(inception, weights, verify, dev, report) -> Tuple[nn.Module, str]:
    if inception is not None:
        inc, sha = inception.eval().to(dev), "user-supplied"
    else:
        inc, sha = load_inception(weights, dev, verify=verify)
    report.info["inception_sha256"] = sha
    return inc, sha


def _load_miou_segmenter(spec, cfg, dev, report, **options) -> nn.Module:
    seg = load_segmenter(spec, cfg, device=dev, **options)
    report.info["segmenter"] = {"name": seg.name, "classes": seg.num_classes, "sha256": seg.weights_sha256,
                                "scales": seg.scales, "input_size": seg.input_size}
    if seg.real_miou is not None:
        report.info["segmenter"]["miou_on_real_val"] = seg.real_miou
    return seg


def _load_fsd_segmenter(fsd_spec, miou_seg, seg_spec, cfg, dev, report) -> nn.Module:
    """The reference segmenter whose features FSD compares: `fsd_spec`, else the mIoU one when it
    is a reference segmenter."""
    fsd_seg = None
    if fsd_spec is None:
        if isinstance(miou_seg, ReferenceSegmenter):
            fsd_seg = miou_seg
        elif isinstance(seg_spec, ReferenceSegmenter):
            fsd_seg = seg_spec.eval().to(dev)
        elif isinstance(seg_spec, (str, Path)) and Path(seg_spec).is_file():
            fsd_spec = seg_spec
    if fsd_seg is None:
        if fsd_spec is None:
            raise OASISError("fsd needs the reference segmenter: train it with `oasis segmenter train` "
                             "and pass it (--segmenter FILE or --fsd-segmenter FILE)")
        fsd_seg = load_segmenter(fsd_spec, cfg, device=dev)
    if not isinstance(fsd_seg, ReferenceSegmenter):
        raise OASISError("fsd uses the features of an oasisgan reference segmenter "
                         "(`oasis segmenter train`); the given segmenter is not one")
    report.info["fsd_segmenter_sha256"] = fsd_seg.weights_sha256
    return fsd_seg


def _load_lpips(model, net, version, backbone, weights, dev, report) -> nn.Module:
    lp = model.eval().to(dev) if model is not None else load_lpips(net, version, backbone, weights, dev)
    report.info["lpips"] = {"net": lp.net_name, "version": lp.version}
    return lp


def _eval_data(cfg, data_root, split, dataset, batch_size, max_images, num_workers):
    """The evaluated dataset (`dataset`, else the `split` of `data_root`) and its in-order batches."""
    if dataset is None:
        if data_root is None:
            raise OASISError("evaluate needs data_root (or a dataset)")
        dataset = build_dataset(cfg, data_root, split=split)
    if len(dataset) == 0:
        raise OASISError(f"the {split} split has no images")
    return dataset, eval_loader(dataset, batch_size, max_images, num_workers)


def _cached_real_stats(kind, sha, cfg, data_root, split, n, cache_dir):
    """(the cache file of the real statistics, the statistics when it already holds them)."""
    path = _stats_path(kind, cfg, data_root, split, sha, n, cache_dir)
    return path, (FeatureStats.load(path) if path.is_file() else None)


@dataclass
class _FakePass:
    """What the pass over the validation batches collected."""

    features: Dict[str, list]  # "fid_fake", "fid_real", "fsd_fake", "fsd_real": per-batch (B, D) CPU tensors
    score: Any  # SegmentationScore of the fakes (mIoU), or None
    nonfinite: int  # batches in which the generator produced inf/NaN
    spectra: Any = None  # (fake, real) PeriodicSpectrum, when periodicity is wanted
    class_names: Optional[Sequence[str]] = None


def _fake_pass(gen, cfg, loader, nets: _Networks, need_real: Dict[str, bool], seed, batch_size, gen_device, dev,
               progress, periodicity: bool = False) -> _FakePass:
    """One fake per label map (z from a CPU generator seeded with `seed`, drawn batch by batch):
    Inception / reference-segmenter features of the fakes (and of the real images where
    `need_real[kind]`: their statistics are not cached), and the segmentation score of the fakes."""
    inc, seg, fsd_seg = nets.inception, nets.segmenter, nets.fsd
    rng = torch.Generator().manual_seed(seed)
    feats: Dict[str, list] = {"fid_real": [], "fid_fake": [], "fsd_real": [], "fsd_fake": []}
    score = None
    if seg is not None:
        classes = torch.nonzero(seg.valid_classes).flatten().tolist()
        score = SegmentationScore(seg.num_classes, classes, seg.class_names)
    nonfinite = 0
    names = [m for m, net in (("fid", inc), ("fsd", fsd_seg), ("miou", seg)) if net is not None]
    spectra = None
    if periodicity:
        spectra = tuple(PeriodicSpectrum(RegionSpectra(ignore=cfg.dontcare_label)) for _ in range(2))
        names = names + ["periodicity"]
    for batch in _progress(loader, f"evaluate {'+'.join(names)}", progress):
        label = batch["label"].to(gen_device)
        z = torch.randn(label.shape[0], gen.z_dim, generator=rng).to(gen_device)
        fake = gen(label.long(), z).float()
        if not torch.isfinite(fake).all():
            nonfinite += 1
            fake = torch.nan_to_num(fake, nan=0.0, posinf=1.0, neginf=-1.0)
        fake = fake.to(dev)
        if inc is not None:
            feats["fid_fake"].append(inception_features(inc, fake, batch_size))
            if need_real["fid"]:
                feats["fid_real"].append(inception_features(inc, batch["image"].to(dev), batch_size))
        if fsd_seg is not None:
            feats["fsd_fake"].append(fsd_seg.features(fake).float().cpu())
            if need_real["fsd"]:
                feats["fsd_real"].append(fsd_seg.features(batch["image"].to(dev)).float().cpu())
        if seg is not None:
            pred = seg.predict(fake)
            score.update(pred.cpu(), seg.map_labels(batch["label"]).cpu())
        if spectra is not None:
            spectra[0].update(fake, batch["label"])
            spectra[1].update(batch["image"], batch["label"])
    return _FakePass(feats, score, nonfinite, spectra, cfg.class_names)


def _reduce_fake_pass(fakes: _FakePass, nets: _Networks, real, split, report) -> None:
    """FID, mIoU (+ ratio to the segmenter's real mIoU, accuracy, per-class IoU) and FSD into `report`.
    `real`: kind -> (cache file, cached real statistics or None)."""
    if fakes.nonfinite:
        report.info["warning"] = f"the generator produced inf/NaN in {fakes.nonfinite} batch(es)"
    if nets.inception is not None:
        path, stats = real["fid"]
        report.metrics["fid"] = _frechet("fid", stats, fakes.features, path, split, fakes.nonfinite)
        report.info["fid_real_stats"] = str(path) if path else None
    if nets.segmenter is not None:
        score = fakes.score
        report.metrics["miou"] = score.miou
        if nets.segmenter.real_miou:
            report.metrics["miou_ratio"] = score.miou / nets.segmenter.real_miou
        report.metrics["accuracy"] = score.accuracy
        report.info["per_class_iou"] = score.per_class()
    if nets.fsd is not None:
        path, stats = real["fsd"]
        report.metrics["fsd"] = _frechet("fsd", stats, fakes.features, path, split, fakes.nonfinite)
    if fakes.spectra is not None:
        fake, real_scores = (s.scores() for s in fakes.spectra)
        report.metrics["periodicity"] = float("nan") if fakes.nonfinite else excess_db(fake, real_scores)
        report.info["periodicity_db"] = {"fake": fake, "real": real_scores}
        worst, by_class = regional_excess(fakes.spectra[0].regions, fakes.spectra[1].regions,
                                         names=fakes.class_names)
        report.metrics["periodicity_regions"] = float("nan") if fakes.nonfinite else worst
        report.info["periodicity_by_class"] = by_class


def _longtail(cfg, data_root, score, mode: str, report) -> None:
    """Per-class IoU by frequency group (`metrics.longtail`) into `report`."""
    groups, source = frequency_groups(cfg, data_root, mode)
    if groups is None:
        if source:
            report.info["iou_by_frequency"] = source
        return
    names = [cfg.class_name(i) for i in range(cfg.semantic_nc)]
    by_group = iou_by_group(score.per_class(), groups, names)
    for g, v in by_group.items():
        if v["scored"]:
            report.metrics[f"miou_{g}"] = v["miou"]
    report.info["iou_by_frequency"] = {**{k: v for k, v in source.items() if k != "counts"}, "groups": by_group}


def _frechet(kind: str, real, feats: Dict[str, list], path: Optional[Path], split: str, nonfinite: int) -> float:
    """FID and FSD alike: real statistics from the cache, else from this pass (then cached)."""
    if real is None:
        real = FeatureStats.from_features(torch.cat(feats[f"{kind}_real"]))
        if path is not None:
            real.save(path, {"kind": kind, "split": split})
    if nonfinite:
        return float("nan")
    return real.distance(FeatureStats.from_features(torch.cat(feats[f"{kind}_fake"])))


REFERENCE_SEGMENTER_FILENAME = "reference_segmenter.pt"


def default_reference_segmenter(data_root) -> Optional[Path]:
    """``<data_root>/reference_segmenter.pt`` when it exists (the default output of
    `oasis segmenter train`), else None."""
    if data_root is None:
        return None
    p = Path(data_root) / REFERENCE_SEGMENTER_FILENAME
    return p if p.is_file() else None


def _default_reference(cfg, data_root, wanted, segmenter, fsd_segmenter):
    """Without an explicit choice, data without a paper segmenter uses the dataset's reference
    segmenter for mIoU, and FSD always does."""
    ref = default_reference_segmenter(data_root)
    if ref is None:
        return segmenter, fsd_segmenter
    if "miou" in wanted and segmenter is None and default_segmenter_name(cfg) is None:
        segmenter = str(ref)
    if "fsd" in wanted and fsd_segmenter is None and segmenter is None:
        fsd_segmenter = str(ref)
    return segmenter, fsd_segmenter


def check_metrics(metrics, cfg, data_root=None, *, segmentation: Optional[Segmentation] = None,
                  inception: Optional[InceptionOptions] = None, lpips: Optional[LPIPSOptions] = None) -> None:
    """Raise (a user-facing error) when a metric cannot run: unknown name, weights or segmenter
    missing. Cheap: resolves files (downloading when online) and loads segmenters only. The
    options are those of `evaluate_report`."""
    seg, inc, lp = segmentation or Segmentation(), inception or InceptionOptions(), lpips or LPIPSOptions()
    wanted = parse_metrics(metrics)
    seg_spec, fsd_spec = _default_reference(cfg, data_root, wanted, seg.segmenter, seg.fsd_segmenter)
    if "fid" in wanted and inc.model is None:
        resolve_weights(inc.weights, filename=FID_WEIGHTS_FILENAME, url=FID_WEIGHTS_URL,
                        sha256_prefix=FID_WEIGHTS_SHA256, what=f"FID Inception weights ({FID_WEIGHTS_FILENAME})",
                        option="--inception-weights")
    if "miou" in wanted:
        load_segmenter(seg_spec, cfg, weights=seg.weights, class_map=seg.class_map, input_range=seg.input_range,
                       discriminator=seg.discriminator)
    if "fsd" in wanted:
        spec = fsd_spec if fsd_spec is not None else seg_spec
        if spec is None or not (isinstance(spec, nn.Module) or Path(str(spec)).is_file()):
            raise OASISError("fsd needs the reference segmenter: train it with `oasis segmenter train` "
                             f"(default output <data-root>/{REFERENCE_SEGMENTER_FILENAME})")
    if "lpips" in wanted and lp.model is None:
        net, version = lp.net, lp.version
        fname, url, prefix = BACKBONE_FILES[net]
        resolve_weights(lp.backbone, filename=fname, url=url, sha256_prefix=prefix,
                        what=f"LPIPS {net} backbone weights (torchvision {fname})", option="--lpips-backbone")
        resolve_weights(lp.weights, filename=f"lpips/v{version}/{net}.pth",
                        url=LPIPS_LINEAR_URL.format(version=version, net=net),
                        sha256_prefix=LPIPS_LINEAR_SHA256[(version, net)],
                        what=f"LPIPS v{version} {net} linear weights", option="--lpips-weights")


class TrainingEvaluator:
    """The evaluation during training (`oasisgan.training.periodic.Evaluator`): the metrics of
    ``cfg.eval_metrics`` on the validation split, seeded with ``cfg.seed``, quietly; the
    preflight is `check_metrics`. `oasisgan.training.train` hands one to the `Trainer`."""

    def check(self, metrics, cfg, data_root) -> None:
        check_metrics(metrics, cfg, data_root)

    def __call__(self, generator, metrics, cfg, data_root) -> Dict[str, float]:
        return evaluate(generator, cfg, data_root, metrics=tuple(metrics), progress=False, seed=cfg.seed)

    @staticmethod
    def lower_is_better(metric: str) -> bool:
        return lower_is_better(metric)


def _progress(it, desc, enabled):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def pixel_spread(images: torch.Tensor) -> float:
    """Diversity of K images of one label map ((K, 3, H, W) in [-1, 1]): the per-pixel standard
    deviation across them (unbiased, so K samples and K' real looks compare), averaged over pixels
    and channels, in 0-255 units."""
    return float(images.float().std(dim=0, correction=1).mean()) * 127.5


def _real_looks(item, looks, cfg) -> Optional[torch.Tensor]:
    """The real looks of a dataset item ((K, 3, H, W) in [-1, 1]): its image and the other renders
    of its label map (`oasis data toy --appearances K`); None when it has none."""
    files = looks.get(Path(str(item.get("name", ""))).name)
    if not files:
        return None
    imgs = [torch.as_tensor(item["image"])]
    for f in files:
        im = read_photo(f)
        if im.size != (cfg.width, cfg.height):
            im = im.resize((cfg.width, cfg.height), BICUBIC)
        imgs.append(image_to_tensor(im))
    return torch.stack(imgs)


def _diversity(gen, cfg, dataset, lp, want_ms, want_spread, samples, n_maps, batch_size, seed, gen_device,
               dev, progress, report, data_root=None):
    """LPIPS / MS-SSIM / spread between `samples` images of each of `n_maps` label maps, and the
    real reference: the real looks of each map (toy), or else its layout twin (`metrics.twins`,
    where the spread ratio compares both on the pixels where the twin's classes agree)."""
    if samples < 2:
        raise OASISError("diversity needs --samples >= 2")
    n = len(dataset)
    n_maps = n if n_maps is None or n_maps <= 0 else min(n_maps, n)
    rng = torch.Generator().manual_seed(seed)
    looks = appearance_paths(data_root) if data_root is not None and (want_spread or want_ms) else {}
    twins = find_twins(cfg, data_root, dataset, n_maps) if want_spread and not looks else [None] * n_maps
    lp_total = ms_total = spread_total = 0.0
    real_spread = real_ms = 0.0
    real_maps = 0
    twin_gen = twin_real = twin_agree = 0.0
    twin_maps = 0
    for i in _progress(range(n_maps), "evaluate diversity", progress):
        item = dataset[i]
        label = torch.as_tensor(item["label"])[None].to(gen_device)
        imgs = []
        for j in range(0, samples, batch_size):
            k = min(batch_size, samples - j)
            z = torch.randn(k, gen.z_dim, generator=rng).to(gen_device)
            imgs.append(gen(label.long().expand(k, -1, -1), z).float().to(dev))
        imgs = torch.cat(imgs).clamp(-1, 1)
        if lp is not None:
            lp_total += pairwise_mean(lambda a, b: lp(a, b), imgs, batch_size)
        if want_ms:
            ms_total += pairwise_mean(lambda a, b: ms_ssim((a + 1) / 2, (b + 1) / 2), imgs, batch_size)
        if want_spread:
            spread_total += pixel_spread(imgs)
        real = _real_looks(item, looks, cfg) if looks else None
        if real is not None:
            real_maps += 1
            real_spread += pixel_spread(real)
            if want_ms:
                real_ms += pairwise_mean(lambda a, b: ms_ssim((a + 1) / 2, (b + 1) / 2), real.to(dev),
                                         batch_size)
        if twins[i] is not None and twins[i][1].any():
            twin_image, mask, agree = twins[i]
            pair = torch.stack([torch.as_tensor(item["image"]), twin_image])
            twin_gen += masked_spread(imgs.cpu(), mask)
            twin_real += masked_spread(pair, mask)
            twin_agree += agree
            twin_maps += 1
    if lp is not None:
        report.metrics["lpips"] = lp_total / n_maps
    if want_ms:
        report.metrics["msssim"] = ms_total / n_maps
        if real_maps:
            report.metrics["msssim_real"] = real_ms / real_maps
    if want_spread:
        report.metrics["spread"] = spread_total / n_maps
        if real_maps:
            report.metrics["spread_real"] = real_spread / real_maps
            report.metrics["spread_ratio"] = report.metrics["spread"] / max(report.metrics["spread_real"], 1e-8)
        elif twin_maps:
            report.metrics["spread_real"] = twin_real / twin_maps
            report.metrics["spread_ratio"] = twin_gen / max(twin_real, 1e-8)
            report.info["layout_twins"] = {"label_maps": twin_maps, "mean_agreement": round(twin_agree / twin_maps, 4),
                                           "spread_on_agreeing_pixels": twin_gen / twin_maps}
    if real_maps:
        report.info["real_looks"] = {"label_maps": real_maps, "looks_per_map": 1 + len(next(iter(looks.values())))}
    report.info["diversity"] = {"samples_per_map": samples, "label_maps": n_maps, "pairs": "all"}
