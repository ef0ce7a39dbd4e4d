//! The dry run of scripts/gpu-check.sh, so the script cannot rot: the bundle
//! is built (`gpu-check.sh bundle`, the release binaries the suite has built
//! already, so mostly a copy and a strip) and `gpu-check.sh run` runs in it
//! with `CONVFORMER_GPU_CHECK_DRY=1` and no GPU: a fake `nvidia-smi` (an H200's
//! answer) and a fake `nvcc` (it records its arguments and writes a stub PTX)
//! on PATH. Every part runs: the library resolution, the nvcc branch, NVRTC on
//! every module (when PyTorch's CUDA wheels are there), the op checks and
//! training steps on the CUDA emulator, the benchmark and the whole model on
//! the CPU, PyTorch eager and torch.compile on the CPU at a tiny shape (with
//! CONVFORMER_TORCH_PYTHON pointing at a python with torch; else a loud
//! SKIPPED row), and the summary table, whose every row is checked. Then
//! `gpu-check.sh kernels` without the fake nvcc takes the NVRTC branch.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn write_exe(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A folder with the fake `nvidia-smi` and, if `with_nvcc`, the fake `nvcc`.
fn fake_bin(dir: &Path, with_nvcc: bool) -> PathBuf {
    let bin = dir.join(if with_nvcc { "bin-nvcc" } else { "bin" });
    std::fs::create_dir_all(&bin).unwrap();
    write_exe(
        &bin.join("nvidia-smi"),
        "#!/bin/sh\necho 'NVIDIA H200 (fake nvidia-smi of the dry run), 580.65.06, 9.0'\n",
    );
    if with_nvcc {
        write_exe(
            &bin.join("nvcc"),
            r#"#!/bin/sh
# The dry run's nvcc: records its arguments, checks it got a kernel source,
# writes a stub PTX where -o says.
if [ "$1" = "--version" ]; then echo "Cuda compilation tools, release 13.0, V13.0.48"; exit 0; fi
echo "$*" >> "$FAKE_NVCC_LOG"
out=""; src=""; prev=""
for a in "$@"; do
    [ "$prev" = "-o" ] && out="$a"
    case "$a" in *.cu) src="$a" ;; esac
    prev="$a"
done
grep -q "__global__" "$src" || { echo "$src: no kernel" >&2; exit 1; }
echo "// stub PTX of $src" > "$out"
"#,
        );
    }
    bin
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The summary table's rows: name (first 36 columns) -> value.
fn table(stdout: &str) -> Vec<(String, String)> {
    let start = stdout
        .rfind("==================== gpu-check summary ====================")
        .expect("a summary table");
    stdout[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("(ratios"))
        .map(|l| {
            let (name, value) = l.split_at(l.len().min(36));
            (name.trim().to_string(), value.trim().to_string())
        })
        .collect()
}

fn value<'a>(rows: &'a [(String, String)], name: &str) -> &'a str {
    rows.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no row {name:?} in {rows:#?}"))
}

