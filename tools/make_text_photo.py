"""Write the demo's picture of text: two printed cards on one of the bundled photos.

The text-detection demo (``onnx-xai demo --text``) needs a photo with text in it and no photo we may
ship has any, so this draws one: a blurred, darkened copy of the bundled ``coffee.jpg`` as the table,
a tilted white card with three lines of text and a small yellow label, in Pillow's bundled font, with
a little sensor noise. The result is committed as ``onnx_xai/data/text/cards.jpg``; run this again
only to change it.

    python tools/make_text_photo.py [--out onnx_xai/data/text/cards.jpg]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
SIZE = (640, 448)


def card(lines: list[tuple[str, int]], colour, ink, padding: int = 18) -> Image.Image:
    """A card with one line of text per (text, font size), left-aligned."""
    fonts = [ImageFont.load_default(size) for _, size in lines]
    boxes = [font.getbbox(text) for (text, _), font in zip(lines, fonts)]
    width = max(b[2] for b in boxes) + 2 * padding
    height = sum(b[3] + 12 for b in boxes) + 2 * padding
    picture = Image.new("RGBA", (width, height), colour)
    draw, y = ImageDraw.Draw(picture), padding
    for (text, _), font, box in zip(lines, fonts, boxes):
        draw.text((padding, y), text, font=font, fill=ink)
        y += box[3] + 12
    return picture


def photo() -> Image.Image:
    table = Image.open(ROOT / "onnx_xai" / "data" / "photos" / "coffee.jpg").convert("RGB").resize(SIZE)
    table = Image.eval(table.filter(ImageFilter.GaussianBlur(6)), lambda v: int(v * 0.6))
    main = card(
        [("OPEN 9 - 18", 52), ("Coffee & Tea", 40), ("Mon to Sat", 32)], (246, 244, 236, 255), (30, 30, 34)
    )
    label = card([("SALE -20%", 30)], (250, 214, 70, 255), (20, 20, 20), padding=10)
    table.paste(main.rotate(4, expand=True, resample=Image.BICUBIC), (60, 70), main.rotate(4, expand=True))
    table.paste(
        label.rotate(-8, expand=True, resample=Image.BICUBIC), (400, 300), label.rotate(-8, expand=True)
    )
    noisy = np.asarray(table, np.float32) + np.random.default_rng(0).normal(0, 4, (SIZE[1], SIZE[0], 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "onnx_xai" / "data" / "text" / "cards.jpg"))
    out = Path(parser.parse_args().out)
    out.parent.mkdir(parents=True, exist_ok=True)
    photo().save(out, quality=88)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
