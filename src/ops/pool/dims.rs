/// The axis being pooled, seen as x [outer, n, inner] -> y [outer, inner].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolDims {
    pub outer: usize,
    pub n: usize,
    pub inner: usize,
}

impl PoolDims {
    /// Splits `shape` around `axis`.
    pub fn around(shape: &[usize], axis: usize) -> Self {
        PoolDims {
            outer: shape[..axis].iter().product(),
            n: shape[axis],
            inner: shape[axis + 1..].iter().product(),
        }
    }
}
