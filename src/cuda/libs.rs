//! Finding and opening the CUDA libraries other than the driver: NVRTC (the
//! kernels compiled at run time) and cuBLAS (the SGEMM reference of the
//! benchmark).
//!
//! cudarc 0.19, built for the CUDA 12.8 API, opens these by fixed names
//! (`libnvrtc.so`, `libnvrtc.so.12`, `.so.11`, ...): never `.so.13`, and with no
//! path or environment override. A CUDA 13 machine (the toolkit's lib64, or
//! PyTorch's `nvidia/cu13/lib` wheels) has only `libnvrtc.so.13` and
//! `libcublas.so.13`, and glibc's dlopen matches an already loaded library only
//! by its soname, so preloading cannot help either. So these two libraries are
//! opened here by absolute path, from [`candidates`], and called through the few
//! entry points we use, whose C signatures are the same in CUDA 12 and 13
//! (`nvrtcCreateProgram`, `nvrtcCompileProgram`, `nvrtcGetPTXSize`,
//! `nvrtcGetPTX`, `nvrtcGetProgramLog[Size]`, `nvrtcDestroyProgram`,
//! `nvrtcVersion`, `nvrtcGetErrorString`; `cublasCreate_v2`,
//! `cublasSetStream_v2`, `cublasSgemm_v2`, `cublasDestroy_v2`). The driver,
//! `libcuda.so.1`, is cudarc's, and that name is on cudarc's list.
//!
//! Environment: `CONVFORMER_NVRTC` / `CONVFORMER_CUBLAS` name a file to use
//! first; `CONVFORMER_CUDA_LIB_DIRS` (`:`-separated) are searched before
//! `CUDA_HOME`/`CUDA_PATH`, `LD_LIBRARY_PATH` and the usual toolkit folders.

use std::ffi::{c_char, c_int, c_void, CStr, CString, OsString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libloading::Library;

use crate::error::{Error, Result};

/// Folders searched first, `:`-separated (scripts/gpu-check.sh puts PyTorch's
/// `nvidia/*/lib` wheels here).
pub const LIB_DIRS_ENV: &str = "CONVFORMER_CUDA_LIB_DIRS";

/// The newest major version a name is tried with when nothing says otherwise.
const NEWEST_MAJOR: u32 = 13;
/// The oldest: cudarc's bindings are CUDA 12's.
const OLDEST_MAJOR: u32 = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CudaLib {
    Nvrtc,
    Cublas,
}

impl CudaLib {
    /// `nvrtc` for `libnvrtc.so*`.
    pub fn stem(self) -> &'static str {
        match self {
            CudaLib::Nvrtc => "nvrtc",
            CudaLib::Cublas => "cublas",
        }
    }

    /// The variable naming one file to try before any search.
    pub fn override_env(self) -> &'static str {
        match self {
            CudaLib::Nvrtc => "CONVFORMER_NVRTC",
            CudaLib::Cublas => "CONVFORMER_CUBLAS",
        }
    }
}

fn split_paths(v: Option<OsString>) -> Vec<PathBuf> {
    v.map(|v| {
        std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// The folders to search, in order, from the environment (`env` looks a
/// variable up): `CONVFORMER_CUDA_LIB_DIRS`, `$CUDA_HOME/lib64`,
/// `$CUDA_PATH/lib64`, `LD_LIBRARY_PATH`, then the toolkit's usual places.
/// Folders that do not exist are kept (the search skips them); repeats are not.
pub fn search_dirs(env: &dyn Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let mut dirs = split_paths(env(LIB_DIRS_ENV));
    for home in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(h) = env(home).filter(|h| !h.is_empty()) {
            let h = PathBuf::from(h);
            dirs.push(h.join("lib64"));
            dirs.push(h.join("targets/x86_64-linux/lib"));
        }
    }
    dirs.extend(split_paths(env("LD_LIBRARY_PATH")));
    dirs.extend(
        [
            "/usr/local/cuda/lib64",
            "/usr/local/cuda/targets/x86_64-linux/lib",
            "/usr/lib/x86_64-linux-gnu",
        ]
        .map(PathBuf::from),
    );
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let new = !seen.contains(d);
        seen.push(d.clone());
        new
    });
    dirs
}

