#!/usr/bin/env bash
# GPU check in two halves, for a GPU machine with the NVIDIA driver and a CUDA
# toolkit (or PyTorch's CUDA wheels) but no Rust toolchain and no registry.
#
#   scripts/gpu-check.sh bundle [DIR]   here: build stripped release binaries of
#                                      the GPU test and the cuda-vs-cpu benchmark
#                                      into DIR (default target/gpu-bundle, < 64 MiB)
#   DIR/gpu-check.sh run               there: kernels compile with the machine's
#                                      NVRTC; runs every op CUDA vs CPU (forward and
#                                      backward), 50 training steps CUDA vs CPU
#                                      (same seed), the benchmark table, and a PyTorch
#                                      eager step at the model's shapes if torch is
#                                      installed; prints a short table last.
# Budget: about 8 minutes in total (each part has its own timeout).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

bundle() {
    local root out
    root="$(cd "$here/.." && pwd)"
    out="${1:-$root/target/gpu-bundle}"
    mkdir -p "$out"
    cd "$root"
    local exes
    exes=$(cargo test --release --test cuda_gpu --no-run --message-format=json 2>/dev/null;
           cargo bench --bench cuda_vs_cpu --no-run --message-format=json 2>/dev/null)
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
    cp "$here/gpu-check.sh" "$out/"
    du -sh "$out"
}

# Finds NVRTC / cuBLAS: the toolkit's lib64, or the nvidia-* wheels PyTorch ships.
library_path() {
    local dirs=() d
    for d in "${CUDA_HOME:-}/lib64" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        [[ -d "$d" ]] && dirs+=("$d")
    done
    if command -v python3 >/dev/null; then
        while read -r d; do [[ -d "$d" ]] && dirs+=("$d"); done < <(python3 - 2>/dev/null <<'PY'
import glob, os, site
for base in site.getsitepackages():
    for lib in glob.glob(os.path.join(base, "nvidia", "*", "lib")):
        print(lib)
PY
)
    fi
    local IFS=:
    echo "${dirs[*]}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

torch_step() {
    python3 - <<'PY'
# One training step of a ConvFormerNet-shaped model in PyTorch eager (the peer):
# conv1d 1->48 k5, GELU, 2 transformer encoder layers (6 heads, ff 243), mean
# pool, linear head, Huber loss, AdamW. Batch 256, sequence 64.
import time, torch
if not torch.cuda.is_available():
    print("torch: no CUDA"); raise SystemExit
dev = "cuda"
class Net(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.conv = torch.nn.Conv1d(1, 48, 5, padding="same")
        layer = torch.nn.TransformerEncoderLayer(48, 6, 243, dropout=0.1, activation="gelu", batch_first=True)
        s.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        s.head = torch.nn.Linear(48, 1)
    def forward(s, x):
        h = torch.nn.functional.gelu(s.conv(x)).transpose(1, 2)
        return s.head(s.enc(h).mean(1)).squeeze(1)
net = Net().to(dev)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
x, y = torch.randn(256, 1, 64, device=dev), torch.randn(256, device=dev)
def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.huber_loss(net(x), y)
    loss.backward()
    opt.step()
for _ in range(5): step()
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(50): step()
torch.cuda.synchronize()
print(f"torch eager training step b256 t64: {(time.perf_counter() - t) / 50 * 1e3:.3f} ms on {torch.cuda.get_device_name()}")
PY
}

run() {
    cd "$here"
    export LD_LIBRARY_PATH
    LD_LIBRARY_PATH="$(library_path)"
    local log="$here/gpu-check.log"
    : > "$log"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$log"
    echo "== ops: CUDA vs CPU (forward and backward)" | tee -a "$log"
    local ops_status=FAIL
    timeout 240 ./cuda_gpu --nocapture 2>&1 | tee -a "$log" | tail -5
    [[ ${PIPESTATUS[0]} -eq 0 ]] && ops_status=PASS
    grep -q "SKIPPED: GPU kernel checks" "$log" && ops_status="SKIPPED (no usable GPU, see $log)"
    echo "== benchmark: CUDA vs CPU" | tee -a "$log"
    timeout 180 ./cuda_vs_cpu quick > bench.csv 2> >(tee -a "$log" >&2)
    echo "== PyTorch eager step" | tee -a "$log"
    local torch_line
    torch_line=$(timeout 60 bash -c "$(declare -f torch_step); torch_step" 2>&1 | tail -1)
    echo "$torch_line" | tee -a "$log"
    echo
    echo "==================== gpu-check summary ===================="
    printf '%-40s %s\n' "ops CUDA vs CPU (fwd+bwd, all kernels)" "$ops_status"
    grep -E "^sgemm" "$log" | tail -1
    grep -E "attention (fwd|bwd) .* b256 t16|linear\+gelu fwd .* b256 t16|conv1d bwd 48" "$log" | head -4
    local train_status="FAIL (see $log)"
    grep -q "training steps on cuda:0 vs the CPU" "$log" &&
        train_status="PASS, $(grep -o 'max relative loss difference .*' "$log" | tail -1)"
    grep -q "SKIPPED: GPU training comparison" "$log" && train_status="SKIPPED (no usable GPU)"
    printf '%-40s %s\n' "50 training steps CUDA vs CPU" "$train_status"
    echo "$torch_line"
}

case "${1:-run}" in
    bundle) shift; bundle "$@" ;;
    run) run ;;
    *) echo "usage: $0 bundle [DIR] | run" >&2; exit 2 ;;
esac
