"""Training throughput: train_scripts/train_image.py against the diffusers example's training step, same U-Net, same
data, same batch, same number of steps, same device, one run each.

    python benchmarks/bench_train.py          # CPU: the digits U-Net (tiny, 8x8 grey), batch 128
    python benchmarks/bench_train.py --device cuda --preset ddpm_cifar10 --resolution 32 \\
        --dataset path/to/cifar10_parquet --batch_size 128 --steps 300 --peak_tflops 790

Cases (unconditional, as the example is):
- `diffusers_example`: a loop in the shape of diffusers' `train_unconditional.py` as it ships: its image transforms
  (torchvision Resize/CenterCrop/ToTensor/Normalize, or the same steps in PIL where torchvision is not installed),
  DataLoader with 0 workers, fp32, DDPMScheduler, AdamW, cosine LR with warm-up, EMAModel (its README's command
  passes --use_ema), gradient clipping at 1.0, `loss.item()` every step. One deviation: it keeps the data's channel
  count instead of converting to RGB, so that both sides train the same U-Net (parameter counts are asserted equal).
- `diffusers_example_tuned`: the same with --tuned_mixed_precision (bf16) and --tuned_workers loader workers.
- `ddpm_hf`: the training script itself (`accelerate launch train_scripts/train_image.py`), same data, U-Net, batch
  and steps, precision --ours_mixed_precision (default fp32, as the plain baseline), and its speed levers as the
  script resolves them (on CUDA: channels_last, fused AdamW, torch.compile, images preloaded on the GPU, loss read
  every 50 steps; --ours_args turns any off); its own metrics.json gives images/s over its training loop, the first
  step's seconds (compile warm-up) and images/s after it.

Every case times its whole loop, first step included (no checkpoints or sample grids inside the timed span).
Writes JSON (--output) and prints a table. Not a test: figures depend on the machine.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import diffusers
import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from ddpm_hf import make_unet
from ddpm_hf.data import dataset_mode, decode_image, find_image_column, load_image_dataset
from ddpm_hf.training import read_losses

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ("diffusers_example", "diffusers_example_tuned", "ddpm_hf")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Training throughput of train_image.py against baselines.")
    parser.add_argument("--dataset", type=str, default="digits", help="'digits', a .npz file or a dataset folder.")
    parser.add_argument("--preset", type=str, default="tiny", help="U-Net preset of both sides.")
    parser.add_argument("--resolution", type=int, default=8, help="Training image side in pixels.")
    parser.add_argument("--batch_size", type=int, default=128, help="Images per step.")
    parser.add_argument("--steps", type=int, default=100, help="Optimizer steps per case.")
    parser.add_argument("--num_train_timesteps", type=int, default=1000, help="Diffusion steps T.")
    parser.add_argument("--device", type=str, default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--cases",
        nargs="+",
        default=list(CASES),
        help=f"Which of {', '.join(CASES)} to run.",
    )
    parser.add_argument("--tuned_mixed_precision", type=str, default="bf16", help="Precision of the tuned baseline.")
    parser.add_argument("--tuned_workers", type=int, default=8, help="Loader workers of the tuned baseline.")
    parser.add_argument("--ours_mixed_precision", type=str, default="no", help="Precision of the ddpm_hf case.")
    parser.add_argument(
        "--ours_args",
        type=str,
        default="",
        help="Extra flags for train_image.py, e.g. '--mixed_precision bf16 --no-torch_compile'; a single flag needs "
        "the = form: --ours_args=--data_on_device.",
    )
    parser.add_argument(
        "--peak_tflops", type=float, default=None, help="The device's peak TFLOP/s, for model FLOP utilisation."
    )
    parser.add_argument("--output", type=str, default="bench_train.json", help="Where to write the JSON results.")
    args = parser.parse_args(argv)
    unknown = [case for case in args.cases if case not in CASES]
    if unknown:
        raise ValueError(f"Unknown case(s) {unknown}; choose from {', '.join(CASES)}.")
    if args.batch_size < 1 or args.steps < 1:
        raise ValueError(f"--batch_size and --steps must be >= 1, got {args.batch_size} and {args.steps}.")
    return args


def example_transform(resolution, mode):
    """The example's augmentations: shorter side resized (bilinear), centre crop, to [0, 1], normalised to [-1, 1]."""
    try:
        from torchvision import transforms

        augment = transforms.Compose(
            [
                transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BILINEAR),
                transforms.CenterCrop(resolution),
                transforms.ToTensor(),
                transforms.Normalize([0.5], [0.5]),
            ]
        )
        return augment, "torchvision"
    except ImportError:

        def augment(image):
            width, height = image.size
            scale = resolution / min(width, height)
            image = image.resize((max(resolution, round(width * scale)), max(resolution, round(height * scale))),
                                 Image.BILINEAR)  # fmt: skip
            left, top = (image.size[0] - resolution) // 2, (image.size[1] - resolution) // 2
            image = image.crop((left, top, left + resolution, top + resolution))
            array = np.asarray(image, dtype=np.float32) / 255.0
            array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            return torch.from_numpy((array - 0.5) / 0.5)

        return augment, "PIL"


