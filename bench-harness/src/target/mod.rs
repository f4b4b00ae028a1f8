//! Systems a workload can be run against; each implements
//! [`crate::workload::Target`].
//!
//! - [`standin`]: an in-memory stand-in, NOT the engine, used while the
//!   engine's API is not on main yet.

pub mod standin;
