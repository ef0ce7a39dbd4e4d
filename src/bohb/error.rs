//! Why an evaluation failed. The run records the message in the journal and
//! goes on, so the error only has to say what happened; its variants tell an
//! objective's own mistakes from the engine's.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EvalError {
    /// The objective cannot run this configuration (a hyperparameter it does
    /// not know, or a value of the wrong type).
    #[error("{0}")]
    Config(String),
    /// Training or evaluating failed inside the engine.
    #[error(transparent)]
    Engine(#[from] crate::Error),
    /// Any other failure the objective reports (a diverged or crashed run).
    #[error("{0}")]
    Failed(String),
}

impl From<String> for EvalError {
    fn from(message: String) -> Self {
        EvalError::Failed(message)
    }
}
