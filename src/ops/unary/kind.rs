/// Pointwise ops of one input; the CUDA kernels are `<name>_fwd` and
/// `<name>_bwd` in `kernels/unary.cu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    Relu,
    /// GELU, tanh approximation.
    Gelu,
}
