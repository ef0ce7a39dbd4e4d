//! The GPU executor, through cudarc: probes the driver library before touching
//! it, owns one context and stream, loads each kernel module once per process
//! (PTX from `$CONVFORMER_PTX_DIR/<module>.ptx` when that file exists, which is
//! how scripts/gpu-check.sh hands over the machine's own nvcc output; else
//! nvcc's PTX from build time; else NVRTC on the embedded source, NVRTC found
//! by [`super::libs`]), and hands out device buffers from a caching allocator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use super::launch::{Arg, Backend, DeviceBuffer, LaunchCfg};
use super::libs::Nvrtc;
use super::modules::Module;
use crate::device::Device;
use crate::error::{Error, Result};

fn driver_err(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("CUDA {what}: {e:?}"))
}

/// Checks that the NVIDIA driver library can be loaded, without loading it
/// through cudarc (whose dynamic loader panics when the library is missing).
pub fn probe_driver() -> Result<()> {
    // SAFETY: only tries to dlopen the candidate names and closes them again.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::Device(
            "no NVIDIA driver: libcuda.so could not be loaded (is this a machine with an NVIDIA GPU and its driver?)"
                .into(),
        ))
    }
}

/// `Device::Cuda(ordinal)` once the driver is there and the GPU exists.
pub fn cuda_device(ordinal: usize) -> Result<Device> {
    probe_driver()?;
    let count = CudaContext::device_count().map_err(|e| driver_err("device count", e))?;
    if ordinal >= count.max(0) as usize {
        return Err(Error::Device(format!(
            "CUDA device {ordinal} requested, the driver sees {count}"
        )));
    }
    Ok(Device::Cuda(ordinal))
}

/// Free device buffers by size class (powers of two from 256 bytes), so a
/// training step after the first allocates nothing from the driver.
#[derive(Default)]
struct Pool {
    free: HashMap<usize, Vec<CudaSlice<u8>>>,
    driver_allocations: usize,
}

fn size_class(bytes: usize) -> usize {
    bytes.max(256).next_power_of_two()
}

/// A device buffer; its memory goes back to the pool on drop.
pub struct CudaBuffer {
    slice: Option<CudaSlice<u8>>,
    addr: u64,
    bytes: usize,
    pool: Arc<Mutex<Pool>>,
}

impl DeviceBuffer for CudaBuffer {
    fn addr(&self) -> u64 {
        self.addr
    }
    fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for CudaBuffer {
    fn drop(&mut self) {
        if let (Some(slice), Ok(mut pool)) = (self.slice.take(), self.pool.lock()) {
            pool.free.entry(slice.len()).or_default().push(slice);
        }
    }
}

/// A folder of `<module>.ptx` files preferred to every other source of PTX
/// (scripts/gpu-check.sh fills it with the GPU machine's nvcc output).
pub const PTX_DIR_ENV: &str = "CONVFORMER_PTX_DIR";

/// Where a loaded module's PTX came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PtxOrigin {
    /// `$CONVFORMER_PTX_DIR/<module>.ptx`.
    Dir(std::path::PathBuf),
    /// nvcc at build time.
    BuiltIn,
    /// NVRTC at run time, a cubin for the GPU (the library's path), with why
    /// the folder's PTX was not used when there was one.
    Nvrtc {
        library: std::path::PathBuf,
        dir_rejected: Option<String>,
    },
}

impl std::fmt::Display for PtxOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PtxOrigin::Dir(p) => write!(f, "nvcc PTX from {}", p.display()),
            PtxOrigin::BuiltIn => write!(f, "nvcc PTX built in"),
            PtxOrigin::Nvrtc {
                library,
                dir_rejected,
            } => {
                write!(f, "NVRTC ({})", library.display())?;
                match dir_rejected {
                    Some(why) => write!(f, ", the folder's PTX failed to load: {why}"),
                    None => Ok(()),
                }
            }
        }
    }
}

pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: Mutex<HashMap<Module, (Arc<CudaModule>, PtxOrigin)>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
    pool: Arc<Mutex<Pool>>,
}

