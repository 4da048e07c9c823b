"""Sampling throughput: DDPMCFGPipeline against what users would otherwise run, same U-Net, same steps, same device.

    python benchmarks/bench_sample.py --pipeline outputs/digits --batch_size 100 --num_inference_steps 400
    python benchmarks/bench_sample.py --preset small --resolution 32 --num_classes 10 --device cuda

Cases (each the median of --repeats timed calls after one warm-up call):
- `ddpm_hf_cfg`: DDPMCFGPipeline with guidance: conditional and null passes in one batched forward per step.
- `two_pass_cfg`: the usual hand-written CFG loop: diffusers' DDPMScheduler and the U-Net called twice per step.
- `ddpm_hf_uncond` / `diffusers_ddpm_pipeline` (with --unconditional): an unconditional U-Net of the same preset,
  DDPMCFGPipeline without labels against diffusers' DDPMPipeline.
- `ddpm_hf_cfg_compiled` / `ddpm_hf_uncond_compiled` (with --compiled): the same pipelines after
  `enable_compiled_sampling(mode=--compile_mode)` (the whole denoising step in one compiled graph; a CUDA graph with
  reduce-overhead), in --compiled_dtype, channels_last on CUDA. Their warm-up call includes the compile.
Writes JSON (--output) and prints a table. Not a test: figures depend on the machine.
"""

import argparse
import json
import platform
import statistics
import time

