//! NVRTC and cuBLAS found by path (src/cuda/libs.rs): the search order on a
//! fake library folder with CUDA 13 names, a stub `libnvrtc.so.13` (compiled
//! here) really opened and called through the same entry points as the real
//! library, and, where PyTorch's CUDA 13 wheels are installed, the real
//! `libnvrtc.so.13` compiling every kernel and the real `libcublas.so.13`
//! exporting what the benchmark calls.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use convformer::cuda::libs::{candidates, search_dirs, Cublas, CudaLib, Nvrtc, LIB_DIRS_ENV};
use convformer::cuda::Module;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "convformer-cuda-libs-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn touch(dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for n in names {
        std::fs::write(dir.join(n), b"").unwrap();
    }
}

fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
    let vars: Vec<(String, OsString)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
        .collect();
    move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

/// The layouts of a CUDA 13 machine: PyTorch's wheel folder with only `.so.13`
/// names (and the look-alikes `libnvrtc-builtins`, `libcublasLt`), and a CUDA
/// 12 toolkit. The wheel folder, named first, wins; `.so.13` comes first there.
#[test]
fn cuda13_names_are_found_in_a_fake_library_folder() {
    let root = temp_dir("fake");
    let wheel = root.join("site-packages/nvidia/cu13/lib");
    let toolkit = root.join("cuda-12.8");
    touch(
        &wheel,
        &[
            "libnvrtc.so.13",
            "libnvrtc-builtins.so.13.0",
            "libcublas.so.13.0.1",
            "libcublas.so.13",
            "libcublasLt.so.13",
            "libcudart.so.13",
        ],
    );
    touch(
        &toolkit.join("lib64"),
        &["libnvrtc.so.12", "libnvrtc.so", "libcublas.so.12"],
    );
    let env = env_of(&[(LIB_DIRS_ENV, &wheel), ("CUDA_HOME", &toolkit)]);
    let dirs = search_dirs(&env);
    assert_eq!(dirs[0], wheel);
    assert_eq!(dirs[1], toolkit.join("lib64"));

    let nvrtc = candidates(CudaLib::Nvrtc, &dirs, &env, None);
    assert_eq!(
        nvrtc[..3],
        [
            wheel.join("libnvrtc.so.13"),
            toolkit.join("lib64/libnvrtc.so.12"),
            toolkit.join("lib64/libnvrtc.so"),
        ]
    );
    // Then the bare sonames for the dynamic linker's own search, 13 first.
    let bare: Vec<&Path> = nvrtc
        .iter()
        .filter(|p| p.parent() == Some(Path::new("")))
        .map(|p| p.as_path())
        .collect();
    assert_eq!(
        bare,
        [
            Path::new("libnvrtc.so.13"),
            Path::new("libnvrtc.so.12"),
            Path::new("libnvrtc.so")
        ]
    );
    assert!(nvrtc
        .iter()
        .all(|p| !p.to_string_lossy().contains("builtins")));

    let cublas = candidates(CudaLib::Cublas, &dirs, &env, None);
    assert_eq!(
        cublas[..3],
        [
            wheel.join("libcublas.so.13"),
            wheel.join("libcublas.so.13.0.1"),
            toolkit.join("lib64/libcublas.so.12"),
        ]
    );
    assert!(cublas
        .iter()
        .all(|p| !p.to_string_lossy().contains("cublasLt")));

    // A CUDA 12 driver: its PTX loader cannot read CUDA 13's PTX, so 13 is left out.
    let on_12 = candidates(CudaLib::Nvrtc, &dirs, &env, Some(12));
    assert_eq!(on_12[0], toolkit.join("lib64/libnvrtc.so.12"));
    assert!(on_12
        .iter()
        .all(|p| !p.to_string_lossy().contains(".so.13")));

    // The override comes before every search.
    let chosen = root.join("elsewhere/libnvrtc.so.13.0.48");
    let env = env_of(&[(LIB_DIRS_ENV, &wheel), ("CONVFORMER_NVRTC", &chosen)]);
    assert_eq!(
        candidates(CudaLib::Nvrtc, &search_dirs(&env), &env, None)[0],
        chosen
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Why this module exists: cudarc's own loader never tries `.so.13`.
#[test]
fn cudarcs_loader_would_not_find_cuda13() {
    let names = cudarc::get_lib_name_candidates("nvrtc");
    assert!(names.iter().any(|n| n == "libnvrtc.so.12"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains(".so.13")), "{names:?}");
}

/// A stand-in for NVRTC with the same entry points: "compiles" to a PTX that
/// names the program, the architecture option and the source length, and
/// fails with a log on `#error`.
const STUB_NVRTC: &str = r##"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef struct { char *name, *src, *ptx, *log; } prog;
int nvrtcVersion(int *major, int *minor) { *major = 13; *minor = 0; return 0; }
const char *nvrtcGetErrorString(int r) { return r == 6 ? "NVRTC_ERROR_COMPILATION" : "stub error"; }
int nvrtcCreateProgram(void **p, const char *src, const char *name, int n,
                       const char *const *headers, const char *const *names) {
    (void)headers; (void)names;
    if (n != 0) return 4;
    prog *q = calloc(1, sizeof *q);
    q->name = strdup(name); q->src = strdup(src);
    *p = q; return 0;
}
int nvrtcCompileProgram(void *p, int n, const char *const *opts) {
    prog *q = p; const char *arch = "default"; int std17 = 0;
    for (int i = 0; i < n; i++) {
        if (!strncmp(opts[i], "--gpu-architecture=", 19)) arch = opts[i] + 19;
        if (!strcmp(opts[i], "-std=c++17")) std17 = 1;
    }
    if (strstr(q->src, "#error") || !std17) { q->log = strdup("stub.cu(1): error: #error or no -std=c++17"); return 6; }
    q->ptx = malloc(256);
    snprintf(q->ptx, 256, "// stub PTX of %s for %s, %zu source bytes\n", q->name, arch, strlen(q->src));
    return 0;
}
int nvrtcGetPTXSize(void *p, size_t *n) { prog *q = p; if (!q->ptx) return 1; *n = strlen(q->ptx) + 1; return 0; }
int nvrtcGetPTX(void *p, char *out) { prog *q = p; strcpy(out, q->ptx); return 0; }
int nvrtcGetProgramLogSize(void *p, size_t *n) { prog *q = p; *n = q->log ? strlen(q->log) + 1 : 1; return 0; }
int nvrtcGetProgramLog(void *p, char *out) { prog *q = p; strcpy(out, q->log ? q->log : ""); return 0; }
int nvrtcDestroyProgram(void **p) { prog *q = *p; free(q->name); free(q->src); free(q->ptx); free(q->log); free(q); *p = 0; return 0; }
"##;

/// Builds the stub as `DIR/libnvrtc.so.13` (the only NVRTC in the folder).
fn build_stub(dir: &Path) -> Option<PathBuf> {
    std::fs::write(dir.join("stub_nvrtc.c"), STUB_NVRTC).unwrap();
    let lib = dir.join("libnvrtc.so.13");
    let status = Command::new("cc")
        .args([
            "-shared",
            "-fPIC",
            "-O1",
            "-Wl,-soname,libnvrtc.so.13",
            "-o",
        ])
        .arg(&lib)
        .arg(dir.join("stub_nvrtc.c"))
        .status()
        .ok()?;
    status.success().then_some(lib)
}

#[test]
fn a_library_named_only_so13_is_opened_and_called() {
    let dir = temp_dir("stub");
    let Some(stub) = build_stub(&dir) else {
        eprintln!("SKIPPED: no C compiler (`cc`) to build the stub NVRTC");
        return;
    };
    let env = env_of(&[(LIB_DIRS_ENV, &dir)]);
    let found = candidates(CudaLib::Nvrtc, &search_dirs(&env), &env, None);
    assert_eq!(found[0], stub);
    let nvrtc = Nvrtc::open(&found).unwrap();
    assert_eq!(nvrtc.path(), stub);
    assert_eq!(nvrtc.version(), (13, 0));

    let src = Module::ALL[0].source();
    let opts = [
        "-std=c++17".to_string(),
        "--gpu-architecture=compute_90".to_string(),
    ];
    let ptx = nvrtc.compile(&src, "first.cu", &opts).unwrap();
    assert_eq!(
        ptx,
        format!(
            "// stub PTX of first.cu for compute_90, {} source bytes\n",
            src.len()
        )
    );

    // A failed compile is an error carrying NVRTC's log.
    let err = nvrtc
        .compile("#error no", "bad.cu", &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NVRTC_ERROR_COMPILATION") && err.contains("stub.cu(1): error"),
        "{err}"
    );
    assert!(nvrtc.compile("a\0b", "nul.cu", &opts).is_err());

    // Nothing that loads: the error names every file tried and the variables.
    let missing = [dir.join("libnvrtc.so.99"), dir.join("stub_nvrtc.c")];
    let err = Nvrtc::open(&missing)
        .err()
        .expect("nothing loads")
        .to_string();
    assert!(
        err.contains("libnvrtc.so.99")
            && err.contains("stub_nvrtc.c")
            && err.contains("CONVFORMER_NVRTC"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The folders of PyTorch's `nvidia/*/lib` wheels, from the python that
/// `CONVFORMER_TORCH_PYTHON` names (the scan scripts/gpu-check.sh does).
fn wheel_dirs() -> Vec<PathBuf> {
    let python = std::env::var("CONVFORMER_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args([
            "-c",
            "import glob, os, site\nfor b in site.getsitepackages():\n    for d in glob.glob(os.path.join(b, 'nvidia', '*', 'lib')): print(d)",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(PathBuf::from)
            .collect(),
        _ => Vec::new(),
    }
}

fn wheel_lib(lib: CudaLib) -> Option<PathBuf> {
    let dirs = wheel_dirs();
    let none = |_: &str| None;
    candidates(lib, &dirs, &none, None)
        .into_iter()
        .find(|p| p.is_absolute() && p.to_string_lossy().contains(".so.13"))
}

/// The real CUDA 13 NVRTC (PyTorch's wheel) compiles every module to PTX for
/// sm_90 and sm_80 and to an sm_90 cubin (what the GPU run loads) through
/// the same calls the GPU run makes.
#[test]
fn real_cuda13_nvrtc_compiles_every_kernel() {
    let Some(path) = wheel_lib(CudaLib::Nvrtc) else {
        eprintln!("SKIPPED: no libnvrtc.so.13 in PyTorch's nvidia wheels (set CONVFORMER_TORCH_PYTHON to a python with torch for CUDA 13)");
        return;
    };
    let nvrtc = Nvrtc::open(std::slice::from_ref(&path)).unwrap();
    assert_eq!(nvrtc.version().0, 13, "{}", path.display());
    for arch in ["compute_90", "compute_80"] {
        let opts = [
            "-std=c++17".to_string(),
            format!("--gpu-architecture={arch}"),
        ];
        for m in Module::ALL {
            let ptx = nvrtc
                .compile(&m.source(), &format!("{}.cu", m.stem()), &opts)
                .unwrap_or_else(|e| panic!("kernels/{}.cu for {arch}: {e}", m.stem()));
            assert!(
                ptx.contains(&format!(".target sm_{}", &arch[8..])),
                "kernels/{}.cu: {}",
                m.stem(),
                &ptx[..ptx.len().min(400)]
            );
            for k in m.kernels() {
                assert!(
                    ptx.contains(&format!(".entry {k}(")),
                    "kernels/{}.cu has no entry {k} for {arch}",
                    m.stem()
                );
            }
        }
    }
    // What the GPU run loads: a cubin for the GPU's sm_XY (no PTX JIT).
    let opts = [
        "-std=c++17".to_string(),
        "--gpu-architecture=sm_90".to_string(),
    ];
    for m in Module::ALL {
        let cubin = nvrtc
            .compile_cubin(&m.source(), &format!("{}.cu", m.stem()), &opts)
            .unwrap_or_else(|e| panic!("kernels/{}.cu as an sm_90 cubin: {e}", m.stem()));
        assert_eq!(
            &cubin[..4],
            b"\x7fELF",
            "kernels/{}.cu: not an ELF cubin",
            m.stem()
        );
        for k in m.kernels() {
            let name = k.as_bytes();
            assert!(
                cubin.windows(name.len()).any(|w| w == name),
                "kernels/{}.cu: the cubin lacks {k}",
                m.stem()
            );
        }
    }
    eprintln!(
        "NVRTC {:?} at {}: {} modules compile to PTX for sm_90 and sm_80 and to sm_90 cubins",
        nvrtc.version(),
        path.display(),
        Module::ALL.len()
    );
}

/// The real CUDA 13 cuBLAS exports the four entry points the benchmark calls;
/// without a GPU, creating a handle is an error, not a crash.
#[test]
fn real_cuda13_cublas_has_the_entry_points_and_fails_cleanly_without_a_gpu() {
    let Some(path) = wheel_lib(CudaLib::Cublas) else {
        eprintln!(
            "SKIPPED: no libcublas.so.13 in PyTorch's nvidia wheels (set CONVFORMER_TORCH_PYTHON)"
        );
        return;
    };
    // SAFETY: loading cuBLAS runs no initialiser with preconditions.
    let lib = unsafe { libloading::Library::new(&path) }.unwrap();
    for sym in [
        "cublasCreate_v2",
        "cublasSetStream_v2",
        "cublasSgemm_v2",
        "cublasDestroy_v2",
    ] {
        // SAFETY: only the address is looked up.
        assert!(
            unsafe { lib.get::<*const ()>(sym.as_bytes()) }.is_ok(),
            "{} lacks {sym}",
            path.display()
        );
    }
    if convformer::cuda::driver::probe_driver().is_ok() {
        eprintln!("SKIPPED: the no-GPU half (this machine has an NVIDIA driver)");
        return;
    }
    let err = Cublas::open(&[path])
        .err()
        .expect("no GPU here")
        .to_string();
    assert!(
        err.contains("cublasCreate_v2") && err.contains("status"),
        "{err}"
    );
}
