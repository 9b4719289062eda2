//! corelog: a Kafka-compatible broker, thread-per-core and shared-nothing on
//! io_uring. See DESIGN in the README for the layering; dependencies point
//! one way: model ← {protocol, storage, metadata} ← shard ← api ← net ← server.

pub mod api;
pub mod config;
pub mod group;
pub mod metadata;
pub mod model;
pub mod net;
pub mod protocol;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod storage;
