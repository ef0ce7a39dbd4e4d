//! The handle of a value recorded on a tape.

/// A value recorded on a tape: an index, cheap to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(pub(crate) usize);
