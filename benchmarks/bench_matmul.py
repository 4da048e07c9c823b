"""The device's bf16 matrix-multiply rate, the peak that model FLOP utilisation is measured against.

    python benchmarks/bench_matmul.py            # prints TFLOP/s: an 8192^3 bf16 product, mean of 10 after 3 warm-ups

On a CPU it times float32 at --size 1024 instead (bf16 matrix products there are no peak worth dividing by).
"""

import argparse
import time

import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="bf16 matrix-multiply TFLOP/s of the device.")
    parser.add_argument("--size", type=int, default=None, help="Matrix side; default 8192 on CUDA, 1024 on the CPU.")
    parser.add_argument("--repeats", type=int, default=10, help="Timed products after 3 warm-ups.")
    return parser.parse_args(argv)


def main(args):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    size = args.size or (8192 if device == "cuda" else 1024)
    generator = torch.Generator(device=device).manual_seed(0)
    a, b = (torch.randn(size, size, device=device, dtype=dtype, generator=generator) for _ in range(2))
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    tflops = 2 * size**3 * args.repeats / (time.perf_counter() - start) / 1e12
    print(f"{tflops:.1f}")
    return tflops


if __name__ == "__main__":
    main(parse_args())
