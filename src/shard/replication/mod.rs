//! The shard's side of data replication (Kafka's ReplicaManager tasks, one
//! set per shard): the ISR task of the partitions it leads (isr.rs).
//! Replication goes shard to shard: a replica's leader and followers each
//! live on one shard, and nothing here crosses to another core.

mod isr;
