//! Autograd: a define-by-run tape over named parameters.

pub(crate) mod gpu;
mod ops;
mod params;
mod tape;

pub use params::{Grads, ParamId, ParamStore};
pub use tape::{Backward, LossKind, Padding, Tape, Var};
