"""What evaluate.py writes beside eval.json: a grid of samples per result row, the guidance sweep figure (FID against
accuracy) and report.md, the table of every row against the real-vs-real floor."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .images import image_grid, square_grid, tensor_to_pil  # noqa: E402


def run_name(path: str) -> str:
    """A run's name in tables and file names: the last part of its folder or Hub id."""
    return os.path.basename(os.path.normpath(path))


def grid_name(path: str, sampler: str, steps: int, guidance_scale: float, num_pipelines: int) -> str:
    """The file name of a result row's grid; the run's name is in it when several runs are evaluated."""
    run = f"{run_name(path)}_" if num_pipelines > 1 else ""
    return f"samples_{run}{sampler}{steps}_s{guidance_scale:g}.png"


def save_class_grid(generated, requested, class_names, path, per_class=8):
    """One row per class (up to 10 classes; for multi-label conditions, the first 10 distinct ones), `per_class`
    samples each; unconditional: the first 64 samples (fewer in a square as near as they fill)."""
    upscale = max(1, 64 // generated.shape[-1])
    if requested is None:
        grid = square_grid(tensor_to_pil(generated[:64] * 2 - 1, upscale))
    else:
        if requested.ndim == 2:  # multi-hot conditions: the first 10 distinct ones
            distinct = []
            for condition in requested:
                if len(distinct) < 10 and not any(torch.equal(condition, seen) for seen in distinct):
                    distinct.append(condition)
            row_masks = [(requested == condition).all(dim=1) for condition in distinct]
        else:
            row_masks = [requested == class_id for class_id in range(min(len(class_names), 10))]
        row_masks = [mask for mask in row_masks if mask.any()]
        per_class = min([per_class, *(int(mask.sum()) for mask in row_masks)])  # equal rows, small runs included
        rows = [generated[mask][:per_class] for mask in row_masks]
        grid = image_grid(tensor_to_pil(torch.cat(rows) * 2 - 1, upscale), len(rows), per_class)
    grid.save(path)


def plot_sweep(results, floor, path):
    """FID against accuracy, one line per (run, sampler) through its guidance scales, each point labelled omega."""
    figure, axis = plt.subplots(figsize=(5.5, 4.2))
    lines = {}
    for result in results:
        label = f"{run_name(result['pipeline'])} {result['sampler']} {result['num_inference_steps']}"
        lines.setdefault(label, []).append(result)
    for label, points in lines.items():
        fids, accuracies = [r["fid"] for r in points], [100 * r["accuracy"] for r in points]
        axis.plot(fids, accuracies, "o-", label=label if len(lines) > 1 else None)
        for result, fid, accuracy in zip(points, fids, accuracies):
            axis.annotate(f"ω={result['omega']:g}", (fid, accuracy), textcoords="offset points", xytext=(5, -10))
    axis.axvline(floor["fid"], color="grey", linestyle="--", label=f"real vs real FID {floor['fid']:.2f}")
    axis.set_xlabel("FID (lower is better)")
    axis.set_ylabel("conditional accuracy (%)")
    axis.set_title("Guidance: quality / diversity trade-off")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def label_count_cell(split):
    """'1: 97.9% (48), 2: ...': accuracy and number of images for each number of labels asked for."""
    if not split:
        return ""
    return ", ".join(f"{count}: {100 * row['accuracy']:.1f}% ({row['images']})" for count, row in split.items())


def write_report(report, path, has_plot):
    """report.md: the settings, the table of result rows under the real-vs-real floor, the sweep and the grids."""
    floor = report["floor"]
    floor_accuracy = "" if floor["accuracy"] is None else f"{100 * floor['accuracy']:.1f}%"
    by_count = any(r.get("accuracy_by_label_count") for r in report["results"])
    lines = [
        f"# Evaluation on `{report['dataset']}`",
        "",
        f"Features (FID, KID) and IS: {report['feature_network']}; accuracy judge: {report['judge'] or 'none'}; "
        f"reference: {report['reference_images']} real images (half A of split {report['split']!r}). "
        f"Runs: {', '.join(report['pipelines'])}.",
        "",
        "| run | schedule | prediction | sampler | steps | omega (s - 1) | FID | KID | IS | accuracy | time |"
        + (" accuracy by labels asked |" if by_count else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if by_count else ""),
        f"| real vs real (half B) | | | | | | {floor['fid']:.3f} | {floor['kid']:.5f} | "
        f"{floor['inception_score']:.3f} | {floor_accuracy} | |" + (" |" if by_count else ""),
    ]
    for r in report["results"]:
        accuracy = f"{100 * r['accuracy']:.1f}%" if r["accuracy"] is not None else ""
        omega = f"{r['omega']:g}" if r["conditional"] else "unconditional"  # no guidance: no omega
        lines.append(
            f"| {run_name(r['pipeline'])} | {r['beta_schedule']} | {r['prediction_type']} | "
            f"{r['sampler']} | {r['num_inference_steps']} | {omega} | {r['fid']:.3f} | {r['kid']:.5f} | "
            f"{r['inception_score']:.3f} | {accuracy} | {r['sample_seconds']} s |"
            + (f" {label_count_cell(r['accuracy_by_label_count'])} |" if by_count else "")
        )
    lines.append("")
    if has_plot:
        lines += ["![guidance sweep](guidance_sweep.png)", ""]
    lines += [f"![{r['grid']}]({r['grid']})" for r in report["results"]]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def save_eval_figures(report: dict, output_dir: str) -> None:
    """guidance_sweep.png, when the conditional rows span more than one guidance scale, and report.md."""
    swept = [r for r in report["results"] if r["accuracy"] is not None]
    has_plot = len({r["guidance_scale"] for r in swept}) > 1
    if has_plot:
        plot_sweep(swept, report["floor"], os.path.join(output_dir, "guidance_sweep.png"))
    write_report(report, os.path.join(output_dir, "report.md"), has_plot)