def run_diffusers_example(args, dataset, mode, mixed_precision, num_workers):
    """
    The example's loop. Returns seconds for --steps steps, the U-Net's parameter count, peak GPU memory in GiB (None on
    CPU), the library that ran the transforms and the last step's loss.
    """
    accelerator = Accelerator(mixed_precision=mixed_precision, cpu=args.device == "cpu")
    image_column = find_image_column(dataset)
    augment, transform_library = example_transform(args.resolution, mode)

    def transform_images(examples):
        return {"input": [augment(decode_image(image).convert(mode)) for image in examples[image_column]]}

    dataset = dataset.with_transform(transform_images)
    dataloader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=num_workers, drop_last=True
    )
    torch.manual_seed(0)
    model = make_unet(args.preset, args.resolution, 1 if mode == "L" else 3)
    parameters = sum(p.numel() for p in model.parameters())
    noise_scheduler = DDPMScheduler(num_train_timesteps=args.num_train_timesteps, beta_schedule="linear")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    lr_scheduler = get_scheduler("cosine", optimizer=optimizer, num_warmup_steps=500, num_training_steps=10_000)
    model, optimizer, dataloader, lr_scheduler = accelerator.prepare(model, optimizer, dataloader, lr_scheduler)
    ema_model = EMAModel(
        accelerator.unwrap_model(model).parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75,
        model_cls=UNet2DModel, model_config=accelerator.unwrap_model(model).config,
    )  # fmt: skip
    ema_model.to(accelerator.device)
    if accelerator.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    step, logs = 0, {}
    start = time.perf_counter()
    while step < args.steps:
        model.train()
        for batch in dataloader:
            clean_images = batch["input"]
            noise = torch.randn(clean_images.shape, device=clean_images.device)
            timesteps = torch.randint(
                0, noise_scheduler.config.num_train_timesteps, (clean_images.shape[0],), device=clean_images.device
            ).long()
            noisy_images = noise_scheduler.add_noise(clean_images, noise, timesteps)
            with accelerator.accumulate(model):
                model_output = model(noisy_images, timesteps).sample
                loss = F.mse_loss(model_output.float(), noise.float())
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                ema_model.step(model.parameters())
                step += 1
            logs = {"loss": loss.detach().item(), "lr": lr_scheduler.get_last_lr()[0], "step": step}
            if step >= args.steps:
                break
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if accelerator.device.type == "cuda" else None
    # accelerate keeps one global state per process; the next case sets its own precision
    AcceleratorState._reset_state(True)
    return seconds, parameters, peak, transform_library, logs["loss"]


def run_ddpm_hf(args, mixed_precision):
    """train_image.py through accelerate launch; returns its metrics.json (seconds, parameters, peak GiB, loss...)."""
    with tempfile.TemporaryDirectory() as output_dir:
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
            *(["--cpu"] if args.device == "cpu" else []),
            "--mixed_precision", mixed_precision,
            os.path.join(REPO_ROOT, "train_scripts", "train_image.py"),
            "--dataset_name", args.dataset, "--condition", "none", "--model_preset", args.preset,
            "--resolution", str(args.resolution), "--train_batch_size", str(args.batch_size),
            "--max_train_steps", str(args.steps), "--num_train_timesteps", str(args.num_train_timesteps),
            "--checkpointing_steps", str(10 * args.steps), "--save_images_epochs", "1000000", "--logger", "none",
            "--num_inference_steps", "2", "--output_dir", output_dir, *args.ours_args.split(),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
        if result.returncode != 0:
            raise RuntimeError(f"train_image.py failed:\n{result.stderr[-3000:]}")
        with open(os.path.join(output_dir, "metrics.json")) as f:
            metrics = json.load(f)
        metrics["losses"] = read_losses(os.path.join(output_dir, "losses.jsonl"))
        return metrics


