//! The loops of the packed f32 GEMM (BLIS's, cut down; see `sgemm.rs`), shared
//! by its AVX2 and AVX-512 kernels: K in blocks of [`KC`], B's block packed
//! once into panels of the kernel's width, rows of A in blocks of [`MC`]
//! streaming past each panel, tile by tile. The blocks of K fix each element's
//! rounding, so every kernel sums in the same ones.

/// Rows of A that stream past one panel of B before the next panel.
pub(super) const MC: usize = 96;
/// Depth of one packed block of B: a panel is 16 KiB at AVX2's 16 columns,
/// 48 KiB at AVX-512's 48.
/// Every kernel sums in blocks of this depth (it fixes the rounding).
pub(super) const KC: usize = 256;

/// The three operands of one product.
#[derive(Clone, Copy)]
pub(super) struct Mats {
    pub a: *const f32,
    pub rsa: isize,
    pub csa: isize,
    pub b: *const f32,
    pub rsb: isize,
    pub csb: isize,
    pub c: *mut f32,
    pub rsc: isize,
    pub csc: isize,
}

/// What a kernel's store does to a tile of row-major C after alpha·A·B (with
/// beta = 0): add a bias per column, then relu, then C's previous value (a
/// residual). Each step is the one rounding a separate pass over C would
/// make, in that pass's order, so the bits are those of the unfused passes.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue {
    /// One float per column of the tile, or null for no bias.
    pub bias: *const f32,
    pub relu: bool,
    pub residual: bool,
}

// SAFETY: the bias is only read, by GEMM tasks that run while its slice is
// borrowed by the caller.
unsafe impl Send for Epilogue {}
unsafe impl Sync for Epilogue {}

impl Epilogue {
    /// A plain store.
    pub const NONE: Epilogue = Epilogue {
        bias: std::ptr::null(),
        relu: false,
        residual: false,
    };

    fn is_none(&self) -> bool {
        self.bias.is_null() && !self.relu && !self.residual
    }

    /// The same steps for the tile whose first column is `j0`.
    unsafe fn at_column(self, j0: usize) -> Self {
        Epilogue {
            bias: if self.bias.is_null() {
                self.bias
            } else {
                self.bias.add(j0)
            },
            ..self
        }
    }
}

/// What [`blocked`] runs: a micro-kernel over one tile of C and its store.
pub(super) trait Kernel {
    /// Rows of C per tile.
    const MR: usize;
    /// Columns of C per tile, the width of a packed panel of B.
    const NR: usize;
    type Tile;
    /// The rows×cols tile of A·B over kc steps: A(r, p) read in place, B's
    /// row p from the packed panel (NR floats a row).
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        rows: usize,
        cols: usize,
        kc: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        panel: *const f32,
    ) -> Self::Tile;
    /// C[rows, cols] ← alpha·tile + beta·C, then `ep` (only ever with beta =
    /// 0 and row-major C); C is not read when beta = 0 and there is no residual.
    #[allow(clippy::too_many_arguments)]
    unsafe fn store(
        tile: &Self::Tile,
        rows: usize,
        cols: usize,
        alpha: f32,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
        ep: Epilogue,
    );
}

/// The loops around a kernel's tiles (see the module docs), inlined into
/// each kernel's entry point, which is compiled for its instruction set.
/// `ep` runs in the stores of the last block of K; it needs beta = 0,
/// row-major C, and, for a residual, a single block of K (so that no
/// earlier block overwrites C first).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn blocked<K: Kernel>(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    beta: f32,
    x: Mats,
    packed: &mut Vec<f32>,
    ep: Epilogue,
) {
    debug_assert!(ep.is_none() || (beta == 0.0 && x.csc == 1 && (!ep.residual || k <= KC)));
    let panels = n.div_ceil(K::NR);
    packed.resize(KC.min(k) * panels * K::NR, 0.0);
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        pack_b(
            K::NR,
            kc,
            n,
            x.b.offset(k0 as isize * x.rsb),
            x.rsb,
            x.csb,
            packed,
        );
        // Later blocks of K add to what the first one wrote.
        let beta = if k0 == 0 { beta } else { 1.0 };
        let a = x.a.offset(k0 as isize * x.csa);
        let last = k0 + kc == k;
        // Rows in blocks of MC, then panel by panel: the panel stays in cache
        // while the block's rows of A stream past it.
        for ib in (0..m).step_by(MC) {
            for panel in 0..panels {
                let j0 = panel * K::NR;
                let cols = K::NR.min(n - j0);
                let b = packed[panel * kc * K::NR..].as_ptr();
                let ep = if last {
                    ep.at_column(j0)
                } else {
                    Epilogue::NONE
                };
                for i0 in (ib..m.min(ib + MC)).step_by(K::MR) {
                    let rows = K::MR.min(m - i0);
                    let a = a.offset(i0 as isize * x.rsa);
                    let tile = K::tile(rows, cols, kc, a, x.rsa, x.csa, b);
                    let c = x.c.offset(i0 as isize * x.rsc + j0 as isize * x.csc);
                    K::store(&tile, rows, cols, alpha, beta, c, x.rsc, x.csc, ep);
                }
            }
        }
    }
}

/// Packs the kc×n block of B into panels of `nr` columns, each kc rows of
/// `nr` floats; columns past n are zero.
#[inline(always)]
unsafe fn pack_b(
    nr: usize,
    kc: usize,
    n: usize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    out: &mut [f32],
) {
    for (panel, dst) in out
        .chunks_exact_mut(kc * nr)
        .take(n.div_ceil(nr))
        .enumerate()
    {
        let j0 = panel * nr;
        let cols = nr.min(n - j0);
        for (p, row) in dst.chunks_exact_mut(nr).enumerate() {
            let src = b.offset(p as isize * rsb + j0 as isize * csb);
            if csb == 1 {
                row[..cols].copy_from_slice(std::slice::from_raw_parts(src, cols));
                row[cols..].fill(0.0);
            } else {
                for (q, v) in row.iter_mut().enumerate() {
                    *v = if q < cols {
                        *src.offset(q as isize * csb)
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}
