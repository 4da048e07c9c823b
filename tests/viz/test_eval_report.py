"""What evaluate.py writes beside eval.json: the report table, the sweep figure and the per-row grids."""

import numpy as np
import torch
from PIL import Image

from ddpm_hf.viz.eval_report import grid_name, save_class_grid, save_eval_figures


def row(pipeline, omega, accuracy, by_count=None, conditional=True):
    return {
        "pipeline": pipeline, "beta_schedule": "linear", "prediction_type": "epsilon", "sampler": "ddim",
        "num_inference_steps": 50, "guidance_scale": omega + 1, "omega": omega, "conditional": conditional,
        "fid": 1.23456, "kid": 0.000123, "inception_score": 8.5, "accuracy": accuracy,
        "accuracy_by_label_count": by_count, "sample_seconds": 3.2, "grid": f"g{omega}.png",
    }  # fmt: skip


def report(results):
    floor = {"fid": 0.5, "kid": 0.0001, "inception_score": 9.1, "accuracy": 0.99}
    return {"pipelines": ["outputs/a"], "dataset": "digits", "split": "train", "feature_network": "judge",
            "judge": "judge", "reference_images": 898, "floor": floor, "results": results}  # fmt: skip


def test_the_report_has_the_floor_a_row_per_result_and_the_sweep_when_guidance_varies(tmp_path):
    save_eval_figures(report([row("outputs/a", 0, 0.9), row("outputs/a", 2, 0.995)]), str(tmp_path))
    text = (tmp_path / "report.md").read_text()
    assert "| real vs real (half B) | | | | | | 0.500 | 0.00010 | 9.100 | 99.0% | |" in text
    assert "| a | linear | epsilon | ddim | 50 | 2 | 1.235 | 0.00012 | 8.500 | 99.5% | 3.2 s |" in text
    assert "![guidance sweep](guidance_sweep.png)" in text and "![g2.png](g2.png)" in text
    assert Image.open(tmp_path / "guidance_sweep.png").size == (660, 504)  # 5.5 x 4.2 inches at 120 dpi


def test_an_unconditional_row_has_no_omega_and_no_sweep(tmp_path):
    save_eval_figures(report([row("a", 0, None, conditional=False)]), str(tmp_path))
    assert "| a | linear | epsilon | ddim | 50 | unconditional | 1.235 |" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "guidance_sweep.png").exists()


def test_multi_label_rows_show_the_accuracy_by_number_of_labels(tmp_path):
    by_count = {1: {"accuracy": 1.0, "images": 4}, 3: {"accuracy": 0.5, "images": 2}}
    save_eval_figures(report([row("a", 2, 0.8, by_count)]), str(tmp_path))
    assert "| 1: 100.0% (4), 3: 50.0% (2) |" in (tmp_path / "report.md").read_text()


def test_grid_names_and_one_grid_row_per_class(tmp_path):
    assert grid_name("outputs/run_a/", "ddim", 50, 3.0, 1) == "samples_ddim50_s3.png"
    assert grid_name("outputs/run_a/", "ddim", 50, 1.5, 2) == "samples_run_a_ddim50_s1.5.png"
    requested = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])  # class 2 asked twice: rows of 2 images each
    generated = requested[:, None, None, None].float().expand(-1, 1, 8, 8) / 2  # each image its class's grey
    save_class_grid(generated, requested, ["a", "b", "c"], tmp_path / "grid.png")
    pixels = np.asarray(Image.open(tmp_path / "grid.png"))
    assert pixels.shape == (3 * 64 + 4 * 2, 2 * 64 + 3 * 2)  # 8x8 images enlarged to 64, 2 px padding
    assert [pixels[2 + 70 * index + 30, 30] for index in range(3)] == [0, 128, 255]
