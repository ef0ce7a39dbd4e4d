//! CUDA launch of the rank-4 permute kernel.

use crate::cuda::args::{dim, f32s, grid_stride_cfg};
use crate::cuda::launch::{Arg, Backend};
use crate::error::{Error, Result};

/// y = x with its axes reordered: output axis i is input axis perm[i] of x
/// (shape `shape`, rank 1 to 4).
pub fn permute<B: Backend>(
    be: &B,
    shape: &[usize],
    perm: &[usize],
    x: &B::Buffer,
    y: &B::Buffer,
) -> Result<()> {
    const OP: &str = "permute";
    let rank = shape.len();
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    if rank == 0 || rank > 4 || sorted != (0..rank).collect::<Vec<_>>() {
        return Err(Error::shape(
            OP,
            shape,
            perm,
            "perm must reorder 1 to 4 axes",
        ));
    }
    let n: usize = shape.iter().product();
    let mut stride = vec![1usize; rank];
    for j in (0..rank - 1).rev() {
        stride[j] = stride[j + 1] * shape[j + 1];
    }
    // Output axes padded in front to 4 with size-1, stride-0 axes.
    let (mut dims, mut strides) = ([1usize; 4], [0usize; 4]);
    for (i, &p) in perm.iter().enumerate() {
        dims[4 - rank + i] = shape[p];
        strides[4 - rank + i] = stride[p];
    }
    let args = [
        f32s(OP, "x", x, n)?,
        f32s(OP, "y", y, n)?,
        Arg::I64(n as i64),
        Arg::I32(dim(OP, dims[1])?),
        Arg::I32(dim(OP, dims[2])?),
        Arg::I32(dim(OP, dims[3])?),
        Arg::I64(strides[0] as i64),
        Arg::I64(strides[1] as i64),
        Arg::I64(strides[2] as i64),
        Arg::I64(strides[3] as i64),
    ];
    be.launch("permute4", grid_stride_cfg(n), &args)
}
