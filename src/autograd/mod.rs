//! Autograd: a define-by-run tape over named parameters.

pub(crate) mod gpu;
mod ops;
mod params;
mod shards;
mod tape;

pub use params::{Grads, ParamId, ParamStore};
pub use shards::{shard_rows, sharded_backward};
pub use tape::{Backward, LossKind, Padding, Tape, Var};