/// The version numbers after `lib<stem>.so` (`[13, 0, 1]` for
/// `libcublas.so.13.0.1`, `[]` for `libcublas.so`); `None` for any other name
/// (`libcublasLt.so.13`, `libnvrtc-builtins.so.13.0`, `libnvrtc.so.13.bak`).
fn so_version(name: &str, stem: &str) -> Option<Vec<u32>> {
    let rest = name
        .strip_prefix("lib")?
        .strip_prefix(stem)?
        .strip_prefix(".so")?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.strip_prefix('.')?
        .split('.')
        .map(|p| p.parse().ok())
        .collect()
}

/// Files to try for `lib`, best first: the file its override variable names;
/// then, folder by folder in the order given, every `lib<stem>.so[.N...]`
/// there, the highest major version first (majors above `max_major`, the
/// newest the driver supports, are left out: their PTX would not load); then
/// the bare sonames (`libnvrtc.so.13`, `.so.12`, `.so`) for the dynamic
/// linker's own search (its cache, `RUNPATH`).
pub fn candidates(
    lib: CudaLib,
    dirs: &[PathBuf],
    env: &dyn Fn(&str) -> Option<OsString>,
    max_major: Option<u32>,
) -> Vec<PathBuf> {
    let stem = lib.stem();
    let allowed = |v: &[u32]| match (v.first(), max_major) {
        (Some(&major), Some(max)) => major <= max,
        _ => true,
    };
    let mut out: Vec<PathBuf> = env(lib.override_env())
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<(Vec<u32>, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let v = so_version(&name, stem)?;
                allowed(&v).then(|| (v, e.path()))
            })
            .collect();
        // Highest major first; within a major the shortest name (the soname
        // link) first, then the full version.
        found.sort_by(|(a, pa), (b, pb)| {
            let major = |v: &[u32]| v.first().copied();
            major(b)
                .cmp(&major(a))
                .then(a.len().cmp(&b.len()))
                .then(pa.cmp(pb))
        });
        out.extend(found.into_iter().map(|(_, p)| p));
    }
    let newest = max_major.unwrap_or(NEWEST_MAJOR).min(NEWEST_MAJOR);
    for major in (OLDEST_MAJOR..=newest).rev() {
        out.push(PathBuf::from(format!("lib{stem}.so.{major}")));
    }
    out.push(PathBuf::from(format!("lib{stem}.so")));
    let mut seen = Vec::new();
    out.retain(|p| {
        let new = !seen.contains(p);
        seen.push(p.clone());
        new
    });
    out
}

/// The candidates of this process's environment.
pub fn candidates_from_env(lib: CudaLib, max_major: Option<u32>) -> Vec<PathBuf> {
    let env = |k: &str| std::env::var_os(k);
    candidates(lib, &search_dirs(&env), &env, max_major)
}

/// An opened library and the file it came from.
pub struct Opened {
    pub lib: Library,
    pub path: PathBuf,
}

/// The first candidate that loads; the error lists every one tried.
pub fn open_first(lib: CudaLib, candidates: &[PathBuf]) -> Result<Opened> {
    let mut tried = Vec::new();
    for path in candidates {
        // SAFETY: NVRTC and cuBLAS run no initialisers with preconditions.
        match unsafe { Library::new(path) } {
            Ok(l) => {
                return Ok(Opened {
                    lib: l,
                    path: path.clone(),
                })
            }
            Err(e) => {
                // The dynamic linker's message (libloading's own is only
                // "dlopen failed"), without the repeated path.
                let why =
                    std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
                let short = why.rsplit(": ").next().unwrap_or(&why).to_string();
                tried.push(format!("{} ({short})", path.display()));
            }
        }
    }
    Err(Error::Device(format!(
        "lib{}.so could not be loaded; tried {}. Set {} to the file or {LIB_DIRS_ENV} to its folder",
        lib.stem(),
        tried.join(", "),
        lib.override_env()
    )))
}

