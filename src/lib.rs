//! `ferromq`: the umbrella crate. It re-exports [`ferromq_engine`], the embedded
//! RocketMQ-style message store, and owns the workspace's criterion benches.
pub use ferromq_engine::*;