impl CudaBackend {
    /// A context on GPU `ordinal`; a clear error (never a panic) without driver or GPU.
    pub fn new(ordinal: usize) -> Result<Self> {
        cuda_device(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(|e| driver_err("context", e))?;
        // One stream and raw device addresses as kernel arguments: cudarc's
        // per-buffer event tracking would only add work.
        // SAFETY: all work of this backend is ordered on its single stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        Ok(CudaBackend {
            ctx,
            stream,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            pool: Arc::new(Mutex::new(Pool::default())),
        })
    }

    /// The stream all work of this backend is ordered on (for cuBLAS in the benchmarks).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub fn name(&self) -> Result<String> {
        self.ctx.name().map_err(|e| driver_err("device name", e))
    }

    /// How many buffers were obtained from the driver so far (the rest came from the pool).
    pub fn driver_allocations(&self) -> usize {
        self.pool.lock().map(|p| p.driver_allocations).unwrap_or(0)
    }

    /// Where the PTX of each module loaded so far came from.
    pub fn ptx_origins(&self) -> Vec<(Module, PtxOrigin)> {
        let mut v: Vec<_> = self
            .modules
            .lock()
            .map(|m| m.iter().map(|(k, (_, o))| (*k, o.clone())).collect())
            .unwrap_or_default();
        v.sort_by_key(|(m, _)| *m);
        v
    }

    fn module(&self, m: Module) -> Result<Arc<CudaModule>> {
        let mut modules = self
            .modules
            .lock()
            .map_err(|_| Error::Device("module cache poisoned".into()))?;
        if let Some((loaded, _)) = modules.get(&m) {
            return Ok(loaded.clone());
        }
        let load = |ptx: Ptx| {
            self.ctx
                .load_module(ptx)
                .map_err(|e| driver_err(&format!("loading module {}", m.stem()), e))
        };
        let from_dir = std::env::var_os(PTX_DIR_ENV)
            .map(|d| std::path::Path::new(&d).join(format!("{}.ptx", m.stem())))
            .filter(|p| p.is_file());
        let mut dir_rejected = None;
        if let Some(path) = from_dir {
            let loaded = std::fs::read_to_string(&path)
                .map_err(|e| Error::Device(format!("{}: {e}", path.display())))
                .and_then(|text| load(Ptx::from_src(text)));
            match loaded {
                Ok(loaded) => {
                    modules.insert(m, (loaded.clone(), PtxOrigin::Dir(path)));
                    return Ok(loaded);
                }
                Err(e) => dir_rejected = Some(e.to_string()),
            }
        }
        let (ptx, origin) = match (m.prebuilt_ptx(), &dir_rejected) {
            (Some(text), None) => (Ptx::from_src(text), PtxOrigin::BuiltIn),
            _ => {
                let (ptx, library) = self.nvrtc_module(m)?;
                (
                    ptx,
                    PtxOrigin::Nvrtc {
                        library,
                        dir_rejected,
                    },
                )
            }
        };
        let loaded = load(ptx)?;
        modules.insert(m, (loaded.clone(), origin));
        Ok(loaded)
    }

    /// NVRTC's cubin for this GPU's `sm_XY` (no PTX JIT in the driver, so
    /// an NVRTC newer than the driver works); PTX for NVRTC's default
    /// architecture when the capability cannot be read.
    fn nvrtc_module(&self, m: Module) -> Result<(Ptx, std::path::PathBuf)> {
        let Ok((major, minor)) = self.ctx.compute_capability() else {
            return nvrtc_ptx_with_library(m, None);
        };
        let (cubin, library) = nvrtc_cubin(m, &format!("sm_{major}{minor}"))?;
        Ok((Ptx::from_binary(cubin), library))
    }

    fn function(&self, kernel: &'static str) -> Result<CudaFunction> {
        if let Some(f) = self
            .functions
            .lock()
            .map_err(|_| Error::Device("function cache poisoned".into()))?
            .get(kernel)
        {
            return Ok(f.clone());
        }
        let m = Module::of_kernel(kernel)
            .ok_or_else(|| Error::Invalid(format!("no kernel named {kernel}")))?;
        let f = self
            .module(m)?
            .load_function(kernel)
            .map_err(|e| driver_err(kernel, e))?;
        self.functions
            .lock()
            .map_err(|_| Error::Device("function cache poisoned".into()))?
            .insert(kernel, f.clone());
        Ok(f)
    }
}

/// The newest CUDA major version the driver supports (13 for driver 580), or
/// `None` without a driver.
pub fn driver_cuda_major() -> Option<u32> {
    probe_driver().ok()?;
    let mut v = 0;
    // SAFETY: the driver library is present; cuDriverGetVersion writes an int
    // and needs no cuInit.
    let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
    (r == cudarc::driver::sys::CUresult::CUDA_SUCCESS && v > 0).then_some(v as u32 / 1000)
}

/// NVRTC compilation of one module for `arch` (`compute_90`; `None` = NVRTC's
/// default), with the process's NVRTC (see [`super::libs`]).
pub fn nvrtc_ptx(m: Module, arch: Option<&str>) -> Result<Ptx> {
    nvrtc_ptx_with_library(m, arch).map(|(ptx, _)| ptx)
}

fn process_nvrtc(m: Module) -> Result<&'static Nvrtc> {
    Nvrtc::global(driver_cuda_major()).map_err(|e| {
        Error::Device(format!(
            "no nvcc PTX for kernels/{}.cu and NVRTC is missing: {e}",
            m.stem()
        ))
    })
}

fn nvrtc_options(arch: Option<&str>) -> Vec<String> {
    let mut options = vec!["-std=c++17".to_string()];
    if let Some(a) = arch {
        options.push(format!("--gpu-architecture={a}"));
    }
    options
}

