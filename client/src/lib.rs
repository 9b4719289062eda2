//! corelog's one Kafka client codec: what the admin CLI (`corelog topics`,
//! `corelog groups`), the load generator (`corelog-load`) and the benchmark
//! harness (`corelog-bench`) share to talk to any Kafka broker.
//!
//! - [`frame`]: no I/O; request frames out, response frames in, with their
//!   headers and size limits.
//! - [`Connection`]: one blocking connection that negotiates API versions
//!   once and then sends each request at the highest version both sides know.
//! - [`Cluster`]: the broker map from Metadata, one connection per broker.
//! - [`Pipelined`]: a non-blocking connection for the load generator's data
//!   path (many requests in flight, whole response frames out without copies).
//! - [`KafkaError`] and [`error_name`]: error codes by Kafka's names, taken
//!   from kafka-protocol's `ResponseError`.
//!
//! The crate knows nothing of the broker: the broker's `src/` never depends on
//! it, and it never depends on the broker.

mod cluster;
mod connection;
mod error;
pub mod frame;
mod pipelined;
pub mod requests;
#[cfg(feature = "testing")]
pub mod testing;

pub use cluster::{Broker, Cluster};
pub use connection::{ConnectOptions, Connection};
pub use error::{error_name, ClientError, KafkaError};
pub use pipelined::{poll, Pipelined};
