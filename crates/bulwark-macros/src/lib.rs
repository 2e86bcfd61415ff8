//! Attribute macros for Bulwark; use them through the `bulwark` crate's re-exports.
