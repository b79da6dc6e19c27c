//! Runnable examples for leader-election-rs; see `examples/` and run one with
//! `cargo run -p examples --example <name>`.
