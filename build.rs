//! Build script: (1) compiles the CUDA-execution emulator with every kernel as
//! C++ (kernels/emu), for the tests that run the kernels without a GPU; (2) when
//! an `nvcc` is found, compiles each kernels/*.cu to PTX for CUDA_COMPUTE_CAP
//! (default 80). Without nvcc the runtime compiles the embedded sources with
//! NVRTC on first use, so nothing CUDA is needed to build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODULES: &[&str] = &[
    "adamw",
    "attention",
    "conv1d",
    "dropout",
    "elementwise",
    "gemm",
    "layernorm",
    "loss",
    "pool",
    "softmax",
];

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");

    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("kernels/emu/emu_api.cpp")
        // The race checker: GCC's thread-sanitizer instrumentation calls the
        // __tsan_* hooks that race.cpp defines (no TSan runtime is linked).
        .file("kernels/emu/race.cpp")
        .file("kernels/emu/planted_bugs.cpp")
        .flag("-fsanitize=thread")
        .flag("--param=tsan-instrument-func-entry-exit=0")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .compile("convformer_cuda_emu");

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let ptx_dir = out.join("ptx");
    std::fs::create_dir_all(&ptx_dir).expect("create OUT_DIR/ptx");
    let compiled = match find_nvcc() {
        Some(nvcc) => compile_ptx(&nvcc, &ptx_dir),
        None => Vec::new(),
    };
    write_ptx_table(&out.join("prebuilt_ptx.rs"), &ptx_dir, &compiled);
}

fn find_nvcc() -> Option<PathBuf> {
    if let Ok(p) = env::var("NVCC") {
        return Some(PathBuf::from(p));
    }
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join("nvcc"))
        .find(|p| p.is_file())
}

/// Compiles every module; a module nvcc rejects is left to NVRTC at run time,
/// with a cargo warning saying so.
fn compile_ptx(nvcc: &Path, dir: &Path) -> Vec<&'static str> {
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let mut done = Vec::new();
    for m in MODULES {
        let status = Command::new(nvcc)
            .args(["--ptx", "-O3", "-std=c++17", "-Ikernels"])
            .arg(format!("-arch=compute_{cap}"))
            .arg(format!("kernels/{m}.cu"))
            .arg("-o")
            .arg(dir.join(format!("{m}.ptx")))
            .status();
        match status {
            Ok(s) if s.success() => done.push(*m),
            other => println!("cargo:warning=nvcc failed on kernels/{m}.cu ({other:?}); NVRTC will compile it at run time"),
        }
    }
    done
}

fn write_ptx_table(file: &Path, dir: &Path, compiled: &[&str]) {
    let mut src = String::from("/// PTX compiled by nvcc at build time, per module file stem.\npub const PREBUILT_PTX: &[(&str, &str)] = &[\n");
    for m in compiled {
        let path = dir.join(format!("{m}.ptx"));
        src.push_str(&format!(
            "    ({m:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    src.push_str("];\n");
    std::fs::write(file, src).expect("write prebuilt_ptx.rs");
}