/// NVRTC's cubin of one module for `sm` (`sm_90`), what the backend loads,
/// and the NVRTC library that made it.
pub fn nvrtc_cubin(m: Module, sm: &str) -> Result<(Vec<u8>, std::path::PathBuf)> {
    let nvrtc = process_nvrtc(m)?;
    let cubin = nvrtc
        .compile_cubin(
            &m.source(),
            &format!("{}.cu", m.stem()),
            &nvrtc_options(Some(sm)),
        )
        .map_err(|e| Error::Device(format!("NVRTC on kernels/{}.cu: {e}", m.stem())))?;
    Ok((cubin, nvrtc.path().to_path_buf()))
}

fn nvrtc_ptx_with_library(m: Module, arch: Option<&str>) -> Result<(Ptx, std::path::PathBuf)> {
    let nvrtc = process_nvrtc(m)?;
    let ptx = nvrtc
        .compile(
            &m.source(),
            &format!("{}.cu", m.stem()),
            &nvrtc_options(arch),
        )
        .map_err(|e| Error::Device(format!("NVRTC on kernels/{}.cu: {e}", m.stem())))?;
    Ok((Ptx::from_src(ptx), nvrtc.path().to_path_buf()))
}

impl Backend for CudaBackend {
    type Buffer = CudaBuffer;

    fn alloc(&self, bytes: usize) -> Result<CudaBuffer> {
        let class = size_class(bytes);
        let mut pool = self
            .pool
            .lock()
            .map_err(|_| Error::Device("allocator poisoned".into()))?;
        let slice = match pool.free.get_mut(&class).and_then(Vec::pop) {
            Some(s) => s,
            None => {
                pool.driver_allocations += 1;
                // SAFETY: u8 has no invalid bit patterns; contents are unspecified until written.
                unsafe { self.stream.alloc::<u8>(class) }
                    .map_err(|e| driver_err("allocation", e))?
            }
        };
        drop(pool);
        let addr = slice.device_ptr(&self.stream).0;
        Ok(CudaBuffer {
            slice: Some(slice),
            addr,
            bytes,
            pool: self.pool.clone(),
        })
    }

    fn write(&self, dst: &mut CudaBuffer, src: &[u8]) -> Result<()> {
        if src.len() > dst.bytes {
            return Err(Error::Invalid(format!(
                "write of {} bytes into {} bytes",
                src.len(),
                dst.bytes
            )));
        }
        let slice = dst.slice.as_mut().expect("a live buffer holds its slice");
        let mut view = slice.slice_mut(0..src.len());
        self.stream
            .memcpy_htod(src, &mut view)
            .map_err(|e| driver_err("copy to device", e))
    }

    fn read(&self, src: &CudaBuffer, dst: &mut [u8]) -> Result<()> {
        if dst.len() > src.bytes {
            return Err(Error::Invalid(format!(
                "read of {} bytes from {} bytes",
                dst.len(),
                src.bytes
            )));
        }
        let slice = src.slice.as_ref().expect("a live buffer holds its slice");
        let view = slice.slice(0..dst.len());
        self.stream
            .memcpy_dtoh(&view, dst)
            .map_err(|e| driver_err("copy to host", e))?;
        self.synchronize()
    }

    fn launch(&self, kernel: &'static str, cfg: LaunchCfg, args: &[Arg]) -> Result<()> {
        let f = self.function(kernel)?;
        let mut builder = self.stream.launch_builder(&f);
        for a in args {
            match a {
                Arg::Ptr(v) => builder.arg(v),
                Arg::I32(v) => builder.arg(v),
                Arg::I64(v) => builder.arg(v),
                Arg::U32(v) => builder.arg(v),
                Arg::F32(v) => builder.arg(v),
            };
        }
        let config = LaunchConfig {
            grid_dim: (cfg.grid[0], cfg.grid[1], cfg.grid[2]),
            block_dim: (cfg.block[0], cfg.block[1], cfg.block[2]),
            shared_mem_bytes: cfg.shared_bytes,
        };
        // SAFETY: the typed wrappers in `ops` pass exactly the kernel's parameter
        // types (the emulator checks the same argument lists against the
        // signatures) and buffers large enough for the shapes.
        unsafe { builder.launch(config) }.map_err(|e| driver_err(kernel, e))?;
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| driver_err("synchronize", e))
    }
}

/// The process-wide backend for GPU 0, created on first use.
pub fn global() -> Result<&'static CudaBackend> {
    static BACKEND: OnceLock<std::result::Result<CudaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| CudaBackend::new(0).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Device(e.clone()))
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_are_powers_of_two_from_256_bytes() {
        assert_eq!(size_class(0), 256);
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 512);
        assert_eq!(size_class(3 * 1024 * 1024), 4 * 1024 * 1024);
    }
}
