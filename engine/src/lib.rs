//! `ferromq-engine`: an embedded, RocketMQ-compatible message store.
#![warn(missing_docs)]

pub mod config;
pub mod error;

pub use config::{BrokerRole, FlushDiskType, StoreConfig};
pub use error::{Error, Result};
