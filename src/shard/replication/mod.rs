//! The shard's side of data replication (Kafka's ReplicaManager tasks, one
//! set per shard): the ISR task of the partitions it leads (isr.rs) and the
//! follower fetchers of the partitions it follows (fetcher.rs, over
//! link.rs), and the checkpoint of its replicas' high watermarks
//! (checkpoint.rs). Replication goes shard to shard: a replica's leader and
//! followers each live on one shard, and nothing here crosses to another
//! core.

mod checkpoint;
mod fetcher;
mod isr;
mod link;

use thiserror::Error;

use crate::partition::PartitionError;
use crate::storage::StorageError;

/// Why a follower fetch round failed: the fetcher backs off and reconnects.
#[derive(Debug, Error)]
pub enum ReplicationError {
    #[error("leader broker {0} has no known address")]
    UnknownNode(i32),
    #[error("{addr}: {source}")]
    Io { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("{addr} closed the connection")]
    Closed { addr: std::net::SocketAddr },
    #[error(transparent)]
    Client(#[from] corelog_client::ClientError),
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}
