"""A stand-in image dataset for throughput benchmarks on machines without the real one (no Hub access): PNG-encoded
images in a parquet file with CIFAR-10's column names (`img`, `label`), so the training script decodes, converts and
crops them as it would CIFAR-10.

    python benchmarks/make_bench_images.py --output data/bench_rgb32 --num_images 50000 --resolution 32
    python benchmarks/bench_train.py --dataset data/bench_rgb32 --preset ddpm_cifar10 --resolution 32 ...

The pixels are smooth random colour fields plus noise, so the PNGs are about as large as CIFAR-10's (2-3 kB at
32x32). Only the data loading cost is meant to be realistic; nothing learnable is in them.
"""

import argparse
import io
import os

import datasets
import numpy as np
from PIL import Image


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Write a parquet image dataset for benchmarks.")
    parser.add_argument("--output", type=str, required=True, help="Folder to write train.parquet into.")
    parser.add_argument("--num_images", type=int, default=50000, help="Number of images.")
    parser.add_argument("--resolution", type=int, default=32, help="Image side in pixels.")
    parser.add_argument("--num_classes", type=int, default=10, help="Labels 0..K-1, drawn uniformly.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the pixels and labels.")
    args = parser.parse_args(argv)
    if args.num_images < 1 or args.resolution < 1 or args.num_classes < 1:
        raise ValueError("--num_images, --resolution and --num_classes must be >= 1.")
    return args


def make_png(rng, resolution):
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((resolution, resolution), Image.Resampling.BICUBIC), np.int16)
    pixels = np.clip(field + rng.integers(-24, 25, field.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def main(args):
    rng = np.random.default_rng(args.seed)
    images = [{"bytes": make_png(rng, args.resolution), "path": None} for _ in range(args.num_images)]
    labels = rng.integers(0, args.num_classes, args.num_images).tolist()
    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(names=[str(k) for k in range(args.num_classes)])}
    )
    dataset = datasets.Dataset.from_dict({"img": images, "label": labels}, features=features)
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "train.parquet")
    dataset.to_parquet(path)
    print(f"wrote {args.num_images} images of {args.resolution}x{args.resolution} to {path}")
    return path


if __name__ == "__main__":
    main(parse_args())
