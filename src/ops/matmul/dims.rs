//! The descriptors of a batched product and of a linear layer.

/// C[b] = op(A[b]) · op(B[b]) for b in 0..batch.
///
/// Layouts (row-major): A is `batch` × ([m, k], or [k, m] if `trans_a`);
/// B is (`1` if `b_shared` else `batch`) × ([k, n], or [n, k] if `trans_b`);
/// C is `batch` × [m, n].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    /// One B for every batch entry (a 2-D right operand).
    pub b_shared: bool,
}

impl MatmulDims {
    pub fn a_len(&self) -> usize {
        self.batch * self.m * self.k
    }
    pub fn b_len(&self) -> usize {
        self.b_batches() * self.k * self.n
    }
    pub fn c_len(&self) -> usize {
        self.batch * self.m * self.n
    }
    fn b_batches(&self) -> usize {
        if self.b_shared {
            1
        } else {
            self.batch
        }
    }
}

/// y [rows, out] = x [rows, in] · wᵀ (w is [out, in]) + bias [out].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearDims {
    pub rows: usize,
    pub d_in: usize,
    pub d_out: usize,
}
