//! The `corelog` binary: `serve` (the default) runs the broker; `topics`
//! manages topics over the Kafka protocol against any Kafka broker.

mod cli;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use corelog::config::BrokerConfig;

/// Keeps a hostile array count in a request from aborting the broker (see the module).
#[global_allocator]
static ALLOCATOR: corelog::runtime::alloc::GuardedAllocator = corelog::runtime::alloc::GuardedAllocator;

#[derive(Parser)]
#[command(name = "corelog", version, about = "A Kafka-compatible message broker: thread-per-core, io_uring")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (what a bare `corelog` does).
    Serve(Box<ServeArgs>),
    /// Create, list, describe and delete topics (works against any Kafka broker).
    Topics {
        #[command(subcommand)]
        command: cli::topics::TopicsCommand,
    },
    /// List, describe, reset the offsets of and delete consumer groups (works against any Kafka broker).
    Groups {
        #[command(subcommand)]
        command: cli::groups::GroupsCommand,
    },
    /// Describe a cluster: nodes, controller, under-replicated and offline partitions.
    Cluster {
        #[command(subcommand)]
        command: cli::cluster::ClusterCommand,
    },
}

/// Every broker option. Flags override the --config file, which overrides the
/// built-in defaults (Kafka's).
#[derive(Args, Default)]
struct ServeArgs {
    /// TOML file with any of the options below (names with `_`, e.g. num_partitions = 3).
    #[arg(long)]
    config: Option<PathBuf>,
    /// node.id: this node's id; its shards are Kafka brokers node-id × 1000 + shard [default: 0].
    #[arg(long)]
    node_id: Option<u32>,
    /// controller.quorum.voters: every node of a cluster as id@host:port of its
    /// controller listener, e.g. 1@127.0.0.1:9093,2@127.0.0.2:9093,3@127.0.0.3:9093
    /// [default: none, a single node].
    #[arg(long)]
    controller_quorum_voters: Option<String>,
    /// broker.session.timeout.ms: a node whose heartbeats stop this long is fenced [default: 9000].
    #[arg(long)]
    broker_session_timeout_ms: Option<u64>,
    /// broker.heartbeat.interval.ms: how often a node heartbeats to the controller [default: 2000].
    #[arg(long)]
    broker_heartbeat_interval_ms: Option<u64>,
    /// replica.fetch.max.bytes: a follower fetch's record bytes per partition [default: 1048576].
    #[arg(long)]
    replica_fetch_max_bytes: Option<u32>,
    /// replica.fetch.response.max.bytes: a follower fetch's record bytes in all [default: 10485760].
    #[arg(long)]
    replica_fetch_response_max_bytes: Option<u32>,
    /// replica.fetch.wait.max.ms: how long a leader holds a follower fetch with nothing new [default: 500].
    #[arg(long)]
    replica_fetch_wait_max_ms: Option<u32>,
    /// replica.fetch.min.bytes: bytes a follower fetch waits for [default: 1].
    #[arg(long)]
    replica_fetch_min_bytes: Option<u32>,
    /// replica.fetch.backoff.ms: a follower's pause after a failed fetch [default: 1000].
    #[arg(long)]
    replica_fetch_backoff_ms: Option<u64>,
    /// replica.high.watermark.checkpoint.interval.ms: how often high watermarks are checkpointed [default: 5000].
    #[arg(long)]
    replica_high_watermark_checkpoint_interval_ms: Option<u64>,
    /// offsets.topic.replication.factor: replicas of __consumer_offsets, capped at the live nodes [default: 3].
    #[arg(long)]
    offsets_topic_replication_factor: Option<i16>,
    /// leader.imbalance.check.interval.seconds: how often leadership moves back to preferred replicas [default: 300].
    #[arg(long)]
    leader_imbalance_check_interval_seconds: Option<u64>,
    /// default.replication.factor: replicas of auto-created topics [default: 1].
    #[arg(long)]
    default_replication_factor: Option<i16>,
    /// min.insync.replicas: default of the topic config [default: 1].
    #[arg(long)]
    min_insync_replicas: Option<i32>,
    /// Where topics and their logs are stored [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    host: Option<String>,
    /// Port of shard 0 (the bootstrap port); shard s listens on port + s [default: 9092].
    #[arg(long)]
    port: Option<u16>,
    /// Host advertised to clients in Metadata [default: --host].
    #[arg(long)]
    advertised_host: Option<String>,
    /// Number of shards, one pinned thread per core [default: the usable cores].
    #[arg(long)]
    shards: Option<usize>,
    /// num.partitions: partitions of auto-created topics [default: 1].
    #[arg(long)]
    num_partitions: Option<i32>,
    /// auto.create.topics.enable [default: true].
    #[arg(long)]
    auto_create_topics_enable: Option<bool>,
    /// message.max.bytes: largest record batch accepted [default: 1048588].
    #[arg(long)]
    message_max_bytes: Option<u32>,
    /// socket.request.max.bytes: largest request frame accepted [default: 104857600].
    #[arg(long)]
    socket_request_max_bytes: Option<u32>,
    /// log.segment.bytes [default: 1073741824].
    #[arg(long)]
    log_segment_bytes: Option<u64>,
    /// Smallest segment.bytes a topic may be created or altered with (Kafka 4
    /// fixes it at 1 MiB; lower it only for tests) [default: 1048576].
    #[arg(long)]
    log_segment_bytes_min: Option<u64>,
    /// log.segment.ms [default: 7 days].
    #[arg(long)]
    log_segment_ms: Option<i64>,
    /// log.flush.interval.messages: 1 = every ack waits for fdatasync [default: never].
    #[arg(long)]
    log_flush_interval_messages: Option<u64>,
    /// log.flush.interval.ms [default: never].
    #[arg(long)]
    log_flush_interval_ms: Option<u64>,
    /// fetch.max.bytes: most record bytes in one Fetch answer, and most memory it may hold until sent [default: 57671680].
    #[arg(long)]
    fetch_max_bytes: Option<u32>,
    /// Per shard: memory all unsent Fetch answers may hold; past it, partitions are answered without records [default: 268435456].
    #[arg(long)]
    fetch_memory_bytes: Option<usize>,
    /// log.retention.ms [default: 7 days].
    #[arg(long)]
    log_retention_ms: Option<i64>,
    /// log.retention.bytes [default: -1, unlimited].
    #[arg(long)]
    log_retention_bytes: Option<i64>,
    /// log.retention.check.interval.ms: how often old segments are looked for [default: 300000].
    #[arg(long)]
    log_retention_check_interval_ms: Option<u64>,
    /// max.connections: connections each shard serves (every shard is a
    /// broker to clients); connections are also refused once descriptors run
    /// short, whatever this says [default: 2147483647].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Partitions of all topics this broker may hold (KIP-578's
    /// max.broker.partitions); past it CreateTopics and CreatePartitions get
    /// POLICY_VIOLATION [default: a sixth of the open-file limit].
    #[arg(long)]
    max_partitions: Option<usize>,
    /// max.connections.per.ip: connections one client address may hold to each shard [default: 2147483647].
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// connections.max.idle.ms: close connections silent this long [default: 600000].
    #[arg(long)]
    connections_max_idle_ms: Option<u64>,
    /// group.initial.rebalance.delay.ms: how long a new group's first rebalance waits for more members [default: 3000].
    #[arg(long)]
    group_initial_rebalance_delay_ms: Option<i32>,
    /// group.min.session.timeout.ms [default: 6000].
    #[arg(long)]
    group_min_session_timeout_ms: Option<i32>,
    /// group.max.session.timeout.ms [default: 1800000].
    #[arg(long)]
    group_max_session_timeout_ms: Option<i32>,
    /// group.max.size: members one consumer group may hold [default: 1000].
    #[arg(long)]
    group_max_size: Option<usize>,
    /// producer.id.expiration.ms: an idempotent producer silent this long is forgotten [default: 86400000].
    #[arg(long)]
    producer_id_expiration_ms: Option<i64>,
    /// offsets.retention.minutes: committed offsets of an empty group are kept this long [default: 10080].
    #[arg(long)]
    offsets_retention_minutes: Option<i64>,
    /// Write active segments with O_DIRECT where the file system allows it;
    /// false writes through the page cache [default: true].
    #[arg(long)]
    log_direct_io: Option<bool>,
    /// Bytes of recent writes each shard keeps in memory for fetches at the
    /// tail, with --log-direct-io [default: 33554432].
    #[arg(long)]
    log_hot_tail_bytes: Option<usize>,
    /// log.cleaner.enable: clean compacted topics in the background [default: true].
    #[arg(long)]
    log_cleaner_enable: Option<bool>,
    /// log.cleaner.backoff.ms: pause between cleaner passes [default: 15000].
    #[arg(long)]
    log_cleaner_backoff_ms: Option<u64>,
    /// log.cleaner.dedupe.buffer.size: bytes of each shard's key map while cleaning [default: 16777216].
    #[arg(long)]
    log_cleaner_dedupe_buffer_size: Option<u64>,
    /// log.cleaner.delete.retention.ms: default delete.retention.ms [default: 86400000].
    #[arg(long)]
    log_cleaner_delete_retention_ms: Option<i64>,
    /// log.cleaner.min.cleanable.ratio: default min.cleanable.dirty.ratio [default: 0.5].
    #[arg(long)]
    log_cleaner_min_cleanable_ratio: Option<f64>,
    /// log.cleaner.min.compaction.lag.ms: default min.compaction.lag.ms [default: 0].
    #[arg(long)]
    log_cleaner_min_compaction_lag_ms: Option<i64>,
    /// log.cleaner.max.compaction.lag.ms: default max.compaction.lag.ms [default: never].
    #[arg(long)]
    log_cleaner_max_compaction_lag_ms: Option<i64>,
    /// log.message.timestamp.after.max.ms: default message.timestamp.after.max.ms [default: 3600000].
    #[arg(long)]
    log_message_timestamp_after_max_ms: Option<i64>,
    /// log.message.timestamp.before.max.ms: default message.timestamp.before.max.ms [default: never].
    #[arg(long)]
    log_message_timestamp_before_max_ms: Option<i64>,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<BrokerConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => BrokerConfig::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { c.$field = v; })* };
        }
        set!(
            controller_quorum_voters,
            broker_session_timeout_ms,
            broker_heartbeat_interval_ms,
            replica_fetch_max_bytes,
            replica_fetch_response_max_bytes,
            replica_fetch_wait_max_ms,
            replica_fetch_min_bytes,
            replica_fetch_backoff_ms,
            replica_high_watermark_checkpoint_interval_ms,
            offsets_topic_replication_factor,
            leader_imbalance_check_interval_seconds,
            default_replication_factor,
            min_insync_replicas,
            data_dir,
            host,
            port,
            num_partitions,
            auto_create_topics_enable,
            message_max_bytes,
            socket_request_max_bytes,
            fetch_max_bytes,
            fetch_memory_bytes,
            log_segment_bytes,
            log_segment_bytes_min,
            log_segment_ms,
            log_flush_interval_messages,
            log_flush_interval_ms,
            log_direct_io,
            log_hot_tail_bytes,
            log_retention_ms,
            log_retention_bytes,
            log_retention_check_interval_ms,
            log_cleaner_enable,
            log_cleaner_backoff_ms,
            log_cleaner_dedupe_buffer_size,
            log_cleaner_delete_retention_ms,
            log_cleaner_min_cleanable_ratio,
            log_cleaner_min_compaction_lag_ms,
            log_cleaner_max_compaction_lag_ms,
            log_message_timestamp_after_max_ms,
            log_message_timestamp_before_max_ms,
            group_initial_rebalance_delay_ms,
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            offsets_retention_minutes,
            max_connections_per_ip,
            connections_max_idle_ms,
            max_connections,
            group_max_size,
            producer_id_expiration_ms
        );
        c.max_partitions = self.max_partitions.or(c.max_partitions);
        c.advertised_host = self.advertised_host.or(c.advertised_host);
        c.shards = self.shards.or(c.shards);
        c.node_id = self.node_id.map_or(c.node_id, corelog::cluster::NodeId);
        Ok(c)
    }
}

fn main() -> anyhow::Result<()> {
    // Colour only for a terminal that did not ask for none (https://no-color.org): log files stay plain.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    // A panic in a shard's task ends that task only (the connection closes,
    // a background loop restarts): say so in the log, in the log's format.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let backtrace = std::backtrace::Backtrace::capture();
        tracing::error!(thread = thread.name().unwrap_or("?"), "panicked: {info}\n{backtrace}");
    }));
    match Cli::parse().command.unwrap_or(Command::Serve(Box::default())) {
        Command::Serve(args) => Ok(corelog::server::run(args.into_config()?)?),
        Command::Topics { command } => cli::topics::run(command),
        Command::Groups { command } => cli::groups::run(command),
        Command::Cluster { command } => cli::cluster::run(command),
    }
}
