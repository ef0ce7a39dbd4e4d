#!/usr/bin/env bash
# GPU check in two halves, for a GPU machine with the NVIDIA driver and a CUDA
# toolkit or PyTorch's CUDA wheels, but no Rust toolchain and no network.
#
#   scripts/gpu-check.sh bundle [DIR]  here: stripped release binaries of the GPU
#                                     test (cuda_gpu) and the benchmark
#                                     (cuda_vs_cpu), this script and
#                                     scripts/torch_reference.py into DIR
#                                     (default target/gpu-bundle); fails over 64 MiB
#   DIR/gpu-check.sh run              there, one call, at most 8 minutes (each part
#                                     has its own timeout), a table last:
#     1. NVRTC and cuBLAS found by path (src/cuda/libs.rs: CUDA 13 and 12 names,
#        the toolkit, PyTorch's nvidia/*/lib wheels, which this script lists);
#     2. kernels: the machine's nvcc compiles every module to PTX for its GPU
#        (the binaries read them from CONVFORMER_PTX_DIR), else NVRTC at run
#        time (a cubin for the GPU); either way every module is also
#        compiled through NVRTC;
#     3. every op CUDA vs CPU (pass/fail, max error) and 50 training steps
#        CUDA vs CPU (losses within 1e-4 relative);
#     4. the benchmark: ops CUDA vs CPU, SGEMM 4096³ vs cuBLAS, the whole
#        model's training step and inference at batch 256/1024 x seq 16/64 and
#        16384 x 16/64;
#     5. PyTorch's same work: scripts/torch_reference.py's ConvFormerNet built
#        from our model's config (cuda_vs_cpu config), eager and torch.compile
#        (dynamic shapes: one compile serves every shape), training step
#        (MSE, AdamW) and inference, at the same shapes.
#   DIR/gpu-check.sh kernels          parts 1 and 2 alone.
# Timeouts: nvidia-smi 10 s, libraries 15, sources 10, nvcc 45 (modules in
# parallel), NVRTC 40, ops and training 90, benchmark 90, PyTorch 180: 480 s.
#
# CONVFORMER_TORCH_PYTHON picks the python with torch (default python3).
# CONVFORMER_GPU_CHECK_DRY=1 is the dry run of tests/gpu_check_dry_run.rs on a
# machine without a GPU: tiny shapes, the op checks on the CUDA emulator, the
# model and PyTorch on the CPU, torch.compile with the aot_eager backend.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${CONVFORMER_TORCH_PYTHON:-python3}"
dry="${CONVFORMER_GPU_CHECK_DRY:-0}"
export CONVFORMER_GPU_CHECK_DRY="$dry"
max_bundle_mib=64
# The model's shapes, batch x sequence, as benches/cuda_vs_cpu.rs times them.
shapes="256x16,256x64,1024x16,1024x64,16384x16,16384x64"
[[ "$dry" == 1 ]] && shapes="2x4"

