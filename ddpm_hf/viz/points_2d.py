"""Figures of 2D point clouds: samples against the target, the forward process, the reverse trajectory as a GIF."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

LIMITS = (-6.0, 6.0)


def _scatter(ax, points, title, color="C0"):
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.6, color=color)
    ax.set_xlim(*LIMITS)
    ax.set_ylim(*LIMITS)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def save_samples_figure(generated: np.ndarray, target: np.ndarray, path: str, title: str = "") -> None:
    """Side by side: generated points and target points, on the same axes limits."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    _scatter(axes[0], generated, f"generated ({len(generated)})", "C1")
    _scatter(axes[1], target, f"target ({len(target)})", "C0")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_forward_process_figure(noisy_by_timestep: dict[int, np.ndarray], path: str) -> None:
    """One panel per timestep t showing draws of q(x_t | x_0); `noisy_by_timestep` maps t to an (N, 2) array."""
    timesteps = sorted(noisy_by_timestep)
    fig, axes = plt.subplots(1, len(timesteps), figsize=(2.4 * len(timesteps), 2.6))
    for ax, timestep in zip(np.atleast_1d(axes), timesteps):
        _scatter(ax, noisy_by_timestep[timestep], f"q(x_t), t={timestep}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_trajectory_gif(
    trajectory: np.ndarray, timesteps: list[int], path: str, num_frames: int = 40, frame_ms: int = 120
) -> None:
    """
    Animate the reverse process. `trajectory` is (num_steps + 1, N, 2) from x_T to x_0 and `timesteps[i]` is the
    timestep of `trajectory[i]`; `num_frames` evenly spaced frames are drawn and the final one is held longer.
    """
    indices = np.unique(np.linspace(0, len(trajectory) - 1, num_frames).round().astype(int))
    frames = []
    for index in indices:
        fig, ax = plt.subplots(figsize=(3.5, 3.5))
        _scatter(ax, trajectory[index], f"reverse process, t={timesteps[index]}", "C1")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        plt.close(fig)
        buffer.seek(0)
        frames.append(Image.open(buffer).convert("P", palette=Image.Palette.ADAPTIVE))
    durations = [frame_ms] * (len(frames) - 1) + [frame_ms * 10]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
