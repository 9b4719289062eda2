//! corelog: a Kafka-compatible broker, thread-per-core and shared-nothing on
//! io_uring. See DESIGN in the README for the layering; dependencies point
//! one way: model ← {protocol, storage, cluster ← metadata} ← partition ← shard ←
//! api ← net ← server.

mod api;
pub mod cluster;
pub mod config;
mod controller;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
mod group;
mod metadata;
pub mod model;
mod net;
mod partition;
pub mod protocol;
pub mod runtime;
pub mod server;
mod shard;
pub mod storage;

/// Unit tests decode hostile frames too (`fuzz`), so they run under the
/// broker's allocator, as `main.rs` sets it.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: runtime::alloc::GuardedAllocator = runtime::alloc::GuardedAllocator;