def training_flops_per_image(args, channels):
    """FLOPs of one forward and backward pass of the U-Net per image, counted by torch's FlopCounterMode."""
    torch.manual_seed(0)
    model = make_unet(args.preset, args.resolution, channels).to(args.device)
    batch = 4
    sample = torch.randn(batch, channels, args.resolution, args.resolution, device=args.device)
    timesteps = torch.randint(0, args.num_train_timesteps, (batch,), device=args.device)
    with FlopCounterMode(display=False) as counter:
        model(sample, timesteps).sample.square().mean().backward()
    return counter.get_total_flops() / batch


def main(args):
    dataset = load_image_dataset(args.dataset)
    image_column = find_image_column(dataset)
    mode = dataset_mode(decode_image(dataset[index][image_column]) for index in range(min(64, len(dataset))))
    channels = 1 if mode == "L" else 3
    flops_per_image = training_flops_per_image(args, channels)
    results, parameters, transform_library = {}, set(), None
    for case in args.cases:
        extra = {}
        if case == "ddpm_hf":
            metrics = run_ddpm_hf(args, args.ours_mixed_precision)
            seconds, count, peak, loss = (
                metrics["train_seconds"], metrics["unet_parameters"], metrics["peak_gpu_memory_gib"],
                metrics["final_loss"],
            )  # fmt: skip
            # warm-up (torch.compile) apart from the steady state, and the settings the script resolved
            extra = {
                key: metrics.get(key)
                for key in ("first_step_seconds", "images_per_second_after_first_step", "data_preload_seconds",
                            "speed_settings", "losses")
            }  # fmt: skip
        else:
            tuned = case == "diffusers_example_tuned"
            seconds, count, peak, transform_library, loss = run_diffusers_example(
                args,
                dataset,
                mode,
                args.tuned_mixed_precision if tuned else "no",
                args.tuned_workers if tuned else 0,
            )
        parameters.add(count)
        images_per_second = args.steps * args.batch_size / seconds
        print(f"{case}: {seconds:.1f} s, {images_per_second:.1f} images/s", flush=True)  # each case as it ends
        results[case] = {
            "seconds": round(seconds, 3),
            "images_per_second": round(images_per_second, 1),
            "peak_gpu_memory_gib": None if peak is None else round(peak, 2),
            "final_loss": round(loss, 4),
            **extra,
        }
        if args.peak_tflops:
            results[case]["model_flop_utilisation"] = round(
                images_per_second * flops_per_image / (args.peak_tflops * 1e12), 4
            )
    if len(parameters) != 1:
        raise AssertionError(f"The cases trained U-Nets of different sizes: {sorted(parameters)} parameters.")
    report = {
        "command_args": vars(args),
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
        "example_transforms": transform_library,
        "unet_parameters": parameters.pop(),
        "training_gflops_per_image": round(flops_per_image / 1e9, 4),
        "results": results,
    }
    if "ddpm_hf" in results:
        for case in ("diffusers_example", "diffusers_example_tuned"):
            if case in results:
                speedup = results["ddpm_hf"]["images_per_second"] / results[case]["images_per_second"]
                report[f"speedup_over_{case}"] = round(speedup, 3)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(
        f"U-Net {report['unet_parameters'] / 1e6:.2f}M parameters ({report['training_gflops_per_image']} GFLOP per "
        f"image per training step), batch {args.batch_size}, {args.steps} steps, {report['device']}"
    )
    print(f"{'case':26} {'seconds':>9} {'images/s':>10} {'peak GiB':>9} {'MFU':>7} {'first step s':>13}")
    for name, row in results.items():
        peak = "-" if row["peak_gpu_memory_gib"] is None else f"{row['peak_gpu_memory_gib']:.2f}"
        utilisation = f"{row['model_flop_utilisation']:.1%}" if "model_flop_utilisation" in row else "-"
        first = "-" if row.get("first_step_seconds") is None else f"{row['first_step_seconds']:.2f}"
        print(
            f"{name:26} {row['seconds']:9.3f} {row['images_per_second']:10.1f} {peak:>9} {utilisation:>7} {first:>13}"
        )
    if "ddpm_hf" in results:
        print(f"ddpm_hf speed settings: {results['ddpm_hf']['speed_settings']}; images/s after its first step: "
              f"{results['ddpm_hf']['images_per_second_after_first_step']}")  # fmt: skip
    for key, value in report.items():
        if key.startswith("speedup_over_"):
            print(f"ddpm_hf {key.replace('_', ' ')}: {value:.2f}x")
    return report


if __name__ == "__main__":
    main(parse_args())
