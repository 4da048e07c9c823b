#!/usr/bin/env bash
# The main job, on the CPU:
#   bash scripts/main.sh              class-conditional digits DDPM -> outputs/digits/
#   bash scripts/main.sh swiss_roll   2D swiss-roll DDPM            -> outputs/swiss_roll/
# Further arguments go to the training script.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
SECONDS=0  # the job's wall time, printed at the end (the install above is not counted)
job="${1:-digits}"
[ $# -gt 0 ] && shift
launch=(accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no --cpu)
case "$job" in
    digits)
        "${launch[@]}" train_scripts/train_image.py --config train_scripts/configs/digits.yaml \
            --output_dir outputs/digits --overwrite_output_dir "$@"
        echo "Done in ${SECONDS} s: see outputs/digits (grid.png, denoising.gif, loss_curve.png, metrics.json, the pipeline)"
        ;;
    swiss_roll)
        "${launch[@]}" train_scripts/train_2d.py --dataset swiss_roll --output_dir outputs/swiss_roll \
            --overwrite_output_dir "$@"
        echo "Done in ${SECONDS} s: see outputs/swiss_roll (metrics.json, samples.png, trajectory.gif, the pipeline)"
        ;;
    *)
        echo "Unknown job '$job'; choose digits or swiss_roll." >&2
        exit 2
        ;;
esac
