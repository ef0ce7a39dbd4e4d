//! One error type for the engine: shape errors name the op and both shapes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// Two operands (or an operand and an expected layout) disagree.
    #[error("{op}: incompatible shapes {lhs:?} and {rhs:?}: {why}")]
    Shape {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
        why: String,
    },
    /// The requested device cannot be used (no driver, no GPU, unsupported dtype).
    #[error("device error: {0}")]
    Device(String),
    /// A loss or gradient became NaN or infinite.
    #[error("non-finite {what} at step {step}")]
    NonFinite { what: String, step: usize },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn shape(op: &'static str, lhs: &[usize], rhs: &[usize], why: impl Into<String>) -> Self {
        Error::Shape {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            why: why.into(),
        }
    }
}
