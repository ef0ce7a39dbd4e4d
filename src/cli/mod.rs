//! Subcommands of the `convformer` binary that live in the library.

pub mod data;
