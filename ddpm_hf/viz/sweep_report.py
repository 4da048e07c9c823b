"""What train_scripts/sweep.py writes about a grid of runs: one row per cell (the swept values, the training record of
metrics.json, the held-out loss, evaluate.py's scores of eval.json or the 2D Chamfer distance), as sweep.csv and
sweep.md."""

import csv
import json
import os

# Columns of a cell's row taken from its metrics.json, in table order (those a run does not record stay empty).
METRIC_COLUMNS = (
    "final_loss",
    "steps",
    "train_seconds",
    "chamfer_distance",
    "chamfer_distance_self_normalised_target",
)
HELDOUT_COLUMNS = ("heldout_loss", "best_epoch", "best_heldout_loss")
# evaluate.py's scores, as eval.json's results name them, and the names of their columns
EVAL_SCORES = {"fid": "fid", "kid": "kid", "inception_score": "is", "accuracy": "accuracy"}
# sweep.md: headings of the columns, and the scores shown as one table of the cells when two flags are swept
HEADINGS = {
    "final_loss": "final loss",
    "steps": "steps",
    "train_seconds": "train s",
    "chamfer_distance": "Chamfer",
    "chamfer_distance_self_normalised_target": "Chamfer (target normalised alone)",
    "heldout_loss": "held-out loss (last)",
    "best_epoch": "best epoch",
    "best_heldout_loss": "best held-out loss",
    "best_fid": "best FID",
    "best_fid_at": "best FID at",
    "fid_floor": "FID floor",
}
PIVOTED = (
    "chamfer_distance",
    "chamfer_distance_self_normalised_target",
    "final_loss",
    "best_heldout_loss",
    "best_fid",
)


def heldout_columns(metrics: dict) -> dict:
    """
    The held-out figures of a run's metrics.json: the last held-out loss scored (`heldout_loss`), and the best epoch
    and its loss; all None when the run had no held-out set (no `heldout` record, or None).
    """
    heldout = metrics.get("heldout") or {}
    per_epoch, best = heldout.get("per_epoch") or [], heldout.get("best") or {}
    return {
        "heldout_loss": per_epoch[-1].get("heldout_loss") if per_epoch else None,
        "best_epoch": best.get("epoch"),
        "best_heldout_loss": best.get("heldout_loss"),
    }


def result_label(result: dict, several_samplers: bool) -> str:
    """The suffix of an eval.json result row's columns: `s3` for guidance scale 3 (`uncond` for an unconditional
    run), after `ddim50_` when the evaluation compared several samplers."""
    label = f"s{result['guidance_scale']:g}" if result.get("conditional") else "uncond"
    return f"{result['sampler']}{result['num_inference_steps']}_{label}" if several_samplers else label


def eval_columns(report: dict) -> dict:
    """
    evaluate.py's eval.json as columns: the real-vs-real floor (`fid_floor`, `kid_floor`, `is_floor`,
    `accuracy_floor`), each result row's FID, KID, IS and accuracy (`fid_s3`, ... see `result_label`; no accuracy
    column without a judge), and the lowest FID with the row it came from (`best_fid`, `best_fid_at`).
    """
    results = report.get("results") or []
    several_samplers = len({(r["sampler"], r["num_inference_steps"]) for r in results}) > 1
    floor = report.get("floor") or {}
    columns = {f"{column}_floor": floor.get(score) for score, column in EVAL_SCORES.items()}
    for result in results:
        label = result_label(result, several_samplers)
        for score, column in EVAL_SCORES.items():
            if result.get(score) is not None:
                columns[f"{column}_{label}"] = result[score]
    if results:
        best = min(results, key=lambda r: r["fid"])
        columns["best_fid"], columns["best_fid_at"] = best["fid"], result_label(best, several_samplers)
    return columns


def cell_row(name: str, cell: dict, metrics: dict | None, eval_report: dict | None = None) -> dict:
    """
    A cell's row of the sweep's table.

    Args:
        name (`str`): The cell's folder name.
        cell (`dict[str, str]`): The swept flags and their values.
        metrics (`dict`, *optional*): The run's metrics.json (train_image.py or train_2d.py); None when missing.
        eval_report (`dict`, *optional*): evaluate.py's eval.json for the run.

    Returns:
        `dict`: `cell`, the swept values, `METRIC_COLUMNS`, `HELDOUT_COLUMNS` and, with an evaluation,
        `eval_columns`; a value a run does not record is None.
    """
    metrics = metrics or {}
    row = {"cell": name, **cell}
    for column in METRIC_COLUMNS:
        row[column] = metrics.get(column)
    if row["steps"] is None:  # train_2d.py records the steps it was asked for
        row["steps"] = metrics.get("max_train_steps")
    row.update(heldout_columns(metrics))
    if eval_report is not None:
        row.update(eval_columns(eval_report))
    return row


