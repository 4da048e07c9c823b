"""The sweep's table: a row per cell from metrics.json (with a held-out record or not) and eval.json, sweep.csv
and sweep.md."""

import csv
import json

import pytest

from ddpm_hf.viz.sweep_report import (
    cell_row,
    eval_columns,
    format_value,
    read_cell_row,
    write_sweep_csv,
    write_sweep_markdown,
)

HELDOUT = {
    "source": "10% of the training images",
    "images": 180,
    "weights": "ema",
    "seconds": 1.5,
    "per_epoch": [
        {"epoch": 0, "step": 10, "train_loss": 0.9, "heldout_loss": 0.5},
        {"epoch": 1, "step": 20, "train_loss": 0.4, "heldout_loss": 0.3},
        {"epoch": 2, "step": 30, "train_loss": 0.35, "heldout_loss": 0.32},
    ],
    "best": {"epoch": 1, "step": 20, "heldout_loss": 0.3},
}


def result(guidance_scale, fid, accuracy, sampler="ddpm", steps=400):
    return {
        "pipeline": "run", "beta_schedule": "linear", "prediction_type": "epsilon", "sampler": sampler,
        "num_inference_steps": steps, "guidance_scale": guidance_scale, "omega": guidance_scale - 1,
        "conditional": True, "fid": fid, "kid": fid / 100, "kid_std": 0.0, "inception_score": 9.0,
        "accuracy": accuracy, "accuracy_by_label_count": None, "num_samples": 900, "sample_seconds": 3.0,
    }  # fmt: skip


EVAL = {
    "pipelines": ["run"],
    "dataset": "digits",
    "split": "train",
    "feature_network": "judge",
    "judge": "judge",
    "reference_images": 899,
    "floor": {"fid": 0.5, "kid": 0.0001, "inception_score": 9.5, "accuracy": 0.98},
    "results": [result(1.0, 3.0, 0.9), result(3.0, 2.0, 0.99)],
}


def test_a_row_holds_the_swept_values_training_held_out_and_evaluation():
    metrics = {"final_loss": 0.04, "steps": 1500, "train_seconds": 80.2, "heldout": HELDOUT}
    row = cell_row("beta_schedule=linear", {"beta_schedule": "linear"}, metrics, EVAL)
    assert row["cell"] == "beta_schedule=linear" and row["beta_schedule"] == "linear"
    assert (row["final_loss"], row["steps"], row["train_seconds"]) == (0.04, 1500, 80.2)
    assert (row["heldout_loss"], row["best_epoch"], row["best_heldout_loss"]) == (0.32, 1, 0.3)
    assert (row["fid_floor"], row["kid_floor"], row["is_floor"], row["accuracy_floor"]) == (0.5, 0.0001, 9.5, 0.98)
    assert (row["fid_s1"], row["fid_s3"], row["kid_s3"], row["is_s3"], row["accuracy_s3"]) == (3.0, 2.0, 0.02, 9, 0.99)
    assert (row["best_fid"], row["best_fid_at"]) == (2.0, "s3")
    assert row["chamfer_distance"] is None


def test_without_held_out_set_or_evaluation_those_columns_stay_empty():
    for metrics in ({"final_loss": 0.1, "steps": 4}, {"final_loss": 0.1, "steps": 4, "heldout": None}):
        row = cell_row("a=1", {"a": "1"}, metrics)
        assert row["heldout_loss"] is row["best_epoch"] is row["best_heldout_loss"] is None
        assert not any(key.startswith("fid") for key in row)
    # a 2D run: its steps are the steps it was asked for, and its score the Chamfer distance
    row = cell_row("a=1", {"a": "1"}, {"final_loss": 0.3, "max_train_steps": 30, "chamfer_distance": 1.5})
    assert row["steps"] == 30 and row["chamfer_distance"] == 1.5
    assert cell_row("a=1", {"a": "1"}, None)["final_loss"] is None  # no metrics.json


def test_several_samplers_and_unconditional_rows_get_their_own_columns():
    report = {**EVAL, "results": [result(3.0, 2.0, 0.9), result(3.0, 1.5, 0.8, sampler="ddim", steps=50)]}
    columns = eval_columns(report)
    assert columns["fid_ddpm400_s3"] == 2.0 and columns["fid_ddim50_s3"] == 1.5
    assert columns["best_fid_at"] == "ddim50_s3"
    unconditional = {**result(1.0, 4.0, None), "conditional": False}
    columns = eval_columns({**EVAL, "floor": {**EVAL["floor"], "accuracy": None}, "results": [unconditional]})
    assert columns["fid_uncond"] == 4.0 and "accuracy_uncond" not in columns and columns["accuracy_floor"] is None


def test_csv_and_markdown_tables(tmp_path):
    grid = {"beta_schedule": ["linear", "cosine"], "prediction_type": ["epsilon", "x0"]}
    rows, evaluations = [], {}
    for index, (schedule, prediction) in enumerate(
        [(s, p) for s in grid["beta_schedule"] for p in grid["prediction_type"]]
    ):
        name = f"beta_schedule={schedule},prediction_type={prediction}"
        run_dir, eval_dir = tmp_path / name, tmp_path / "eval" / name
        run_dir.mkdir()
        eval_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps({"final_loss": 0.1 * (index + 1), "steps": 4}))
        report = {**EVAL, "results": [result(1.0, 3.0 + index, 0.9), result(3.0, 2.0 + index, 0.99)]}
        (eval_dir / "eval.json").write_text(json.dumps(report))
        evaluations[name] = report
        rows.append(read_cell_row(name, {"beta_schedule": schedule, "prediction_type": prediction}, run_dir, eval_dir))

    write_sweep_csv(rows, tmp_path / "sweep.csv")
    with open(tmp_path / "sweep.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert [line["cell"] for line in lines] == [row["cell"] for row in rows]
    assert float(lines[3]["fid_s3"]) == 5.0 and float(lines[0]["fid_floor"]) == 0.5
    assert "heldout_loss" not in lines[0] and "chamfer_distance" not in lines[0]  # empty in every row

    command = "python train_scripts/sweep.py --grid beta_schedule=linear,cosine --grid prediction_type=epsilon,x0"
    write_sweep_markdown(
        tmp_path / "sweep.md", rows, grid, "train_image.py", command, 125.4, evaluations,
        figures={"samples of every cell": "sweep_grids.png"}, notes=["Kept from an earlier command: a."],
    )  # fmt: skip
    text = (tmp_path / "sweep.md").read_text()
    assert text.startswith("# Sweep of train_image.py over beta_schedule x prediction_type (4 runs)")
    assert "| beta_schedule | prediction_type | final loss | steps | best FID | best FID at | FID floor |" in text
    assert "| cosine | x0 | 0.4 | 4 | 5 | s3 | 0.5 |" in text
    assert "| beta_schedule=cosine | 0.3 | 0.4 |" in text  # the final loss as a schedule x prediction table
    assert "| beta_schedule=linear,prediction_type=x0 | ddpm:400 | 2 | 3 | 0.5 | 0.03 | 9 | 99.0% |" in text
    assert "![samples of every cell](sweep_grids.png)" in text and "- Kept from an earlier command: a." in text
    assert f"    {command}" in text and "Wall time of the command: 125 s." in text


@pytest.mark.parametrize("column, value, shown", [("accuracy_s3", 0.987, "98.7%"), ("train_seconds", 80.4, "80")])
def test_values_are_shown_by_kind(column, value, shown):
    assert format_value(column, value) == shown
