#!/usr/bin/env bash
# Benchmarks, CUDA tests and the MNIST lab on a CUDA machine, which may have no network access.
# Once, on a machine with network: bash scripts/device_wheels.sh   (wheels into .whl/, MNIST into data/mnist/)
# On the CUDA machine, with ".whl" and "data/mnist" copied beside this repository:
#   bash scripts/gpu_session.sh bench    training and sampling benchmarks, CIFAR-10 U-Net
#   bash scripts/gpu_session.sh tests    the device-aware tests on the GPU (DDPM_HF_TEST_DEVICE=cuda)
#   bash scripts/gpu_session.sh mnist    the MNIST preset for EPOCHS epochs (default 20), its judge and its evaluation
#   bash scripts/gpu_session.sh quick    the tests beside the training benchmark, then plain sampling (3 minutes)
#   bash scripts/gpu_session.sh all      bench, then mnist with the tests beside it, within BUDGET seconds (default
#                                        530): mnist trains as many epochs as the time left allows
# Results go to $OUT (or outputs/gpu_session). SMOKE=1 shrinks every size, to check the script on a CPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stage="${1:?name a stage: bench, tests, mnist, quick or all}"
out="${OUT:-outputs/gpu_session}"
mkdir -p "$out"
started=$(date +%s)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
if [ -d .whl ] && ! python3 -c "import diffusers, datasets, gradio" 2>/dev/null; then
    rm -rf /tmp/site  # wheels of an earlier set would stay beside these
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
if ! python3 -P -c "import ddpm_hf" 2>/dev/null; then
    # ddpm_hf laid out as pip installs it (pipelines/ inside it, as ddpm_hf.pipelines), without building offline;
    # Python runs with -P where the repository root would otherwise shadow it
    rm -rf /tmp/ddpm_hf_site && mkdir -p /tmp/ddpm_hf_site && cp -r ddpm_hf /tmp/ddpm_hf_site/
    cp -r pipelines /tmp/ddpm_hf_site/ddpm_hf/pipelines
    export PYTHONPATH="/tmp/ddpm_hf_site:${PYTHONPATH:-}"
