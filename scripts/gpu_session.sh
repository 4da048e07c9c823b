#!/usr/bin/env bash
# Benchmarks and the MNIST preset on a CUDA machine, which may have no network access.
# Once, on a machine with network: bash scripts/device_wheels.sh   (wheels into .whl/, MNIST into data/mnist/)
# On the CUDA machine, with ".whl" and "data/mnist" copied beside this repository:
#   bash scripts/gpu_session.sh bench    training and sampling benchmarks, CIFAR-10 U-Net (about 7 minutes)
#   bash scripts/gpu_session.sh mnist    the MNIST preset, its judge and its evaluation (EPOCHS, default 20)
# Results go to $OUT (or outputs/gpu_session). SMOKE=1 shrinks every size, to check the script on a CPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stage="${1:?name a stage: bench or mnist}"
out="${OUT:-outputs/gpu_session}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
if [ -d .whl ] && ! python3 -c "import diffusers, datasets" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
python3 -c "import torch, diffusers, datasets, accelerate; print('torch', torch.__version__, 'diffusers', \
diffusers.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__, \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')" | tee "$out/versions.txt"
device=$(python3 -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
launch=(python3 -m accelerate.commands.launch --num_processes 1 --num_machines 1 --dynamo_backend no)
[ "$device" = cpu ] && launch+=(--cpu)
if [ "${SMOKE:-0}" = 1 ]; then
    images=256 steps=3 batch=8 sample_steps=2 epochs=1 max_steps=(--max_train_steps 4) samples=64 judge_epochs=1
    few_steps=(--num_inference_steps 5)
else
    images=50000 steps=300 batch=128 sample_steps=50 epochs="${EPOCHS:-20}" max_steps=() samples=5000 judge_epochs=3
    few_steps=()
fi

case "$stage" in
    bench)
        python3 benchmarks/make_bench_images.py --output data/bench_rgb32 --num_images "$images" --resolution 32
        common=(--device "$device" --preset ddpm_cifar10 --resolution 32 --dataset data/bench_rgb32
                --batch_size "$batch" --steps "$steps" --ours_mixed_precision bf16 --peak_tflops 790)
        python3 benchmarks/bench_train.py "${common[@]}" --output "$out/bench_train.json" 2>&1 | tee "$out/bench_train.log"
        python3 benchmarks/bench_train.py "${common[@]}" --cases ddpm_hf --output "$out/bench_train_levers_off.json" \
            --ours_args "--no-torch_compile --no-data_on_device --no-channels_last --no-fused_adamw --loss_read_steps 1" \
            2>&1 | tee "$out/bench_train_levers_off.log"
        for sample_batch in 256 16; do
            [ "${SMOKE:-0}" = 1 ] && sample_batch=$((sample_batch / 16))
            python3 benchmarks/bench_sample.py --device "$device" --preset ddpm_cifar10 --resolution 32 --channels 3 \
                --num_classes 10 --batch_size "$sample_batch" --num_inference_steps "$sample_steps" --unconditional \
                --compiled --output "$out/bench_sample_b$sample_batch.json" 2>&1 | tee "$out/bench_sample_b$sample_batch.log"
        done
        ;;
    mnist)
        run="outputs/mnist_gpu"
        "${launch[@]}" --mixed_precision bf16 train_scripts/train_image.py --config train_scripts/configs/mnist.yaml \
            --dataset_name data/mnist/train.npz --num_epochs "$epochs" "${max_steps[@]}" "${few_steps[@]}" \
            --output_dir "$run" \
            --overwrite_output_dir --logger none 2>&1 | tr '\r' '\n' | grep -v "it/s" | tee "$out/train.log"
        "${launch[@]}" --mixed_precision no train_scripts/train_classifier.py --dataset_name data/mnist/train.npz \
            --test_dataset_name data/mnist/test.npz --resolution 32 --num_epochs "$judge_epochs" \
            --output_dir outputs/mnist_gpu_judge --overwrite_output_dir 2>&1 | tr '\r' '\n' | grep -v "it/s" \
            | tee "$out/judge.log"
        python3 train_scripts/evaluate.py --pipeline "$run" --dataset data/mnist/test.npz \
            --feature_network outputs/mnist_gpu_judge --output_dir "$out/eval" --num_samples "$samples" \
            --guidance_scales 1 1.5 2 3 4 6 "${few_steps[@]}" 2>&1 | tee "$out/eval.log"
        cp "$run"/{metrics.json,grid.png,loss_curve.png,denoising.gif,denoising_grid.png,README.md} "$out/"
        cp outputs/mnist_gpu_judge/*.json "$out/eval/" 2>/dev/null || true
        ;;
    *)
        echo "Unknown stage '$stage'; choose bench or mnist." >&2
        exit 2
        ;;
esac
echo "gpu_session $stage done: $out"
