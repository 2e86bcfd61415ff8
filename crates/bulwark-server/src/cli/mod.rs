//! Subcommands of the `bulwark` binary that work offline, on local data.

pub mod alerts;
pub mod checkpoints;
