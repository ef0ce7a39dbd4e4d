//! Runs the kernels on the CPU through the CUDA-execution emulator
//! (`kernels/emu/cuda_emu.h`, compiled by build.rs with every kernel).
//! Buffers carry poisoned guard zones, checked after every launch: a write out
//! of bounds turns into an `Err` naming the kernel.

use std::ffi::{c_char, c_void, CString};

use super::launch::{Arg, Backend, DeviceBuffer, LaunchCfg};
use crate::error::{Error, Result};

extern "C" {
    fn cf_emu_alloc(bytes: usize) -> u64;
    fn cf_emu_free(addr: u64);
    fn cf_emu_launch(
        name: *const c_char,
        signature: *const c_char,
        grid: *const u32,
        block: *const u32,
        shared_bytes: u32,
        params: *mut *mut c_void,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    fn cf_emu_run_planted(name: *const c_char, fixed: i32, err: *mut c_char, err_len: usize)
        -> i32;
}

/// Runs one of the emulator's planted-bug scenarios (`kernels/emu/planted_bugs.cpp`:
/// `planted_shared_race`, `planted_warp_race`, `planted_global_race`,
/// `planted_divergent_barrier`), or with `fixed` its corrected twin. The
/// buggy kernel must end in `Err` with the race checker's report.
pub fn run_planted(name: &str, fixed: bool) -> Result<()> {
    let c_name = CString::new(name).map_err(|_| Error::Invalid("scenario name with NUL".into()))?;
    let mut err = vec![0u8; 1024];
    // SAFETY: the name is NUL-terminated, err has err.len() writable bytes.
    let rc = unsafe {
        cf_emu_run_planted(
            c_name.as_ptr(),
            fixed as i32,
            err.as_mut_ptr() as *mut c_char,
            err.len(),
        )
    };
    emulator_result(rc, &err)
}

fn emulator_result(rc: i32, err: &[u8]) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let end = err.iter().position(|&b| b == 0).unwrap_or(err.len());
    Err(Error::Device(format!(
        "emulator: {}",
        String::from_utf8_lossy(&err[..end])
    )))
}

/// The emulator as a [`Backend`]. Launches run synchronously, one at a time.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmuBackend;

/// A guarded allocation of the emulator; freed on drop.
#[derive(Debug)]
pub struct EmuBuffer {
    addr: u64,
    bytes: usize,
}

impl DeviceBuffer for EmuBuffer {
    fn addr(&self) -> u64 {
        self.addr
    }
    fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for EmuBuffer {
    fn drop(&mut self) {
        // SAFETY: addr came from cf_emu_alloc and is freed once.
        unsafe { cf_emu_free(self.addr) }
    }
}

impl Backend for EmuBackend {
    type Buffer = EmuBuffer;

    fn alloc(&self, bytes: usize) -> Result<EmuBuffer> {
        // SAFETY: plain allocation; 0 means failure.
        let addr = unsafe { cf_emu_alloc(bytes) };
        if addr == 0 {
            return Err(Error::Device(format!(
                "emulator: cannot allocate {bytes} bytes"
            )));
        }
        Ok(EmuBuffer { addr, bytes })
    }

    fn write(&self, dst: &mut EmuBuffer, src: &[u8]) -> Result<()> {
        check_copy("write", src.len(), dst.bytes)?;
        // SAFETY: dst owns `bytes` bytes at addr, src.len() <= bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.addr as *mut u8, src.len()) };
        Ok(())
    }

    fn read(&self, src: &EmuBuffer, dst: &mut [u8]) -> Result<()> {
        check_copy("read", dst.len(), src.bytes)?;
        // SAFETY: src owns `bytes` bytes at addr, dst.len() <= bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(src.addr as *const u8, dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }

    fn launch(&self, kernel: &'static str, cfg: LaunchCfg, args: &[Arg]) -> Result<()> {
        let name =
            CString::new(kernel).map_err(|_| Error::Invalid("kernel name with NUL".into()))?;
        // cuLaunchKernel convention: one pointer per argument, to its value.
        let mut params: Vec<*mut c_void> = args
            .iter()
            .map(|a| match a {
                Arg::Ptr(v) => v as *const u64 as *mut c_void,
                Arg::I32(v) => v as *const i32 as *mut c_void,
                Arg::I64(v) => v as *const i64 as *mut c_void,
                Arg::U32(v) => v as *const u32 as *mut c_void,
                Arg::F32(v) => v as *const f32 as *mut c_void,
            })
            .collect();
        let signature: String = args
            .iter()
            .map(|a| match a {
                Arg::Ptr(_) => 'p',
                Arg::I32(_) => 'i',
                Arg::I64(_) => 'l',
                Arg::U32(_) => 'u',
                Arg::F32(_) => 'f',
            })
            .collect();
        let signature = CString::new(signature).expect("type letters have no NUL");
        let mut err = vec![0u8; 1024];
        // SAFETY: params point into `args`, alive for the call; the C++ side reads
        // each with the kernel's declared parameter type, which the typed
        // wrappers in `ops` match.
        let rc = unsafe {
            cf_emu_launch(
                name.as_ptr(),
                signature.as_ptr(),
                cfg.grid.as_ptr(),
                cfg.block.as_ptr(),
                cfg.shared_bytes,
                params.as_mut_ptr(),
                err.as_mut_ptr() as *mut c_char,
                err.len(),
            )
        };
        emulator_result(rc, &err)
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

fn check_copy(what: &str, len: usize, capacity: usize) -> Result<()> {
    if len > capacity {
        return Err(Error::Invalid(format!(
            "emulator {what} of {len} bytes into a buffer of {capacity} bytes"
        )));
    }
    Ok(())
}
