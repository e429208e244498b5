"""Training of the reference U-Net segmenter on the real images of a dataset."""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
import torch.nn.functional as F

from ...data import build_dataset
from ...data.loader import epoch_loader, eval_loader
from ...errors import OASISError
from ...loading.checkpoint import atomic_save
from ..miou import SegmentationScore
from .unet import ReferenceUNet, build_reference_segmenter, segmenter_checkpoint


@torch.no_grad()
def score_segmenter(seg, dataset, batch_size: int = 16, max_images: Optional[int] = None,
                    progress: bool = False, device="cpu") -> Dict[str, Any]:
    """mIoU / pixel accuracy of a `Segmenter` on real images of a dataset (don't care ignored)."""
    loader = eval_loader(dataset, batch_size, max_images)
    classes = torch.nonzero(seg.valid_classes).flatten().tolist()
    score = SegmentationScore(seg.num_classes, classes, seg.class_names)
    bar = loader
    if progress:
        from tqdm import tqdm

        bar = tqdm(loader, desc="segmenter val", leave=False, file=sys.stderr)
    seg.eval()
    for batch in bar:
        pred = seg.predict(batch["image"].to(device)).cpu()
        score.update(pred, seg.map_labels(batch["label"]))
    return {"miou": score.miou, "accuracy": score.accuracy, "per_class_iou": score.per_class(),
            "num_images": len(loader.dataset)}


def train_reference_segmenter(cfg, data_root: Union[str, Path], out: Union[str, Path], iters: int = 3000,
                              batch_size: int = 16, lr: float = 1e-3, width: int = 32, depth: int = 4,
                              device=None, seed: int = 0, num_workers: int = 0, progress: bool = True,
                              val_max_images: Optional[int] = None, log=print) -> Dict[str, Any]:
    """Train a `ReferenceUNet` on the train split (the dataset's augmentation), score it on the val
    split, and save it to `out`. Returns {"miou", "accuracy", "per_class_iou", "iters", "seconds", "out"}.

    Adam (lr, betas 0.9/0.999) with a cosine decay, cross-entropy with the don't-care label ignored.
    Batches: training's `epoch_loader`, in an order drawn from `seed`, augmented anew every epoch.
    """
    if iters < 1:
        raise OASISError("--iters must be at least 1")
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    min_side = min(cfg.height, cfg.width)
    depth = max(1, min(depth, int(math.log2(max(min_side // 4, 1)))))
    train_ds = build_dataset(cfg, data_root, split="train")
    val_ds = build_dataset(cfg, data_root, split="val")
    net = ReferenceUNet(cfg.semantic_nc, width, depth).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, iters) / iters)))
    ignore = cfg.dontcare_label if cfg.dontcare_label is not None else -100
    train_batch = min(batch_size, len(train_ds))
    order = cfg.replace(seed=seed)  # the batches' order follows `seed`
    t0 = time.time()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=iters, desc="segmenter train", file=sys.stderr, dynamic_ncols=True)
    it = epoch = 0
    net.train()
    loss_avg = None
    while it < iters:
        for batch in epoch_loader(train_ds, order, epoch, train_batch, num_workers=num_workers):
            x, y = batch["image"].to(dev), batch["label"].to(dev)
            loss = F.cross_entropy(net(x), y, ignore_index=ignore)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            it += 1
            lv = float(loss.detach())
            loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_avg:.3f}")
            if it >= iters:
                break
        epoch += 1
    if bar is not None:
        bar.close()
    net.eval()
    ckpt = segmenter_checkpoint(net, cfg, iters=iters, train_loss=loss_avg)
    seg = build_reference_segmenter(ckpt, cfg.semantic_nc).to(dev)
    result = score_segmenter(seg, val_ds, batch_size, val_max_images, progress, dev)
    ckpt.update(val_miou=result["miou"], val_accuracy=result["accuracy"], val_images=result["num_images"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(ckpt, out)
    result.update(iters=iters, seconds=round(time.time() - t0, 1), out=str(out), train_loss=loss_avg,
                  width=width, depth=depth)
    return result
