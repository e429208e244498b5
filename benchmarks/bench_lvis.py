"""What the lvis loader's on-the-fly label maps cost, against reading the photo and a label PNG.

    /work/heavy .venv/bin/python benchmarks/bench_lvis.py [--out benchmarks/results/sparse/lvis_decode.json]

LVIS v1 train has 1,270,141 instances on 100,170 images (12.7 per image) at COCO's 640x480; its
polygons have about 20-30 vertices. This builds LVIS-like images from a shared COCO-Stuff photo
with 13 random polygon instances of 24 vertices and sizes spread over three decades of area
(a few compressed RLE among them), and times, per image: `lvis.rasterize` (pycocotools decode +
paste, largest first), decoding the 640x480 JPEG, and decoding the same label map stored as a
16-bit PNG (what a one-time conversion would read instead). It also times `json.load` of an
LVIS-format file of 20,000 such annotations to extrapolate the start-up parse of the 1.1 GB
train file.
"""
from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO.parent / "shared" / "datasets" / "coco_stuff" / "train_img" / "000000029286.jpg"


def polygon(rng, w, h, area):
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    r = np.sqrt(area / np.pi)
    t = np.sort(rng.uniform(0, 2 * np.pi, 24))
    rad = r * rng.uniform(0.7, 1.3, 24)
    xs, ys = np.clip(cx + rad * np.cos(t), 0, w - 1), np.clip(cy + rad * np.sin(t), 0, h - 1)
    return [np.stack([xs, ys], 1).ravel().round(2).tolist()]


def annotations(rng, w, h, n=13, start=0, image_id=0):
    from pycocotools import mask as mask_api

    anns = []
    for k in range(n):
        area = float(10 ** rng.uniform(2, 5))
        seg = polygon(rng, w, h, area)
        if k % 5 == 4:  # some compressed RLE, as crowd-style annotations use
            rle = mask_api.merge(mask_api.frPyObjects(seg, h, w))
            seg = {"size": rle["size"], "counts": rle["counts"].decode()}
        anns.append({"id": start + k, "image_id": image_id, "category_id": int(rng.integers(1, 1204)),
                     "segmentation": seg, "area": area, "bbox": [0, 0, 1, 1]})
    return anns


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "sparse" / "lvis_decode.json"))
    args = ap.parse_args()
    from oasisgan.data.lvis import Record, rasterize

    rng = np.random.default_rng(0)
    jpeg = PHOTO.read_bytes()
    w, h = Image.open(PHOTO).size
    records = []
    for i in range(args.images):
        anns = annotations(rng, w, h, start=100 * i, image_id=i)
        rec = Record(i, PHOTO, w, h, [{"id": a["id"], "model_id": a["category_id"], "area": a["area"],
                                       "segmentation": a["segmentation"]} for a in anns])
        rec.anns.sort(key=lambda a: (-a["area"], a["id"]))
        records.append(rec)
    pngs = []
    for rec in records[:50]:
        buf = io.BytesIO()
        Image.fromarray(rasterize(rec).astype(np.uint16)).save(buf, format="PNG")
        pngs.append(buf.getvalue())

    def per_item(fn, items, repeat=3):
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            for x in items:
                fn(x)
            best = min(best, (time.perf_counter() - t) / len(items))
        return best * 1e3

    res = {"image_size": [w, h], "instances_per_image": 13, "images": args.images,
           "rasterize_ms": per_item(rasterize, records),
           "jpeg_decode_ms": per_item(lambda b: Image.open(io.BytesIO(b)).convert("RGB"), [jpeg] * 50),
           "png16_label_decode_ms": per_item(lambda b: np.asarray(Image.open(io.BytesIO(b))), pngs)}
    # JSON parse rate
    n_ann = 20000
    anns = []
    for i in range(n_ann // 13):
        anns += annotations(rng, w, h, start=100 * i, image_id=i)
    data = {"images": [{"id": i, "width": w, "height": h, "coco_url": f"http://x/train2017/{i:012d}.jpg"}
                       for i in range(n_ann // 13)], "annotations": anns, "categories": []}
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "a.json"
        p.write_text(json.dumps(data))
        size = p.stat().st_size
        t = time.perf_counter()
        with open(p, "rb") as f:
            json.load(f)
        dt = time.perf_counter() - t
    res.update({"json_annotations": len(anns), "json_bytes": size, "json_load_s": dt,
                "json_mb_per_s": size / dt / 1e6,
                "lvis_v1_train_json_load_s_estimate": 1.27e6 / len(anns) * dt})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
