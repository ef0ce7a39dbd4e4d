//! Command-line subcommands.
pub mod device_choice;
pub mod devices;
pub mod eval;
pub mod predict;
pub mod train;
