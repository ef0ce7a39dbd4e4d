//! Autograd: a define-by-run tape over named parameters.

mod backward;
pub(crate) mod node;
mod params;
mod shards;
mod tape;
mod var;

pub use crate::ops::conv1d::Padding;
pub use crate::ops::losses::LossKind;
pub use backward::Backward;
pub use params::{Grads, ParamId, ParamStore};
pub use shards::{shard_rows, sharded_backward};
pub use tape::Tape;
pub use var::Var;