def read_json(path: str) -> dict | None:
    """The JSON object in `path`, or None when there is no such file."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_cell_row(name: str, cell: dict, run_dir: str, eval_dir: str | None = None) -> dict:
    """`cell_row` from the run folder's metrics.json and, when given and present, `eval_dir`'s eval.json."""
    eval_report = read_json(os.path.join(eval_dir, "eval.json")) if eval_dir else None
    return cell_row(name, cell, read_json(os.path.join(run_dir, "metrics.json")), eval_report)


def table_columns(rows: list[dict]) -> list[str]:
    """Every column of `rows` in first-seen order, without those that are empty in every row."""
    columns = []
    for row in rows:
        columns += [column for column in row if column not in columns]
    return [column for column in columns if any(row.get(column) is not None for row in rows)]


def write_sweep_csv(rows: list[dict], path: str) -> None:
    """sweep.csv: one line per cell, the columns of `table_columns` (an empty field where a cell has no value)."""
    columns = table_columns(rows)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: "" if row.get(column) is None else row[column] for column in columns})


def format_value(column: str, value) -> str:
    """A value as sweep.md shows it: accuracy in percent, seconds whole, other numbers to 4 significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if column.startswith("accuracy"):
        return f"{100 * value:.1f}%"
    if column.endswith("seconds"):
        return f"{value:.0f}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _markdown_table(header: list[str], lines: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(line) + " |" for line in lines),
    ]


def pivot_table(rows: list[dict], grid: dict, column: str) -> list[str]:
    """The markdown table of one column for a two-flag grid: rows = the first flag's values, columns = the second's."""
    first, second = list(grid)
    values = {(row[first], row[second]): format_value(column, row.get(column)) for row in rows}
    lines = [[f"{first}={a}", *(values.get((a, b), "") for b in grid[second])] for a in grid[first]]
    return _markdown_table(["", *(f"{second}={b}" for b in grid[second])], lines)


def evaluation_table(names: list[str], evaluations: dict) -> list[str]:
    """The markdown table of every evaluated cell's eval.json rows, each FID beside its real-vs-real floor."""
    lines = []
    for name in names:
        report = evaluations.get(name)
        if not report:
            continue
        floor = report.get("floor") or {}
        for result in report.get("results") or []:
            lines.append(
                [
                    name,
                    f"{result['sampler']}:{result['num_inference_steps']}",
                    f"{result['omega']:g}" if result.get("conditional") else "unconditional",
                    format_value("fid", result.get("fid")),
                    format_value("fid", floor.get("fid")),
                    format_value("kid", result.get("kid")),
                    format_value("is", result.get("inception_score")),
                    format_value("accuracy", result.get("accuracy")),
                ]
            )
    header = ["cell", "sampler", "omega (s - 1)", "FID", "FID floor", "KID", "IS", "accuracy"]
    return _markdown_table(header, lines) if lines else []


def write_sweep_markdown(
    path: str,
    rows: list[dict],
    grid: dict,
    script: str,
    command: str,
    wall_seconds: float,
    evaluations: dict | None = None,
    figures: dict | None = None,
    notes: list[str] | None = None,
) -> None:
    """
    sweep.md: the table of the cells (swept values, losses, held-out loss, training time, Chamfer distance or the
    lowest FID with its floor), one table per headline score when two flags are swept, evaluate.py's rows of every
    cell (FID beside its floor, KID, IS, accuracy), the figures, the command and the wall time.

    Args:
        path (`str`): Where to write.
        rows (`list[dict]`): `cell_row` of every cell, in grid order.
        grid (`dict[str, list[str]]`): The swept flags and values.
        script (`str`): The training script.
        command (`str`): The command line that made the sweep.
        wall_seconds (`float`): Wall time of the sweep command.
        evaluations (`dict`, *optional*): Cell name -> its eval.json.
        figures (`dict`, *optional*): Caption -> file name (beside sweep.md) of each figure written.
        notes (`list[str]`, *optional*): Lines said under the tables (cells kept, figures left out).
    """
    evaluations = evaluations or {}
    shown = [
        *METRIC_COLUMNS,
        *HELDOUT_COLUMNS,
        *(("best_fid", "best_fid_at", "fid_floor") if evaluations else ()),
    ]
    columns = [column for column in table_columns(rows) if column in shown]
    columns = list(grid) + sorted(columns, key=shown.index)
    lines = [f"# Sweep of {script} over {' x '.join(grid)} ({len(rows)} runs)", ""]
    table = [[format_value(column, row.get(column)) for column in columns] for row in rows]
    lines += _markdown_table([HEADINGS.get(column, column) for column in columns], table) + [""]
    if len(grid) == 2:
        for column in PIVOTED:
            if any(row.get(column) is not None for row in rows):
                lines += [f"{HEADINGS.get(column, column)}:", "", *pivot_table(rows, grid, column), ""]
    evaluation = evaluation_table([row["cell"] for row in rows], evaluations)
    if evaluation:
        lines += ["evaluate.py, every cell (FID beside the real-vs-real floor of its data):", "", *evaluation, ""]
    for caption, file_name in (figures or {}).items():
        lines += [f"![{caption}]({file_name})", ""]
    lines += [f"- {note}" for note in notes or []] + ([""] if notes else [])
    lines += ["Command:", "", f"    {command}", "", f"Wall time of the command: {wall_seconds:.0f} s.", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