import diffusers
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from ddpm_hf import DDPMCFGPipeline, ExtendedDDPMScheduler, make_unet

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Sampling throughput of DDPMCFGPipeline against baselines.")
    parser.add_argument("--pipeline", type=str, default=None, help="A saved DDPMCFGPipeline folder.")
    parser.add_argument("--preset", type=str, default="tiny", help="U-Net preset when no --pipeline (random weights).")
    parser.add_argument("--resolution", type=int, default=8, help="Image size when no --pipeline.")
    parser.add_argument("--channels", type=int, default=1, help="Image channels when no --pipeline.")
    parser.add_argument("--num_classes", type=int, default=10, help="Classes when no --pipeline.")
    parser.add_argument("--num_train_timesteps", type=int, default=1000, help="T when no --pipeline.")
    parser.add_argument("--batch_size", type=int, default=100, help="Images per call.")
    parser.add_argument("--num_inference_steps", type=int, default=None, help="Steps per call; default T.")
    parser.add_argument("--guidance_scale", type=float, default=3.0, help="Guidance scale s (> 1 for two passes).")
    parser.add_argument("--repeats", type=int, default=3, help="Timed calls per case.")
    parser.add_argument("--unconditional", action="store_true", help="Also compare with diffusers' DDPMPipeline.")
    parser.add_argument("--compiled", action="store_true", help="Also time enable_compiled_sampling().")
    parser.add_argument(
        "--compiled_cases",
        nargs="+",
        default=["cfg", "uncond"],
        choices=["cfg", "uncond"],
        help="Which pipelines --compiled compiles (each compile takes its own warm-up): the CFG one, the "
        "unconditional one (with --unconditional), or both.",
    )
    parser.add_argument(
        "--compile_mode", type=str, default="reduce-overhead", help="torch.compile mode for --compiled."
    )
    parser.add_argument(
        "--compiled_dtype", type=str, default=None, help="'fp32' or 'bf16' for --compiled; default bf16 on CUDA."
    )
    parser.add_argument("--device", type=str, default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's).")
    parser.add_argument("--output", type=str, default="bench_sample.json", help="Where to write the JSON results.")
    args = parser.parse_args(argv)
    if args.guidance_scale <= 1:
        raise ValueError(f"--guidance_scale must be > 1 so that CFG runs two passes, got {args.guidance_scale}.")
    if args.batch_size < 1 or args.repeats < 1:
        raise ValueError("--batch_size and --repeats must be >= 1.")
    if args.compiled_dtype is None:
        args.compiled_dtype = "bf16" if torch.device(args.device).type == "cuda" else "fp32"
    if args.compiled_dtype not in DTYPES:
        raise ValueError(f"Unknown --compiled_dtype {args.compiled_dtype!r}; choose one of {list(DTYPES)}.")
    return args


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_calls(run, device, repeats):
    """Seconds of the first (warm-up) call and the median of `repeats` more."""
    synchronize(device)
    start = time.perf_counter()
    first_output = run()
    synchronize(device)
    warmup = time.perf_counter() - start
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return first_output, warmup, statistics.median(seconds)


@torch.no_grad()
def two_pass_cfg(unet, scheduler, class_ids, null_id, guidance_scale, num_steps, seed, device):
    """The loop users write by hand: conditional pass, unconditional pass, combine, step."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    config = unet.config
    shape = (len(class_ids), config.in_channels, config.sample_size, config.sample_size)
    sample = torch.randn(shape, generator=generator).to(device)
    conditional_ids = class_ids.to(device)
    null_ids = torch.full_like(conditional_ids, null_id)
    scheduler.set_timesteps(num_steps)
    for timestep in scheduler.timesteps:
        conditional = unet(sample, timestep, class_labels=conditional_ids).sample
        unconditional = unet(sample, timestep, class_labels=null_ids).sample
        guided = unconditional + guidance_scale * (conditional - unconditional)
        sample = scheduler.step(guided, timestep, sample, generator=generator).prev_sample
    return (sample / 2 + 0.5).clamp(0, 1)


def compiled_copy(args, unet, scheduler_config):
    """A DDPMCFGPipeline on a copy of `unet` in --compiled_dtype with enable_compiled_sampling(--compile_mode)."""
    copy = type(unet).from_config(unet.config).eval()
    copy.load_state_dict(unet.state_dict())
    pipe = DDPMCFGPipeline(unet=copy, scheduler=ExtendedDDPMScheduler.from_config(scheduler_config))
    pipe = pipe.to(args.device, DTYPES[args.compiled_dtype])
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_compiled_sampling(mode=args.compile_mode)
    return pipe


def load_or_build(args):
    if args.pipeline:
        pipe = DDPMCFGPipeline.from_pretrained(args.pipeline)
    else:
        torch.manual_seed(0)
        # eval(): a model built in code starts in training mode, and presets with dropout (ddpm_cifar10) would drop
        unet = make_unet(args.preset, args.resolution, args.channels, args.num_classes).eval()
        scheduler = ExtendedDDPMScheduler(num_train_timesteps=args.num_train_timesteps)
        pipe = DDPMCFGPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(args.device)


def main(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load_or_build(args)
    if pipe.num_classes is None:
        raise ValueError("The CFG comparison needs a class-conditional model.")
    unet, device = pipe.unet, args.device
    num_steps = args.num_inference_steps or pipe.scheduler.config.num_train_timesteps
    class_ids = torch.arange(args.batch_size) % pipe.num_classes
    parameters = sum(p.numel() for p in unet.parameters())
    results = {}

    def record(name, output, warmup, seconds, network_evaluations):
        results[name] = {
            "seconds": round(seconds, 4),
            "warmup_seconds": round(warmup, 4),
            "images_per_second": round(args.batch_size / seconds, 2),
            "network_evaluations_per_image": network_evaluations,
        }
        return output

    def ours():
        generator = torch.Generator(device="cpu").manual_seed(0)
        return pipe(class_labels=class_ids, guidance_scale=args.guidance_scale, num_inference_steps=num_steps,
                    generator=generator, output_type="pt").images  # fmt: skip

    ours_images = record("ddpm_hf_cfg", *time_calls(ours, device, args.repeats), 2 * num_steps)
    baseline_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    baseline = lambda: two_pass_cfg(  # noqa: E731
        unet, baseline_scheduler, class_ids, pipe.num_classes, args.guidance_scale, num_steps, 0, device
    )
    baseline_images = record("two_pass_cfg", *time_calls(baseline, device, args.repeats), 2 * num_steps)
    # Same noise, same maths: the outputs agree up to float rounding (batched and separate forwards differ there).
    agreement = (ours_images.float().cpu() - baseline_images.float().cpu()).abs().max().item()
    compile_cfg = args.compiled and "cfg" in args.compiled_cases
    compile_uncond = args.compiled and args.unconditional and "uncond" in args.compiled_cases
    if compile_cfg:
        compiled = compiled_copy(args, unet, pipe.scheduler.config)

        def ours_compiled():
            generator = torch.Generator(device="cpu").manual_seed(0)
            return compiled(class_labels=class_ids, guidance_scale=args.guidance_scale, num_inference_steps=num_steps,
                            generator=generator, output_type="pt").images  # fmt: skip

        compiled_images = record(
            "ddpm_hf_cfg_compiled", *time_calls(ours_compiled, device, args.repeats), 2 * num_steps
        )
        compiled_agreement = (compiled_images.float().cpu() - ours_images.float().cpu()).abs().max().item()

    if args.unconditional:
        torch.manual_seed(0)
        plain_unet = UNet2DModel.from_config({**unet.config, "num_class_embeds": None}).to(device).eval()
        ours_uncond = DDPMCFGPipeline(
            unet=plain_unet, scheduler=ExtendedDDPMScheduler.from_config(pipe.scheduler.config)
        )
        theirs = DDPMPipeline(unet=plain_unet, scheduler=DDPMScheduler.from_config(pipe.scheduler.config))
        candidates = [("ddpm_hf_uncond", ours_uncond), ("diffusers_ddpm_pipeline", theirs)]
        uncond_outputs, reference = {}, None  # each case's max |image - ddpm_hf_uncond's image|, same noise
        if compile_uncond:
            candidates.append(("ddpm_hf_uncond_compiled", compiled_copy(args, plain_unet, pipe.scheduler.config)))
        for name, candidate in candidates:
            candidate.set_progress_bar_config(disable=True)
            run = lambda candidate=candidate: candidate(  # noqa: E731
                batch_size=args.batch_size, num_inference_steps=num_steps, output_type="np",
                generator=torch.Generator(device="cpu").manual_seed(0),
            )  # fmt: skip
            images = record(name, *time_calls(run, device, args.repeats), num_steps).images
            reference = images if reference is None else reference  # ddpm_hf_uncond's, the first case
            uncond_outputs[name] = float(abs(images - reference).max())

    report = {
        "command_args": vars(args),
        "device": torch.cuda.get_device_name()
        if torch.device(device).type == "cuda"
        else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
        "unet_parameters": parameters,
        "num_inference_steps": num_steps,
        "batch_size": args.batch_size,
        "max_abs_difference_ours_vs_two_pass": agreement,
        "speedup_cfg": round(results["two_pass_cfg"]["seconds"] / results["ddpm_hf_cfg"]["seconds"], 3),
        "results": results,
    }
    if args.unconditional:
        report["max_abs_difference_uncond_vs_ddpm_pipeline"] = uncond_outputs["diffusers_ddpm_pipeline"]
        report["speedup_uncond"] = round(
            results["diffusers_ddpm_pipeline"]["seconds"] / results["ddpm_hf_uncond"]["seconds"], 3
        )
    if compile_cfg:
        report["max_abs_difference_compiled_vs_plain"] = compiled_agreement
        report["speedup_cfg_compiled"] = round(
            results["two_pass_cfg"]["seconds"] / results["ddpm_hf_cfg_compiled"]["seconds"], 3
        )
    if compile_uncond:
        report["max_abs_difference_uncond_compiled_vs_plain"] = uncond_outputs["ddpm_hf_uncond_compiled"]
        report["speedup_uncond_compiled"] = round(
            results["diffusers_ddpm_pipeline"]["seconds"] / results["ddpm_hf_uncond_compiled"]["seconds"], 3
        )
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"U-Net {parameters / 1e6:.2f}M parameters, batch {args.batch_size}, {num_steps} steps, {report['device']}")
    print(f"{'case':26} {'seconds':>9} {'images/s':>10} {'evals/image':>12} {'warm-up s':>10}")
    for name, row in results.items():
        print(
            f"{name:26} {row['seconds']:9.3f} {row['images_per_second']:10.2f} "
            f"{row['network_evaluations_per_image']:12} {row['warmup_seconds']:10.2f}"
        )
    print(f"CFG speed-up over the two-pass loop: {report['speedup_cfg']:.2f}x (outputs agree to {agreement:.1e})")
    for key in ("speedup_uncond", "speedup_cfg_compiled", "speedup_uncond_compiled"):
        if key in report:
            print(f"{key}: {report[key]:.2f}x")
    return report


if __name__ == "__main__":
    main(parse_args())
