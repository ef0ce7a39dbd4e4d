//! What every typed launch wrapper shares: buffer checks that turn a short
//! buffer into a shape error, and the launch configurations of the common
//! kernel shapes (grid-stride, rows per block, column reductions).

use super::launch::{Arg, DeviceBuffer, LaunchCfg};
use super::shared_constants::WARP_SIZE;
use crate::error::{Error, Result};

pub(crate) const THREADS: u32 = 256;
/// Grid-stride kernels never need more blocks than this to fill a GPU.
const MAX_BLOCKS: u64 = 8192;

pub(crate) fn check_len<Buf: DeviceBuffer>(
    op: &'static str,
    what: &str,
    buf: &Buf,
    elems: usize,
    elem_bytes: usize,
) -> Result<()> {
    if buf.bytes() < elems * elem_bytes {
        return Err(Error::shape(
            op,
            &[buf.bytes() / elem_bytes],
            &[elems],
            format!("buffer {what} holds fewer elements than the shape needs"),
        ));
    }
    Ok(())
}

pub(crate) fn f32s<Buf: DeviceBuffer>(
    op: &'static str,
    what: &str,
    buf: &Buf,
    elems: usize,
) -> Result<Arg> {
    check_len(op, what, buf, elems, 4)?;
    Ok(Arg::Ptr(buf.addr()))
}

pub(crate) fn opt_f32s<Buf: DeviceBuffer>(
    op: &'static str,
    what: &str,
    buf: Option<&Buf>,
    elems: usize,
) -> Result<Arg> {
    match buf {
        Some(b) => f32s(op, what, b, elems),
        None => Ok(Arg::Ptr(0)),
    }
}

pub(crate) fn grid_stride_cfg(n: usize) -> LaunchCfg {
    let blocks = (n as u64).div_ceil(THREADS as u64).clamp(1, MAX_BLOCKS);
    LaunchCfg::linear(blocks as u32, THREADS)
}

pub(crate) fn dim(op: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Invalid(format!("{op}: dimension {v} exceeds i32")))
}

pub(crate) fn grid_y(op: &'static str, v: usize) -> Result<u32> {
    if v == 0 || v > 65535 {
        return Err(Error::Invalid(format!(
            "{op}: grid dimension {v} outside 1..=65535"
        )));
    }
    Ok(v as u32)
}

/// Static shared memory a block may use without opting in.
pub(crate) const SHARED_LIMIT: usize = 48 * 1024;

/// One warp per row, `warps` rows per block.
pub(crate) fn warp_rows_cfg(rows: usize, warps: usize) -> LaunchCfg {
    LaunchCfg::linear(rows.div_ceil(warps).max(1) as u32, WARP_SIZE * warps as u32)
}

/// A grid of x × y × z blocks of `block` threads with `shared_bytes` of dynamic
/// shared memory; x must fit a u32, y and z the 65535 limit.
pub(crate) fn grid_cfg(
    op: &'static str,
    [x, y, z]: [usize; 3],
    block: [u32; 3],
    shared_bytes: usize,
) -> Result<LaunchCfg> {
    let x = u32::try_from(x)
        .map_err(|_| Error::Invalid(format!("{op}: grid dimension {x} exceeds u32")))?;
    Ok(LaunchCfg {
        grid: [x, grid_y(op, y)?, grid_y(op, z)?],
        block,
        shared_bytes: shared_bytes as u32,
    })
}

/// Rows one block of a column reduction sums before a second pass adds the chunks.
pub(crate) const ROWS_PER_CHUNK: usize = 512;

pub(crate) fn column_cfg(c: usize, chunks: usize) -> Result<LaunchCfg> {
    grid_cfg(
        "column reduction",
        [c.div_ceil(32), chunks, 1],
        [32, 16, 1],
        0,
    )
}
