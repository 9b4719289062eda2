//! The partition layer: one [`Replica`] per partition a shard hosts, between
//! the Kafka handlers (`api`), which decode, call it and encode, and storage,
//! which keeps bytes. A replica owns a partition's rules: validation of
//! produced batches (validate.rs), its idempotent producers (producers.rs),
//! its leader epoch and checkpoint file (leader_epoch.rs), its high
//! watermark, and the notification its long polls wait on (waiters.rs).
//! Its refusals are [`PartitionError`]s, which `api/error.rs` maps to Kafka
//! codes. Replication (issue 16): a replica leads or follows as the
//! metadata says (replication.rs); a leader tracks its followers' progress,
//! its ISR and high watermark by the pure rules of leader.rs. The shard
//! checkpoints its replicas' high watermarks (hw_checkpoint.rs).

mod error;
mod follower;
pub mod hw_checkpoint;
pub mod leader;
mod leader_epoch;
mod producers;
mod replica;
mod replication;
mod validate;
mod waiters;

pub use error::PartitionError;
pub use leader as leader_rules;
pub use producers::{ProducerBudget, PRODUCER_EXPIRY_CHECK_INTERVAL};
pub use replica::{Replica, ReplicaHost};
pub use replication::ReadBound;
pub use waiters::WriteWaiters;
