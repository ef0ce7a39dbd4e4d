//! Subcommands of the `convformer` binary that live in the library.

pub mod data;
pub mod device_choice;
pub mod devices;
pub mod eval;
pub mod predict;
pub mod source_args;
pub mod train;
pub mod tune;
pub mod tune_shared;