#[test]
fn gpu_check_dry_run_runs_every_part_and_prints_every_row() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("convformer-gpu-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bundle = dir.join("bundle");
    let built = Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/gpu-check.sh"))
        .arg("bundle")
        .arg(&bundle)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "bundle: {out}{}",
        String::from_utf8_lossy(&built.stderr)
    );
    for f in [
        "cuda_gpu",
        "cuda_vs_cpu",
        "gpu-check.sh",
        "torch_reference.py",
    ] {
        assert!(bundle.join(f).is_file(), "the bundle lacks {f}");
    }
    let size: u64 = std::fs::read_dir(&bundle)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(size < 64 << 20, "bundle of {size} bytes");
    eprintln!("{}", out.trim());

    let nvcc_log = dir.join("nvcc.log");
    let run = Command::new("bash")
        .arg(bundle.join("gpu-check.sh"))
        .arg("run")
        .env("PATH", path_with(&fake_bin(&dir, true)))
        .env("CONVFORMER_GPU_CHECK_DRY", "1")
        .env("FAKE_NVCC_LOG", &nvcc_log)
        .env_remove("CUDA_HOME")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "run: {stdout}\n{stderr}");
    let rows = table(&stdout);
    eprintln!(
        "{}",
        &stdout[stdout.rfind("=== gpu-check summary").unwrap()..]
    );

    assert!(value(&rows, "GPU").starts_with("NVIDIA H200 (fake"));
    // Libraries: found (PyTorch's CUDA wheels) or said missing, never absent.
    let nvrtc = value(&rows, "NVRTC");
    assert!(
        nvrtc.contains("libnvrtc.so") || nvrtc.starts_with("MISSING"),
        "{nvrtc}"
    );
    let cublas = value(&rows, "cuBLAS");
    assert!(
        cublas.contains("libcublas.so") || cublas.starts_with("MISSING"),
        "{cublas}"
    );
    let modules = convformer::cuda::Module::ALL.len();
    if nvrtc.starts_with("MISSING") {
        eprintln!("SKIPPED: NVRTC on every module (no NVRTC here: set CONVFORMER_TORCH_PYTHON to a python with PyTorch's CUDA wheels)");
        assert!(value(&rows, "NVRTC compile, every module").starts_with("FAIL"));
    } else {
        assert_eq!(
            value(&rows, "NVRTC compile, every module"),
            format!("nvrtc sm_90 cubin: {modules}/{modules} modules compile")
        );
    }
    // The nvcc branch: every module's self-contained source, for compute_90.
    assert_eq!(
        value(&rows, "kernels PTX"),
        format!("nvcc release 13.0, compute_90: {modules}/{modules} modules")
    );
    let calls = std::fs::read_to_string(&nvcc_log).unwrap();
    assert_eq!(calls.lines().count(), modules, "{calls}");
    assert!(calls.lines().all(|l| l.contains("--ptx")
        && l.contains("-arch=compute_90")
        && l.contains("-std=c++17")));
    assert_eq!(
        std::fs::read_dir(bundle.join("ptx"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "ptx"))
            .count(),
        modules
    );
    assert_eq!(value(&rows, "kernels loaded"), "none loaded (no GPU)");

    for op in [
        "matmul",
        "linear_forward_and_backward",
        "conv1d",
        "layer_norm",
        "attention",
        "softmax_activations_bias_pool",
        "dropout_masks",
        "losses",
        "adamw",
    ] {
        let v = value(&rows, &format!("op {op}"));
        assert!(
            v.starts_with("PASS on the CUDA emulator (dry run), max abs error "),
            "op {op}: {v}"
        );
    }
    assert!(value(&rows, "allocator reuse").starts_with("SKIPPED"));
    let steps = value(&rows, "50 training steps CUDA vs CPU");
    assert!(
        steps.starts_with(
            "PASS, 5 training steps on cuda-emulator vs the CPU: max relative loss difference "
        ),
        "{steps}"
    );
    assert_eq!(
        value(&rows, "sgemm vs cuBLAS (target >= 50%)"),
        "sgemm 64^3 vs cuBLAS: SKIPPED (no GPU)"
    );
    let torch_skipped = rows.iter().any(|(n, _)| n == "PyTorch");
    for kind in ["train step", "inference"] {
        let v = value(&rows, &format!("{kind} b2 t4"));
        let ours: f64 = v
            .strip_prefix("ours ")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{kind}: {v}"));
        assert!(ours > 0.0, "{kind}: {v}");
        if torch_skipped {
            assert!(v.contains("eager - ms (-) | compile - ms (-)"), "{v}");
        } else {
            for side in ["eager", "compile"] {
                let ms: f64 = v
                    .split(&format!("{side} "))
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{kind} {side}: {v}"));
                assert!(ms > 0.0, "{v}");
            }
        }
    }
    if torch_skipped {
        let why = value(&rows, "PyTorch");
        assert!(why.starts_with("SKIPPED"), "{why}");
        eprintln!(
            "SKIPPED: the PyTorch half ({why}); set CONVFORMER_TORCH_PYTHON to a python with torch"
        );
    }
    // The table is last: only its footnote and the time follow it.
    let tail: Vec<&str> = stdout.trim_end().lines().rev().take(2).collect();
    assert!(
        tail[0].starts_with("gpu-check took ") && tail[1].starts_with("(ratios"),
        "{tail:?}"
    );

    // No nvcc: the NVRTC branch.
    let kernels = Command::new("bash")
        .arg(bundle.join("gpu-check.sh"))
        .arg("kernels")
        .env("PATH", path_with(&fake_bin(&dir, false)))
        .env("CONVFORMER_GPU_CHECK_DRY", "1")
        .env_remove("CUDA_HOME")
        .output()
        .unwrap();
    let k = String::from_utf8_lossy(&kernels.stdout);
    assert!(kernels.status.success(), "{k}");
    let krows: Vec<(String, String)> = k
        .lines()
        .filter(|l| l.starts_with("kernels PTX") || l.starts_with("NVRTC compile"))
        .map(|l| {
            let (n, v) = l.split_at(36);
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let ptx = value(&krows, "kernels PTX");
    let real_nvcc = Path::new("/usr/local/cuda/bin/nvcc").is_file()
        || Command::new("sh")
            .args(["-c", "command -v nvcc"])
            .output()
            .is_ok_and(|o| o.status.success());
    if real_nvcc {
        eprintln!("SKIPPED: the NVRTC-only branch (this machine has an nvcc: {ptx})");
    } else {
        assert!(ptx.starts_with("NVRTC at run time (no nvcc"), "{ptx}");
        assert!(!bundle.join("ptx").exists(), "a stale ptx folder stays");
    }
    assert_eq!(
        value(&krows, "NVRTC compile, every module"),
        value(&rows, "NVRTC compile, every module")
    );
    eprintln!(
        "gpu-check dry run: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
