"""Train the test suite's small segmenter and detector on drawn shapes, for the README's pictures.

No pretrained detector or segmenter may be downloaded, so the two nets of ``tests/objectives/nets.py``
(a SegNet with an FPN-like decoder, a YOLO-style detector with three heads) learn to find circles,
squares and triangles drawn on smooth random backgrounds: a few minutes on two CPU cores. Each is
exported by TorchScript with a dynamic height and width to ``--out`` (default: a cache folder), with
a test scene, for ``readme_pictures.py``.

    python tools/train_shapes.py [--steps 1500] [--out /tmp/onnx_xai_shapes]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.objectives.nets import SegNet, TinyYolo  # noqa: E402

CLASSES = ("circle", "square", "triangle")
CACHE = Path(tempfile.gettempdir()) / "onnx_xai_shapes"


def scene(
    rng: np.random.Generator, width: int, height: int, count: int
) -> tuple[Image.Image, np.ndarray, list]:
    """A picture, its per-pixel classes (0 = background) and its boxes (x0, y0, x1, y1, class)."""
    ys, xs = np.mgrid[0:height, 0:width] / max(width, height)
    base = rng.uniform(60, 200, 3)
    tilt = rng.uniform(-80, 80, (2, 3))
    rgb = base + xs[..., None] * tilt[0] + ys[..., None] * tilt[1] + rng.normal(0, 6, (height, width, 3))
    picture = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    mask = Image.new("L", (width, height), 0)
    draw, mask_draw, boxes = ImageDraw.Draw(picture), ImageDraw.Draw(mask), []
    for _ in range(count):
        kind, size = int(rng.integers(3)), int(rng.integers(14, max(15, min(width, height) // 3)))
        x0, y0 = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
        box, colour = (x0, y0, x0 + size, y0 + size), tuple(int(v) for v in rng.integers(0, 256, 3))
        for canvas, fill in ((draw, colour), (mask_draw, kind + 1)):
            if kind == 0:
                canvas.ellipse(box, fill=fill)
            elif kind == 1:
                canvas.rectangle(box, fill=fill)
            else:
                canvas.polygon([(x0 + size / 2, y0), (x0, y0 + size), (x0 + size, y0 + size)], fill=fill)
        boxes.append((*box, kind))
    return picture, np.asarray(mask, np.int64), boxes


def batch(rng, n: int, size: int = 128):
    pictures, masks, boxes = zip(*(scene(rng, size, size, int(rng.integers(1, 5))) for _ in range(n)))
    x = torch.tensor(np.stack([np.asarray(p, np.float32) / 255.0 for p in pictures]).transpose(0, 3, 1, 2))
    return (x - 0.5) / 0.25, torch.tensor(np.stack(masks)), boxes


def detection_loss(out: torch.Tensor, boxes, size: int) -> torch.Tensor:
    """Each box is the target of the candidate whose cell holds its centre, at the stride that suits
    its size; class scores are binary cross-entropy everywhere, boxes L1 in stride units."""
    strides = [8] * (size // 8) ** 2 + [16] * (size // 16) ** 2 + [32] * (size // 32) ** 2
    offsets = np.cumsum([0, (size // 8) ** 2, (size // 16) ** 2])
    target = torch.zeros_like(out[:, 4:])
    box_loss, hits = out.new_zeros(()), 0
    for n, items in enumerate(boxes):
        for x0, y0, x1, y1, kind in items:
            level = 0 if max(x1 - x0, y1 - y0) < 32 else 1 if max(x1 - x0, y1 - y0) < 64 else 2
            stride, grid = 8 * 2**level, size // (8 * 2**level)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            index = offsets[level] + int(cy // stride) * grid + int(cx // stride)
            target[n, kind, index] = 1
            want = torch.tensor([cx, cy, x1 - x0, y1 - y0], dtype=out.dtype)
            box_loss = box_loss + (out[n, :4, index] - want).abs().sum() / strides[index]
            hits += 1
    scores = out[:, 4:].clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(scores, target, reduction="sum") / max(hits, 1) + box_loss / max(hits, 1)


def train(net: torch.nn.Module, loss_of, steps: int, seed: int) -> torch.nn.Module:
    rng = np.random.default_rng(seed)
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    for step in range(steps):
        x, masks, boxes = batch(rng, 16)
        loss = loss_of(net(x), masks, boxes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  {type(net).__name__} step {step}: loss {loss.item():.3f}", flush=True)
    return net.eval()


def export(net: torch.nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, 128, 128),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", default=str(CACHE))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    segmenter = train(
        SegNet(classes=len(CLASSES) + 1),
        lambda y, masks, _: F.cross_entropy(
            F.interpolate(y, size=masks.shape[1:], mode="bilinear", align_corners=False), masks
        ),
        args.steps,
        1,
    )
    export(segmenter, out / "shapes_segnet.onnx")
    detector = train(
        TinyYolo(classes=len(CLASSES)), lambda y, _, boxes: detection_loss(y, boxes, 128), args.steps, 2
    )
    export(detector, out / "shapes_yolo.onnx")
    picture, _, boxes = scene(np.random.default_rng(7), 320, 224, 4)
    picture.save(out / "shapes.png")
    print(f"wrote {out}/shapes_segnet.onnx, shapes_yolo.onnx and shapes.png (boxes {boxes})")


if __name__ == "__main__":
    main()
