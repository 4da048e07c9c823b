#!/usr/bin/env bash
# The main job: train the 2D swiss-roll DDPM on the CPU and write everything to outputs/swiss_roll.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no --cpu \
    train_scripts/train_2d.py --dataset swiss_roll --output_dir outputs/swiss_roll --overwrite_output_dir "$@"
echo "Done: see outputs/swiss_roll (metrics.json, samples.png, trajectory.gif, ...)"
