//! Start-up and shutdown: binds one listener per shard, starts the shard
//! threads, waits for a signal, then stops every shard cleanly (a cluster
//! node first hands its leaderships over: controlled shutdown).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::{IdentityError, LocalNode, NodeRegistration, ShardId};
use crate::config::BrokerConfig;
use crate::controller::{
    self, ControlledShutdown, ControllerConfig, ControllerError, ControllerHandle, DutySettings, InternalTopic,
};
use crate::group::offsets_topic::{OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::metadata::{MetadataError, MetadataRecord, MetadataStore, Snapshot};
use crate::shard::{Boot, Control, MetadataOwner, Shard, MAILBOX_CAPACITY};
use crate::{net, runtime};

/// Written at the end of a clean shutdown, removed at start: its absence at
/// start-up means the last run crashed and every active segment is checked.
const CLEAN_SHUTDOWN_MARKER: &str = ".clean_shutdown";

#[derive(Debug, Error)]
pub enum StartError {
    #[error("{0}")]
    IoUring(String),
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("invalid configuration: {0}")]
    Identity(#[from] IdentityError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("data directory {dir}: {source}")]
    DataDir { dir: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error("{0} holds a single node's metadata log (__cluster_metadata.log): a cluster node starts on a data directory of its own; moving a single node's topics into a cluster is not supported")]
    SingleNodeDataDir(PathBuf),
    #[error("the data directory holds {count} partition directories (such as {example}) but no metadata log (__cluster_metadata.log): their topics are unknown, and starting afresh would remove them as strays; restore the metadata log, or move the partition directories away")]
    PartitionsWithoutMetadata { count: usize, example: PathBuf },
    #[error("starting shard threads: {0}")]
    Threads(std::io::Error),
}

/// Hands each shard thread the one-time resources it takes ownership of.
type Slots<T> = Arc<Vec<Mutex<Option<T>>>>;

fn slots<T>(items: impl IntoIterator<Item = T>) -> Slots<T> {
    Arc::new(items.into_iter().map(|t| Mutex::new(Some(t))).collect())
}

fn take<T>(slots: &Slots<T>, shard: usize) -> T {
    slots[shard].lock().unwrap().take().expect("each shard takes its slot once")
}

/// How long start-up keeps retrying a port still held by a process that just
/// died: the kernel releases an io_uring process's sockets a moment late.
const BIND_RETRY_MS: u64 = 5_000;

fn bind_one(addr: &str) -> std::io::Result<TcpListener> {
    let sockaddr = std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(sockaddr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&sockaddr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn bind(config: &BrokerConfig, node: &LocalNode) -> Result<Vec<TcpListener>, StartError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(BIND_RETRY_MS);
    (0..node.shard_count())
        .map(|s| {
            let addr = format!("{}:{}", config.host, node.port(ShardId(s as u16)));
            loop {
                match bind_one(&addr) {
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    other => return other.map_err(|source| StartError::Bind { addr, source }),
                }
            }
        })
        .collect()
}

fn take_clean_marker(data_dir: &Path) -> Result<bool, StartError> {
    let error = |source| StartError::DataDir { dir: data_dir.into(), source };
    std::fs::create_dir_all(data_dir).map_err(error)?;
    let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
    let clean = marker.exists();
    if clean {
        std::fs::remove_file(&marker).map_err(error)?;
    }
    Ok(clean)
}

/// Runs the broker until SIGINT or SIGTERM, then shuts down cleanly.
pub fn run(mut config: BrokerConfig) -> Result<(), StartError> {
    config.validate()?;
    runtime::check_io_uring().map_err(StartError::IoUring)?;
    let open_files_max = runtime::raise_open_file_limit();
    let shard_count = config.shards.unwrap_or_else(|| core_affinity::get_core_ids().map_or(1, |c| c.len())).max(1);
    config.open_files_max = open_files_max;
    let mut node = LocalNode::new(config.node_id, shard_count, config.advertised_host(), config.port)?;
    let voters = config.voters()?;
    let me = voters.iter().find(|v| v.id == node.id());
    if let Some(me) = me {
        // The issue's own command (`--port 9092`, voters on :9093) puts the
        // controller listener in the shards' range: they step over it.
        node = node.skipping_port(me.port)?;
    }
    let clean_shutdown = take_clean_marker(&config.data_dir)?;
    let (owner, snapshot, controller) = match me {
        None => {
            if !MetadataStore::exists(&config.data_dir) {
                let found = crate::shard::strays::partition_dirs(&config.data_dir);
                if let Some(example) = found.first() {
                    return Err(StartError::PartitionsWithoutMetadata { count: found.len(), example: example.clone() });
                }
            }
            let mut store = MetadataStore::open(&config.data_dir, node.id())?;
            create_offsets_topic(&mut store, &node)?;
            let snapshot = store.snapshot().clone();
            (MetadataOwner::Local(std::cell::RefCell::new(store)), snapshot, None)
        }
        Some(_) => {
            if MetadataStore::exists(&config.data_dir) {
                // Its topics are not in the quorum's log: starting would hide them.
                return Err(StartError::SingleNodeDataDir(config.data_dir.clone()));
            }
            crate::metadata::claim_data_dir(&config.data_dir, node.id())?;
            let (handle, thread) = start_controller(&config, &node, voters.clone())?;
            // A node serves clients only once the quorum has registered and unfenced it.
            let snapshot = Snapshot::clone(&handle.wait_until_serving());
            let broker_epoch = snapshot.nodes.get(&node.id()).map_or(-1, |n| n.epoch);
            let cluster_id = snapshot.cluster_id.as_deref().unwrap_or("");
            tracing::info!(node_id = %node.id(), broker_epoch, cluster_id, "registered with the controller quorum");
            (MetadataOwner::Quorum(handle.clone()), snapshot, Some((handle, thread)))
        }
    };
    // Before any shard opens a replica: directories the metadata gives no
    // replica here (deleted or moved while this node was down) go.
    crate::shard::strays::sweep(&config.data_dir, node.id(), &snapshot);
    let listeners = bind(&config, &node)?;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shard_count).map(|_| mpsc::channel(MAILBOX_CAPACITY)).unzip();
    let boot = Arc::new(Boot {
        config: Arc::new(config.clone()),
        node,
        snapshot: Arc::new(snapshot),
        clean_shutdown,
        mailboxes: senders.clone(),
    });
    tracing::info!(
        node_id = %config.node_id, host = %config.host, port = config.port, shards = shard_count, data_dir = %config.data_dir.display(),
        clean_shutdown, topics = boot.snapshot.topics.len(), open_files_max, max_partitions = config.partitions_max(), "corelog starting"
    );
    let (listeners, receivers, owner) = (slots(listeners), slots(receivers), slots([owner]));
    let threads = runtime::spawn_shards(shard_count, move |id| {
        let boot = boot.clone();
        let listener = take(&listeners, id);
        let mailbox = take(&receivers, id);
        let owner = (id == 0).then(|| take(&owner, 0));
        async move {
            let shard = Rc::new(Shard::new(id, &boot, owner));
            // A copy per shard, so the snapshot's reference count is never shared across cores.
            shard.start(Arc::new(Snapshot::clone(&boot.snapshot)), boot.clean_shutdown).await;
            shard.load_groups().await;
            let timers = shard.clone();
            runtime::spawn(runtime::supervise("group timers", move || timers.clone().run_group_timers()));
            let expiry = shard.clone();
            runtime::spawn(runtime::supervise("producer expiry", move || expiry.clone().run_producer_expiry()));
            let cleaner = shard.clone();
            runtime::spawn(runtime::supervise("cleaner", move || cleaner.clone().run_cleaner()));
            let retention = shard.clone();
            runtime::spawn(runtime::supervise("retention", move || retention.clone().run_retention()));
            let isr = shard.clone();
            runtime::spawn(runtime::supervise("isr changes", move || isr.clone().run_isr_changes()));
            let fetchers = shard.clone();
            runtime::spawn(runtime::supervise("replica fetchers", move || fetchers.clone().run_replica_fetchers()));
            let checkpoints = shard.clone();
            runtime::spawn(runtime::supervise("hw checkpoints", move || {
                checkpoints.clone().run_high_watermark_checkpoints()
            }));
            let control = runtime::spawn(shard.clone().run_control(mailbox));
            runtime::spawn(shard.clone().follow_quorum());
            let listener = runtime::TcpListener::from_std(listener);
            let here = boot.node.replica(ShardId(id as u16));
            tracing::info!(
                shard = id,
                broker_id = here.broker_id(),
                port = boot.node.port(here.shard),
                "shard serving"
            );
            net::serve(listener, shard).await;
            let _ = control.await;
        }
    })
    .map_err(StartError::Threads)?;
    wait_for_signal();
    tracing::info!("shutting down");
    if let Some((handle, _)) = &controller {
        shut_down_controlled(handle, &config);
    }
    stop_shards(&senders);
    for thread in threads {
        if thread.handle.join().is_err() {
            tracing::error!(shard = thread.id, "shard thread panicked");
        }
    }
    if let Some((handle, thread)) = controller {
        handle.stop();
        let _ = thread.join();
    }
    if let Err(e) = std::fs::write(config.data_dir.join(CLEAN_SHUTDOWN_MARKER), b"") {
        tracing::warn!(error = %e, "could not record the clean shutdown");
    }
    tracing::info!("corelog stopped");
    Ok(())
}

/// A cluster node's controlled shutdown, before its shards stop: the
/// quorum fences it and moves its leaderships to in-sync replicas while it
/// still serves, so clients move over at once rather than after a session
/// timeout. Bounded by `broker.session.timeout.ms`: past it the controller
/// would have fenced a node that had simply died, so waiting longer (Kafka's
/// broker waits for its whole shutdown deadline) would not stop it any
/// cleaner, and the last node of a cluster, which has no quorum to answer
/// it, stops after that much.
fn shut_down_controlled(controller: &ControllerHandle, config: &BrokerConfig) {
    let controlled_shutdown_ms_max = config.broker_session_timeout_ms;
    let started = std::time::Instant::now();
    let outcome = controller.shut_down_controlled(controlled_shutdown_ms_max);
    let waited_ms = started.elapsed().as_millis() as u64;
    match outcome {
        ControlledShutdown::Done => {
            // The quorum's leader as this node last applied it: another node when this one led it.
            let controller = controller.snapshots().borrow().controller.map(|n| n.0);
            tracing::info!(
                waited_ms,
                ?controller,
                "controlled shutdown: the quorum fenced this node, which leads no partition"
            )
        }
        ControlledShutdown::Alone => tracing::info!("controlled shutdown: no other node is up to take a partition over"),
        ControlledShutdown::TimedOut => tracing::warn!(
            waited_ms,
            "controlled shutdown: the controller quorum did not answer within broker.session.timeout.ms; stopping anyway"
        ),
    }
}

/// Starts this node's controller (a voter of the quorum) with its
/// registration: a new incarnation, the addresses of its shards.
fn start_controller(
    config: &BrokerConfig,
    node: &LocalNode,
    voters: Vec<crate::cluster::Voter>,
) -> Result<(ControllerHandle, std::thread::JoinHandle<()>), StartError> {
    let registration = NodeRegistration {
        id: node.id(),
        incarnation: uuid::Uuid::new_v4(),
        epoch: 0,
        host: node.advertised_host().to_string(),
        port: node.port_base(),
        shards: node.shard_count() as u16,
        fenced: true,
        skipped_port: node.skipped_port(),
    };
    let duties = DutySettings {
        session_timeout_ms: config.broker_session_timeout_ms,
        auto_leader_rebalance: config.auto_leader_rebalance_enable,
        imbalance_check_interval_ms: config.leader_imbalance_check_interval_seconds.saturating_mul(1_000),
        imbalance_percentage_max: config.leader_imbalance_per_broker_percentage,
    };
    let internal_topic = InternalTopic {
        name: OFFSETS_TOPIC.into(),
        partitions: OFFSETS_TOPIC_PARTITIONS,
        configs: offsets_topic_configs(),
        replication_factor: config.offsets_topic_replication_factor,
    };
    Ok(controller::start(ControllerConfig {
        dir: config.data_dir.join("controller"),
        me: node.id(),
        voters,
        registration,
        duties,
        heartbeat_interval_ms: config.broker_heartbeat_interval_ms,
        internal_topic: Some(internal_topic),
    })?)
}

/// `__consumer_offsets`' configs, as Kafka creates it.
fn offsets_topic_configs() -> std::collections::BTreeMap<String, String> {
    let configs = [("cleanup.policy", "compact"), ("segment.bytes", "104857600")];
    configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The internal topic that holds committed offsets, created on first start
/// as Kafka does: compacted, 50 partitions spread over the shards.
fn create_offsets_topic(store: &mut MetadataStore, node: &LocalNode) -> Result<(), MetadataError> {
    if store.snapshot().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let partitions = (0..OFFSETS_TOPIC_PARTITIONS).map(|p| node.place(OFFSETS_TOPIC, p)).collect();
    let configs = offsets_topic_configs();
    store.append(MetadataRecord::CreateTopic {
        name: OFFSETS_TOPIC.into(),
        id: uuid::Uuid::new_v4(),
        partitions,
        configs,
    })?;
    Ok(())
}

fn wait_for_signal() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("signal runtime");
    rt.block_on(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}

fn stop_shards(mailboxes: &[mpsc::Sender<Control>]) {
    let replies: Vec<_> = mailboxes
        .iter()
        .filter_map(|m| {
            let (reply, done) = oneshot::channel();
            m.blocking_send(Control::Shutdown { reply }).ok().map(|_| done)
        })
        .collect();
    for done in replies {
        let _ = done.blocking_recv();
    }
}
