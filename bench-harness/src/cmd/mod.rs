//! The subcommands, one folder each: `mod.rs` holds its flags and its run,
//! `report.rs` (where it has one) what it writes.

pub mod broker;
pub mod compare;
pub mod criterion_summary;
pub mod disk;
pub mod failover;
pub mod recover;
pub mod store;
pub mod sweep;