type NvrtcProgram = *mut c_void;

#[derive(Clone, Copy)]
enum NvrtcOutput {
    Ptx,
    Cubin,
}
type NvrtcResult = c_int;

/// NVRTC, opened by path (see the module documentation).
pub struct Nvrtc {
    lib: Library,
    path: PathBuf,
    version: (i32, i32),
}

impl Nvrtc {
    /// Opens the first candidate that loads and has NVRTC's entry points.
    pub fn open(candidates: &[PathBuf]) -> Result<Nvrtc> {
        let Opened { lib, path } = open_first(CudaLib::Nvrtc, candidates)?;
        let mut nvrtc = Nvrtc {
            lib,
            path,
            version: (0, 0),
        };
        let (mut major, mut minor) = (0, 0);
        // SAFETY: nvrtcVersion(int*, int*) writes two ints.
        let r = unsafe {
            nvrtc.sym::<unsafe extern "C" fn(*mut c_int, *mut c_int) -> NvrtcResult>(
                "nvrtcVersion",
            )?(&mut major, &mut minor)
        };
        nvrtc.check(r, "nvrtcVersion")?;
        nvrtc.version = (major, minor);
        Ok(nvrtc)
    }

    /// The process's NVRTC, opened once from [`candidates_from_env`] with
    /// majors up to `max_major` (the driver's, where it is known).
    pub fn global(max_major: Option<u32>) -> Result<&'static Nvrtc> {
        static NVRTC: OnceLock<std::result::Result<Nvrtc, String>> = OnceLock::new();
        NVRTC
            .get_or_init(|| {
                Nvrtc::open(&candidates_from_env(CudaLib::Nvrtc, max_major)).map_err(|e| match e {
                    Error::Device(m) => m,
                    other => other.to_string(),
                })
            })
            .as_ref()
            .map_err(|e| Error::Device(e.clone()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (major, minor) as the library reports it.
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    /// # Safety
    /// `T` must be the C signature of `name`.
    unsafe fn sym<T: Copy>(&self, name: &str) -> Result<T> {
        let sym: libloading::Symbol<T> = self
            .lib
            .get(name.as_bytes())
            .map_err(|e| Error::Device(format!("{} has no {name}: {e}", self.path.display())))?;
        Ok(*sym)
    }

    fn check(&self, r: NvrtcResult, what: &str) -> Result<()> {
        if r == 0 {
            Ok(())
        } else {
            Err(self.error(r, what))
        }
    }

    fn error(&self, r: NvrtcResult, what: &str) -> Error {
        // SAFETY: nvrtcGetErrorString(nvrtcResult) returns a static C string.
        let text = unsafe {
            self.sym::<unsafe extern "C" fn(NvrtcResult) -> *const c_char>("nvrtcGetErrorString")
                .ok()
                .map(|f| f(r))
                .filter(|p| !p.is_null())
                .map(|p| CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        Error::Device(format!(
            "{what}: {} (NVRTC error {r})",
            text.unwrap_or_else(|| "unknown".into())
        ))
    }

    /// PTX of one translation unit; a failed compile's error carries NVRTC's log.
    pub fn compile(&self, source: &str, name: &str, options: &[String]) -> Result<String> {
        let mut bytes = self.compile_to(source, name, options, NvrtcOutput::Ptx)?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        bytes.truncate(end);
        String::from_utf8(bytes)
            .map_err(|_| Error::Device(format!("NVRTC's PTX of {name} is not UTF-8")))
    }

    /// The machine code (an ELF cubin) of one translation unit, for the GPU
    /// the options name (`--gpu-architecture=sm_90`). The driver loads it
    /// without the PTX JIT, so an NVRTC newer than the driver (13.2 beside a
    /// 13.0 driver) still works, which its PTX would not.
    pub fn compile_cubin(&self, source: &str, name: &str, options: &[String]) -> Result<Vec<u8>> {
        self.compile_to(source, name, options, NvrtcOutput::Cubin)
    }

    fn compile_to(
        &self,
        source: &str,
        name: &str,
        options: &[String],
        output: NvrtcOutput,
    ) -> Result<Vec<u8>> {
        let invalid = |what: &str| Error::Invalid(format!("{what} contains a NUL byte"));
        let src = CString::new(source).map_err(|_| invalid("the kernel source"))?;
        let cname = CString::new(name).map_err(|_| invalid("the program name"))?;
        let opts: Vec<CString> = options
            .iter()
            .map(|o| CString::new(o.as_str()).map_err(|_| invalid("an NVRTC option")))
            .collect::<Result<_>>()?;
        let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        type Create = unsafe extern "C" fn(
            *mut NvrtcProgram,
            *const c_char,
            *const c_char,
            c_int,
            *const *const c_char,
            *const *const c_char,
        ) -> NvrtcResult;
        type Compile =
            unsafe extern "C" fn(NvrtcProgram, c_int, *const *const c_char) -> NvrtcResult;
        type Size = unsafe extern "C" fn(NvrtcProgram, *mut usize) -> NvrtcResult;
        type Text = unsafe extern "C" fn(NvrtcProgram, *mut c_char) -> NvrtcResult;
        type Destroy = unsafe extern "C" fn(*mut NvrtcProgram) -> NvrtcResult;
        // SAFETY: the signatures are NVRTC's (nvrtc.h, unchanged from CUDA 11
        // to 13); every pointer passed lives through the call; the program is
        // destroyed on every path once created.
        unsafe {
            let create: Create = self.sym("nvrtcCreateProgram")?;
            let compile: Compile = self.sym("nvrtcCompileProgram")?;
            let log_size: Size = self.sym("nvrtcGetProgramLogSize")?;
            let log: Text = self.sym("nvrtcGetProgramLog")?;
            let (out_size, out): (Size, Text) = match output {
                NvrtcOutput::Ptx => (self.sym("nvrtcGetPTXSize")?, self.sym("nvrtcGetPTX")?),
                NvrtcOutput::Cubin => (self.sym("nvrtcGetCUBINSize")?, self.sym("nvrtcGetCUBIN")?),
            };
            let destroy: Destroy = self.sym("nvrtcDestroyProgram")?;
            let mut prog: NvrtcProgram = std::ptr::null_mut();
            let r = create(
                &mut prog,
                src.as_ptr(),
                cname.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            );
            self.check(r, "nvrtcCreateProgram")?;
            let bytes = |size: Size, get: Text| -> Result<Vec<u8>> {
                let mut n = 0usize;
                self.check(size(prog, &mut n), "NVRTC output size")?;
                let mut buf = vec![0u8; n.max(1)];
                self.check(get(prog, buf.as_mut_ptr().cast()), "NVRTC output")?;
                buf.truncate(n);
                Ok(buf)
            };
            let r = compile(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr());
            let result = if r == 0 {
                bytes(out_size, out)
            } else {
                let log = bytes(log_size, log)
                    .map(|b| {
                        String::from_utf8_lossy(&b)
                            .trim_end_matches('\0')
                            .to_string()
                    })
                    .unwrap_or_default();
                Err(Error::Device(format!(
                    "{}\n{log}",
                    self.error(r, &format!("compiling {name}"))
                )))
            };
            destroy(&mut prog);
            result
        }
    }
}

type CublasHandle = *mut c_void;

/// cuBLAS, opened by path: one handle, SGEMM only (the benchmark's reference).
pub struct Cublas {
    lib: Library,
    path: PathBuf,
    handle: CublasHandle,
}

/// `cublasOperation_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum CublasOp {
    N = 0,
    T = 1,
}

impl Cublas {
    /// Opens the first candidate that loads and creates a handle; without a GPU
    /// `cublasCreate_v2` fails and so does this.
    pub fn open(candidates: &[PathBuf]) -> Result<Cublas> {
        let Opened { lib, path } = open_first(CudaLib::Cublas, candidates)?;
        let mut handle: CublasHandle = std::ptr::null_mut();
        // SAFETY: cublasCreate_v2(cublasHandle_t*) writes the handle.
        let r = unsafe {
            let create: libloading::Symbol<unsafe extern "C" fn(*mut CublasHandle) -> c_int> =
                lib.get(b"cublasCreate_v2").map_err(|e| {
                    Error::Device(format!("{} has no cublasCreate_v2: {e}", path.display()))
                })?;
            create(&mut handle)
        };
        if r != 0 {
            return Err(Error::Device(format!(
                "cublasCreate_v2 ({}): status {r}",
                path.display()
            )));
        }
        Ok(Cublas { lib, path, handle })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn status(&self, r: c_int, what: &str) -> Result<()> {
        if r == 0 {
            Ok(())
        } else {
            Err(Error::Device(format!("{what}: cuBLAS status {r}")))
        }
    }

    /// Orders this handle's work on `stream` (a `CUstream`, the same type as
    /// the runtime's `cudaStream_t`).
    pub fn set_stream(&self, stream: *mut c_void) -> Result<()> {
        // SAFETY: cublasSetStream_v2(cublasHandle_t, cudaStream_t).
        let r = unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn(CublasHandle, *mut c_void) -> c_int> =
                self.lib
                    .get(b"cublasSetStream_v2")
                    .map_err(|e| Error::Device(format!("cublasSetStream_v2: {e}")))?;
            f(self.handle, stream)
        };
        self.status(r, "cublasSetStream_v2")
    }

    /// Column-major `C = alpha·op(A)·op(B) + beta·C`, as `cublasSgemm_v2`.
    ///
    /// # Safety
    /// `a`, `b`, `c` are device addresses of matrices of the sizes the
    /// dimensions and leading dimensions describe, on this handle's device.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn sgemm(
        &self,
        ta: CublasOp,
        tb: CublasOp,
        (m, n, k): (i32, i32, i32),
        alpha: f32,
        (a, lda): (u64, i32),
        (b, ldb): (u64, i32),
        beta: f32,
        (c, ldc): (u64, i32),
    ) -> Result<()> {
        type Sgemm = unsafe extern "C" fn(
            CublasHandle,
            c_int,
            c_int,
            c_int,
            c_int,
            c_int,
            *const f32,
            *const f32,
            c_int,
            *const f32,
            c_int,
            *const f32,
            *mut f32,
            c_int,
        ) -> c_int;
        let f: libloading::Symbol<Sgemm> = self
            .lib
            .get(b"cublasSgemm_v2")
            .map_err(|e| Error::Device(format!("cublasSgemm_v2: {e}")))?;
        let r = f(
            self.handle,
            ta as c_int,
            tb as c_int,
            m,
            n,
            k,
            &alpha,
            a as *const f32,
            lda,
            b as *const f32,
            ldb,
            &beta,
            c as *mut f32,
            ldc,
        );
        self.status(r, "cublasSgemm_v2")
    }
}

impl Drop for Cublas {
    fn drop(&mut self) {
        // SAFETY: the handle was created by cublasCreate_v2 and is destroyed once.
        unsafe {
            if let Ok(f) = self
                .lib
                .get::<unsafe extern "C" fn(CublasHandle) -> c_int>(b"cublasDestroy_v2")
            {
                f(self.handle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::so_version;

    #[test]
    fn so_versions_of_the_library_itself_only() {
        assert_eq!(so_version("libnvrtc.so.13", "nvrtc"), Some(vec![13]));
        assert_eq!(
            so_version("libcublas.so.13.0.1", "cublas"),
            Some(vec![13, 0, 1])
        );
        assert_eq!(so_version("libcublas.so", "cublas"), Some(vec![]));
        for other in [
            "libcublasLt.so.13",
            "libnvrtc-builtins.so.13.0",
            "libnvrtc.so.13.bak",
            "libnvrtc.so.",
            "libnvrtc_static.a",
            "nvrtc.so.13",
        ] {
            assert_eq!(so_version(other, other_stem(other)), None, "{other}");
        }
    }

    fn other_stem(name: &str) -> &'static str {
        if name.contains("cublas") {
            "cublas"
        } else {
            "nvrtc"
        }
    }
}
