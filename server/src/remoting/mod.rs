//! RocketMQ remoting: frames, headers, codes, and the server/client plumbing.
//!
//! ```
//! use ferromq_server::remoting::{codec, RemotingCommand, SerializeType};
//!
//! let mut req = RemotingCommand::request(30).with_ext("topic", "T").with_ext("queueId", 0);
//! req.serialize_type = SerializeType::RocketMq;
//! let bytes = codec::encode(&req).unwrap();
//! let (back, used) = codec::decode(&bytes, codec::DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
//! assert_eq!(used, bytes.len());
//! assert_eq!(back.ext_fields.get_i64("queueId"), Ok(0));
//! ```

pub mod client;
pub mod codec;
pub mod codes;
pub mod command;
pub mod json;
mod limits;
pub mod server;
pub mod tls;

pub use client::{ClientError, RemotingClient};
pub use codec::{CodecError, DEFAULT_MAX_FRAME_BYTES};
pub use codes::{request, response};
pub use command::{ExtFields, HeaderError, RemotingCommand, SerializeType};
pub use server::{
    serve, serve_handed, CallError, ConnInfo, Handler, ServerConfig, MAX_PENDING_CALLS,
};
