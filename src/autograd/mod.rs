//! Autograd: a define-by-run tape over named parameters.

mod backward;
pub(crate) mod gpu;
pub(crate) mod node;
mod ops;
mod params;
mod shards;
mod tape;

pub use crate::cpu::conv1d::Padding;
pub use crate::cpu::losses::LossKind;
pub use backward::Backward;
pub use node::Var;
pub use params::{Grads, ParamId, ParamStore};
pub use shards::{shard_rows, sharded_backward};
pub use tape::Tape;