bundle() {
    local root out
    root="$(cd "$here/.." && pwd)"
    out="${1:-$root/target/gpu-bundle}"
    mkdir -p "$out"
    cd "$root" || exit 1
    local cargo="${CARGO:-cargo}" exes
    exes=$("$cargo" test --release --test cuda_gpu --no-run --message-format=json 2>/dev/null;
           "$cargo" bench --bench cuda_vs_cpu --no-run --message-format=json 2>/dev/null)
    for name in cuda_gpu cuda_vs_cpu; do
        local exe
        exe=$(printf '%s\n' "$exes" | python3 -c "
import json, sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get('reason') == 'compiler-artifact' and m.get('target', {}).get('name') == '$name' and m.get('executable'):
        print(m['executable'])" | tail -1)
        [[ -n "$exe" ]] || { echo "build of $name failed" >&2; exit 1; }
        cp "$exe" "$out/$name"
        strip "$out/$name"
    done
    cp "$here/gpu-check.sh" "$here/torch_reference.py" "$out/"
    local kib
    kib=$(du -sk "$out" | cut -f1)
    echo "bundle $out: $((kib / 1024)) MiB ($kib KiB), limit $max_bundle_mib MiB"
    (( kib <= max_bundle_mib * 1024 )) || { echo "bundle over $max_bundle_mib MiB" >&2; exit 1; }
}

log() { tee -a "$here/gpu-check.log"; }

# PyTorch's nvidia/*/lib wheel folders (CUDA 13: nvidia/cu13/lib), ':'-joined.
wheel_dirs() {
    local p
    for p in "$py" python3; do
        command -v "$p" >/dev/null || continue
        "$p" - 2>/dev/null <<'PY'
import glob, os, site
for base in site.getsitepackages():
    for lib in sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib"))):
        print(lib)
PY
    done | awk '!seen[$0]++' | paste -sd: -
}

libraries() {
    local dirs
    dirs="$(wheel_dirs)"
    export CONVFORMER_CUDA_LIB_DIRS="$dirs"
    # For what the libraries load themselves (libnvrtc-builtins, libcublasLt).
    export LD_LIBRARY_PATH="${dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "== libraries (wheel folders: ${dirs:-none})" | log
    timeout 15 ./cuda_vs_cpu libs > libs.txt 2>&1
    log < libs.txt
}

gpu_info() {
    gpu=$(timeout 10 nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>&1 | head -1)
    [[ -n "$gpu" ]] || gpu="nvidia-smi printed nothing"
    echo "== GPU: $gpu" | log
    cap=$(awk -F', *' 'NF >= 3 && $3 ~ /^[0-9]+\.[0-9]+$/ { split($3, v, "."); print v[1] v[2] }' <<< "$gpu")
    [[ -n "$cap" ]] || { cap=90; echo "compute capability unknown, assuming 9.0" | log; }
}

find_nvcc() {
    local c
    for c in "$(command -v nvcc 2>/dev/null)" "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" /usr/local/cuda/bin/nvcc; do
        [[ -n "$c" && -x "$c" ]] && { echo "$c"; return; }
    done
}

# Part 2: nvcc PTX for every module when nvcc is there, then NVRTC on all.
kernels() {
    local nvcc
    nvcc="$(find_nvcc)"
    rm -rf ptx src
    unset CONVFORMER_PTX_DIR
    if [[ -n "$nvcc" ]]; then
        local version
        version=$(timeout 10 "$nvcc" --version 2>&1 | grep -o 'release [0-9.]*' | head -1)
        echo "== kernels: $nvcc ($version) --ptx for compute_$cap" | log
        mkdir -p ptx
        timeout 10 ./cuda_vs_cpu sources src | log
        ls src/*.cu | xargs -P 16 -I{} sh -c \
            'f={}; s=$(basename "$f" .cu); timeout 45 "$0" --ptx -O3 -std=c++17 -arch=compute_'"$cap"' "$f" -o ptx/$s.ptx > ptx/$s.log 2>&1 || { echo "nvcc FAIL $s: $(head -3 ptx/$s.log | tr "\n" " ")"; rm -f ptx/$s.ptx; }' "$nvcc" | log
        local built total
        built=$(ls ptx/*.ptx 2>/dev/null | wc -l)
        total=$(ls src/*.cu | wc -l)
        export CONVFORMER_PTX_DIR="$here/ptx"
        kernels_row="nvcc $version, compute_$cap: $built/$total modules"
        (( built == total )) || kernels_row+=" (the rest by NVRTC at run time)"
    else
        kernels_row="NVRTC at run time (no nvcc on PATH, in CUDA_HOME or /usr/local/cuda)"
        echo "== kernels: $kernels_row" | log
    fi
    echo "== every module through NVRTC to an sm_$cap cubin (what the run compiles without nvcc)" | log
    timeout 40 ./cuda_vs_cpu nvrtc "$cap" > nvrtc.txt 2>&1
    log < nvrtc.txt
    nvrtc_row=$(grep -o 'nvrtc sm_[0-9]* cubin: .*' nvrtc.txt | tail -1)
    [[ -n "$nvrtc_row" ]] || nvrtc_row="FAIL: $(tail -1 nvrtc.txt)"
    if grep -q "nvrtc FAIL" nvrtc.txt; then nvrtc_row="FAIL, $nvrtc_row (see nvrtc.txt)"; fi
}

# Part 5: PyTorch eager and torch.compile, training step and inference.
torch_part() {
    local cfg reps
    cfg=$(timeout 10 ./cuda_vs_cpu config)
    reps=10; [[ "$dry" == 1 ]] && reps=1
    echo "== PyTorch ($py): eager and torch.compile at $shapes" | log
    GPU_CHECK_HERE="$here" timeout 180 "$py" - "$cfg" "$shapes" "$reps" > torch.txt 2>torch.err <<'PY'
import json, os, statistics, sys, time
try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # the loud line the summary shows
    print(f"torch: SKIPPED (no torch here: {e})", flush=True)
    raise SystemExit(0)
sys.path.insert(0, os.environ["GPU_CHECK_HERE"])
from torch_reference import ConvFormerNet  # noqa: E402

cfg = json.loads(sys.argv[1])
shapes = [tuple(map(int, s.split("x"))) for s in sys.argv[2].split(",")]
reps = int(sys.argv[3])
dry = os.environ.get("CONVFORMER_GPU_CHECK_DRY") == "1"
if torch.cuda.is_available():
    dev = "cuda"
elif dry:
    dev = "cpu"
else:
    print("torch: SKIPPED (torch sees no CUDA device)", flush=True)
    raise SystemExit(0)
# The dry run has no time for inductor's C++ build; aot_eager still traces
# forward and backward through dynamo and AOTAutograd.
backend = "aot_eager" if dry else "inductor"
if dry:
    torch.set_num_threads(2)
print(f"torch {torch.__version__} on {torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}, compile backend {backend}", flush=True)
torch.manual_seed(0)


def sync():
    if dev == "cuda":
        torch.cuda.synchronize()


def median_ms(fn, warm):
    times = []
    for i in range(reps + warm):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


c = cfg["in_channels"]
for mode in ("eager", "compile"):
    net = ConvFormerNet(dict(cfg, seq_len=shapes[0][1])).to(dev)
    train_net, infer_net = net, net
    if mode == "compile":
        train_net = torch.compile(net, backend=backend, dynamic=True)
        infer_net = torch.compile(net, backend=backend, dynamic=True)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    for b, t in shapes:
        x = torch.randn(b, t, c, device=dev)
        y = torch.randn(b, device=dev)

        def step():
            opt.zero_grad(set_to_none=True)
            F.mse_loss(train_net(x), y).backward()
            opt.step()

        net.train()
        ms = median_ms(step, 3)
        print(f"torch train {mode} b{b} t{t} ms={ms:.4f}", flush=True)
        net.eval()
        with torch.inference_mode():
            ms = median_ms(lambda: infer_net(x), 3)
        print(f"torch infer {mode} b{b} t{t} ms={ms:.4f}", flush=True)
PY
    local rc=$?
    log < torch.txt
    [[ $rc -eq 0 ]] || echo "torch part exit $rc$([[ $rc -eq 124 ]] && echo ' (timeout)'): $(tail -3 torch.err | tr '\n' ' ')" | log
    if [[ ! -s torch.txt ]]; then
        echo "torch: SKIPPED ($py did not run: $(tail -1 torch.err))" | log
        echo "torch: SKIPPED ($py did not run: $(tail -1 torch.err))" > torch.txt
    fi
    # A skip is said on stderr too, not only in the table.
    if grep -q "^torch: SKIPPED" torch.txt; then grep "^torch: SKIPPED" torch.txt >&2; fi
}

# The panic message of test $1 in ops.txt (run with --nocapture, so it is
# printed in place: "thread 'NAME' (id) panicked at FILE:LINE:COL:" then the
# message), or why there is none.
panic_of() {
    local msg
    msg=$(grep -A1 "^thread '$1'" ops.txt | sed -n 2p | cut -c1-300)
    echo "${msg:-no result (timeout or crash? see ops.txt)}"
}

row() { printf '%-36s %s\n' "$1" "$2"; }

# ms of a bench.csv row (the CUDA column), or empty.
bench_ms() { awk -F, -v op="$1" '$1 == op && $3 != "" { printf "%.3f\n", $3 }' bench.csv 2>/dev/null | head -1; }
torch_ms() { grep -o "^torch $1 $2 $3 ms=[0-9.]*" torch.txt 2>/dev/null | head -1 | cut -d= -f2; }
ratio() { awk -v t="$1" -v o="$2" 'BEGIN { if (t == "" || o == "" || o == 0) print "-"; else printf "%.2fx", t / o }'; }

summary() {
    echo
    echo "==================== gpu-check summary ===================="
    row "GPU" "$gpu"
    row "NVRTC" "$(grep -o '^nvrtc: .*' libs.txt | cut -c8-)"
    row "cuBLAS" "$(grep -o '^cublas: .*' libs.txt | cut -c9-)"
    row "kernels PTX" "$kernels_row"
    local loaded
    loaded=$(grep -o '^ptx [a-z_0-9]*: [a-zA-Z]*' "$here/gpu-check.log" | awk '{print $3}' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')
    row "kernels loaded" "${loaded:-none loaded (no GPU)}"
    row "NVRTC compile, every module" "$nvrtc_row"
    local op status
    for op in matmul_matches_cpu linear_forward_and_backward_match_cpu conv1d_matches_cpu \
              layer_norm_matches_cpu attention_matches_cpu softmax_activations_bias_pool_match_cpu \
              dropout_masks_are_bit_identical_to_cpu losses_match_cpu adamw_matches_cpu_optimizer; do
        status=$(grep -o "op $op: .*" ops.txt | head -1 | cut -d' ' -f3-)
        if grep -q "^test $op \.\.\. FAILED" ops.txt || [[ -z "$status" ]]; then
            status="FAIL: $(panic_of "$op")"
        fi
        local name=${op%%_match*}
        row "op ${name%_are_bit_identical_to_cpu}" "$status"
    done
    row "allocator reuse" "$(grep -o 'allocator: .*' ops.txt | head -1 | cut -d' ' -f2-)"
    local train
    if grep -q "training steps on .* max relative loss difference" ops.txt; then
        train="PASS, $(grep -o '[0-9]* training steps on .*' ops.txt | tail -1) (target <= 1e-4)"
    elif grep -q "SKIPPED: GPU training comparison" ops.txt; then
        train="SKIPPED (no GPU)"
    else
        train="FAIL: $(panic_of fifty_training_steps_match_cpu_on_the_gpu)"
    fi
    row "50 training steps CUDA vs CPU" "$train"
    local sgemm
    sgemm=$(grep -o 'sgemm [0-9]*^3: .*' bench.err | tail -1)
    [[ -n "$sgemm" ]] || sgemm=$(grep -o 'sgemm [0-9]*^3 vs cuBLAS: .*' bench.err | tail -1)
    row "sgemm vs cuBLAS (target >= 50%)" "${sgemm:-FAIL: no sgemm line in bench.err}"
    local shape b t kind ours eager comp
    for kind in "train step:train" "inference:infer"; do
        for shape in ${shapes//,/ }; do
            b="b${shape%x*}" t="t${shape#*x}"
            ours=$(bench_ms "${kind%%:*} $b $t")
            eager=$(torch_ms "${kind##*:}" eager "$b $t")
            comp=$(torch_ms "${kind##*:}" compile "$b $t")
            row "${kind%%:*} $b $t" "ours ${ours:--} ms | eager ${eager:--} ms ($(ratio "$eager" "$ours")) | compile ${comp:--} ms ($(ratio "$comp" "$ours"))"
        done
    done
    if grep -q "^torch: SKIPPED" torch.txt; then row "PyTorch" "$(grep -o '^torch: SKIPPED.*' torch.txt | cut -c8-)"; fi
    echo "(ratios: PyTorch ms / ours, above 1 = ours faster; log: $here/gpu-check.log)"
}

run() {
    cd "$here" || exit 1
    : > gpu-check.log
    local started=$SECONDS
    gpu_info
    libraries
    kernels
    echo "== ops CUDA vs CPU, 50 training steps" | log
    timeout 90 ./cuda_gpu --nocapture > ops.txt 2>&1
    echo "cuda_gpu exit $?" >> ops.txt
    log < ops.txt | grep -E '^(op |allocator|test result|[0-9]+ training steps|SKIPPED)' || true
    echo "== benchmark: ops CUDA vs CPU, SGEMM, the whole model" | log
    timeout 90 ./cuda_vs_cpu quick > bench.csv 2> bench.err
    echo "cuda_vs_cpu exit $?" >> bench.err
    log < bench.err > /dev/null
    torch_part
    summary | log
    echo "gpu-check took $((SECONDS - started)) s" | log
}

case "${1:-run}" in
    bundle) shift; bundle "$@" ;;
    run) run ;;
    kernels) cd "$here" && : > gpu-check.log && gpu_info && libraries && kernels && row "kernels PTX" "$kernels_row" && row "NVRTC compile, every module" "$nvrtc_row" ;;
    *) echo "usage: $0 bundle [DIR] | run | kernels" >&2; exit 2 ;;
esac
