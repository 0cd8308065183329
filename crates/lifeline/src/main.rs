//! The `lifeline` binary.
mod ops;
fn main() {}
