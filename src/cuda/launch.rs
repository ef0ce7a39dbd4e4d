//! What every executor of the kernels provides: device buffers, copies, and a
//! launch by kernel name with cuLaunchKernel-style arguments.

use crate::error::{Error, Result};

/// Grid and block dimensions and dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchCfg {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
}

impl LaunchCfg {
    /// A 1-D grid of `blocks` blocks of `threads` threads.
    pub fn linear(blocks: u32, threads: u32) -> Self {
        LaunchCfg {
            grid: [blocks, 1, 1],
            block: [threads, 1, 1],
            shared_bytes: 0,
        }
    }
}

/// One kernel argument, passed by value; `Ptr` is a device address (0 = null).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    Ptr(u64),
    I32(i32),
    I64(i64),
    U32(u32),
    F32(f32),
}

/// A region of device memory.
pub trait DeviceBuffer {
    fn addr(&self) -> u64;
    fn bytes(&self) -> usize;
}

/// An executor of the kernels: the GPU or the emulator.
pub trait Backend {
    type Buffer: DeviceBuffer;

    /// Uninitialised device memory (the emulator poisons it with NaN).
    fn alloc(&self, bytes: usize) -> Result<Self::Buffer>;
    fn write(&self, dst: &mut Self::Buffer, src: &[u8]) -> Result<()>;
    fn read(&self, src: &Self::Buffer, dst: &mut [u8]) -> Result<()>;
    /// Enqueues `kernel` (an `extern "C"` function of one of the modules).
    fn launch(&self, kernel: &'static str, cfg: LaunchCfg, args: &[Arg]) -> Result<()>;
    /// Waits for all enqueued work.
    fn synchronize(&self) -> Result<()>;

    fn upload_f32(&self, data: &[f32]) -> Result<Self::Buffer> {
        let mut buf = self.alloc(std::mem::size_of_val(data))?;
        self.write(&mut buf, bytemuck::cast_slice(data))?;
        Ok(buf)
    }

    fn download_f32(&self, buf: &Self::Buffer, len: usize) -> Result<Vec<f32>> {
        if len * 4 > buf.bytes() {
            return Err(Error::Invalid(format!(
                "download of {len} f32 from a buffer of {} bytes",
                buf.bytes()
            )));
        }
        let mut out = vec![0f32; len];
        self.read(buf, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// Uploads a mask as one byte per entry (1 = true).
    fn upload_mask(&self, mask: &[bool]) -> Result<Self::Buffer> {
        let bytes: Vec<u8> = mask.iter().map(|&m| m as u8).collect();
        let mut buf = self.alloc(bytes.len())?;
        self.write(&mut buf, &bytes)?;
        Ok(buf)
    }
}