fi
python3 -P -c "import torch, diffusers, datasets, accelerate, ddpm_hf; print('torch', torch.__version__, 'diffusers', \
diffusers.__version__, 'datasets', datasets.__version__, 'accelerate', accelerate.__version__, \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')" | tee "$out/versions.txt"
device=$(python3 -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
launch=(python3 -P -m accelerate.commands.launch --num_processes 1 --num_machines 1 --dynamo_backend no)
[ "$device" = cpu ] && launch+=(--cpu)
if [ "${SMOKE:-0}" = 1 ]; then
    images=256 steps=3 batch=8 sample_steps=2 samples=20 judge_epochs=1 sample_batches=(16 4)
    few_steps=(--num_inference_steps 5) mnist_data=(--max_train_steps 4) judge_data=(--dataset_name digits)
else
    images=20000 steps="${STEPS:-200}" batch=128 sample_steps=50 samples=1000 judge_epochs=3 sample_batches=(256 16)
    few_steps=() mnist_data=()
    judge_data=(--dataset_name data/mnist/train.npz --test_dataset_name data/mnist/test.npz)
fi
seconds_left() { echo $(( ${BUDGET:-530} - $(date +%s) + started )); }

run_bench() {
    python3 benchmarks/make_bench_images.py --output data/bench_rgb32 --num_images "$images" --resolution 32
    peak=$(python3 benchmarks/bench_matmul.py)
    echo "bf16 matmul peak, measured: $peak TFLOP/s" | tee "$out/matmul_peak.txt"
    common=(--device "$device" --preset ddpm_cifar10 --resolution 32 --dataset data/bench_rgb32
            --batch_size "$batch" --steps "$steps" --peak_tflops "$peak")
    # the example as shipped and tuned, and train_image.py with its defaults (bf16, every lever on)
    python3 benchmarks/bench_train.py "${common[@]}" --ours_mixed_precision bf16 --output "$out/bench_train.json" \
        2>&1 | tee "$out/bench_train.log"
    # what torch.compile adds, and the float32 eager run the bf16 + compiled losses are held against
    python3 benchmarks/bench_train.py "${common[@]}" --cases ddpm_hf --ours_mixed_precision bf16 \
        --ours_args=--no-torch_compile --output "$out/bench_train_no_compile.json" 2>&1 \
        | tee "$out/bench_train_no_compile.log"
    python3 benchmarks/bench_train.py "${common[@]}" --cases ddpm_hf --ours_mixed_precision no \
        --ours_args "--no-torch_compile --no-data_on_device --no-channels_last --no-fused_adamw --loss_read_steps 1" \
        --output "$out/bench_train_fp32_levers_off.json" 2>&1 | tee "$out/bench_train_fp32_levers_off.log"
    python3 benchmarks/compare_losses.py "$out/bench_train.json" "$out/bench_train_fp32_levers_off.json" \
        --output "$out/loss_tracking.json" | tee "$out/loss_tracking.log" || true
    for sample_batch in "${sample_batches[@]}"; do
        python3 benchmarks/bench_sample.py --device "$device" --preset ddpm_cifar10 --resolution 32 --channels 3 \
            --num_classes 10 --batch_size "$sample_batch" --num_inference_steps "$sample_steps" --unconditional \
            --compiled --compiled_cases uncond --repeats 2 --output "$out/bench_sample_b$sample_batch.json" 2>&1 \
            | tee "$out/bench_sample_b$sample_batch.log"
    done
}

run_tests() {
    # scheduler and pipeline tests on the device, then the Space's float16 GPU path (its other tests expect the
    # CPU); two runs, so that a module that fails to import stops only its own
    DDPM_HF_TEST_DEVICE="$device" python3 -P -m pytest -q -p no:cacheprovider -s tests/schedulers \
        tests/pipelines/test_pipeline_ddpm_cfg_half.py tests/pipelines/test_pipeline_ddpm_cfg_compiled.py \
        tests/pipelines/test_pipeline_ddpm_cfg.py --junitxml "$out/tests.xml" > "$out/tests.log" 2>&1 \
        || echo "tests: failures, see tests.log" >> "$out/tests.log"
    python3 -P -m pytest -q -p no:cacheprovider -s tests/spaces_app/test_app.py \
        -k "gpu or loads_the_folder or api_returns" --junitxml "$out/tests_space.xml" > "$out/tests_space.log" 2>&1 \
        || echo "tests: failures, see tests_space.log" >> "$out/tests_space.log"
    tail -n 2 "$out/tests.log" "$out/tests_space.log"
}

run_mnist() {
    local epochs="$1" run="outputs/mnist_gpu"
    echo "MNIST: $epochs epoch(s)" | tee "$out/mnist_epochs.txt"
    "${launch[@]}" --mixed_precision bf16 train_scripts/train_image.py --config train_scripts/configs/mnist.yaml \
        --dataset_name data/mnist/train.npz --num_epochs "$epochs" "${mnist_data[@]}" "${few_steps[@]}" \
        --output_dir "$run" --overwrite_output_dir --logger none 2>&1 | tr '\r' '\n' | grep -v "it/s" \
        | tee "$out/train.log"
    "${launch[@]}" --mixed_precision no train_scripts/train_classifier.py "${judge_data[@]}" --resolution 32 --num_epochs "$judge_epochs" \
        --output_dir outputs/mnist_gpu_judge --overwrite_output_dir 2>&1 | tr '\r' '\n' | grep -v "it/s" \
        | tee "$out/judge.log"
    # omega 0 and 2 (guidance scale 1 and 3), DDPM with all T steps, the samples kept for anyone to judge again
    python3 train_scripts/evaluate.py --pipeline "$run" --dataset data/mnist/test.npz \
        --feature_network outputs/mnist_gpu_judge --output_dir "$out/eval" --num_samples "$samples" \
        --guidance_scales 1 3 --no-compiled_sampling --save_samples "${few_steps[@]}" 2>&1 | tr '\r' '\n' \
        | grep -v "img/s" | tee "$out/eval.log"
    cp "$run"/{metrics.json,grid.png,loss_curve.png} "$out/"
    cp outputs/mnist_gpu_judge/metrics.json "$out/judge_metrics.json" 2>/dev/null || true
}

case "$stage" in
    bench) run_bench ;;
    quick)
        # a short lease: the CUDA tests beside the training benchmark (first step and all), then plain sampling
        run_tests &
        tests_pid=$!
        peak=$(python3 benchmarks/bench_matmul.py)
        echo "bf16 matmul peak, measured: $peak TFLOP/s" | tee "$out/matmul_peak.txt"
        python3 benchmarks/make_bench_images.py --output data/bench_rgb32 --num_images "$images" --resolution 32
        python3 benchmarks/bench_train.py --device "$device" --preset ddpm_cifar10 --resolution 32 \
            --dataset data/bench_rgb32 --batch_size "$batch" --steps "$steps" --peak_tflops "$peak" \
            --ours_mixed_precision bf16 --output "$out/bench_train.json" 2>&1 | tee "$out/bench_train.log"
        wait "$tests_pid"
        python3 benchmarks/bench_sample.py --device "$device" --preset ddpm_cifar10 --resolution 32 --channels 3 \
            --num_classes 10 --batch_size "${sample_batches[0]}" --num_inference_steps "$sample_steps" \
            --unconditional --repeats 2 --output "$out/bench_sample_b${sample_batches[0]}.json" 2>&1 \
            | tee "$out/bench_sample_b${sample_batches[0]}.log"
        ;;
    tests) run_tests ;;
    mnist) run_mnist "${EPOCHS:-20}" ;;
    all)
        run_bench
        # MNIST's epochs from the time left: about 200 s for compile, setup, the judge and the evaluation, and 15 s
        # per epoch; the tests run beside it (its speed is not measured)
        left=$(seconds_left)
        epochs=$(( (left - 200) / 15 ))
        [ "$epochs" -gt 20 ] && epochs=20
        [ "$epochs" -lt 1 ] && epochs=1
        echo "$left s left after the benchmarks"
        run_tests &
        tests_pid=$!
        run_mnist "$epochs"
        wait "$tests_pid"
        ;;
    *)
        echo "Unknown stage '$stage'; choose bench, tests, mnist or all." >&2
        exit 2
        ;;
esac
echo "gpu_session $stage done in $(( $(date +%s) - started )) s: $out"
