//! A cluster of N broker nodes of either kind on this machine, started
//! together for one run of `corelog-bench peer`: node i (1-based) listens on
//! 127.0.0.i, all nodes on the same client port P and controller port C (Kafka's
//! KRaft combined nodes: broker and controller in one process; corelog's
//! `--controller-quorum-voters`). One node is exactly today's single broker on
//! 127.0.0.1. A node serves clients only once a quorum of the nodes runs, so
//! every node is spawned first and then each is waited for, until it answers
//! Metadata naming every broker of the cluster.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::peer_report::BrokerKind;
use crate::probe;
use crate::proc::{self, fresh_dir, tail, wait_timeout};

/// corelog's broker ids: node id × SHARDS_PER_NODE_MAX + shard (src/cluster/mod.rs).
pub const CORELOG_SHARDS_PER_NODE_MAX: i32 = 1000;
/// How long corelog nodes may take to serve (a quorum to form first).
const CORELOG_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two readiness probes; bounds the error of the start time.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// How long one readiness probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Attempts at finding ports free on every node's address.
const PORT_ATTEMPTS: usize = 200;

/// Where the nodes of a cluster listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub nodes: u32,
    /// Shards per node (corelog); Kafka has one listener per node.
    pub shards: u16,
    /// The client port of every node (corelog: of its shard 0; shard s on port + s).
    pub port: u16,
    /// The controller port of every node, outside port..port + shards - 1.
    pub controller_port: u16,
}

impl Layout {
    /// Ports free on every node's address right now: P..P+shards-1 for
    /// clients and P+shards for the controllers.
    pub fn pick(nodes: u32, shards: u16) -> Result<Layout> {
        let hosts: Vec<Ipv4Addr> = (1..=nodes).map(host_ip).collect();
        let span = shards + 1;
        for _ in 0..PORT_ATTEMPTS {
            let base = TcpListener::bind((hosts[0], 0))?.local_addr()?.port();
            if base as usize + span as usize > 65536 {
                continue;
            }
            let free = hosts.iter().all(|h| (0..span).all(|i| TcpListener::bind((*h, base + i)).is_ok()));
            if free {
                return Ok(Layout { nodes, shards, port: base, controller_port: base + shards });
            }
        }
        bail!("no {span} consecutive ports free on all of 127.0.0.1..127.0.0.{nodes}")
    }

    pub fn host(&self, node: u32) -> String {
        host_ip(node).to_string()
    }

    /// KRaft's and corelog's `controller.quorum.voters`: "1@127.0.0.1:C,2@127.0.0.2:C,...".
    pub fn voters(&self) -> String {
        (1..=self.nodes).map(|n| format!("{n}@{}:{}", self.host(n), self.controller_port)).collect::<Vec<_>>().join(",")
    }

    /// Every node's client address (shard 0), comma-separated: a bootstrap list.
    pub fn bootstrap(&self, nodes: impl IntoIterator<Item = u32>) -> String {
        nodes.into_iter().map(|n| format!("{}:{}", self.host(n), self.port)).collect::<Vec<_>>().join(",")
    }

    /// The Kafka brokers a Metadata answer names once the whole cluster runs.
    fn brokers(&self, kind: BrokerKind) -> usize {
        match kind {
            BrokerKind::Corelog => self.nodes as usize * self.shards as usize,
            BrokerKind::Kafka => self.nodes as usize,
        }
    }

    /// Node i's data directory under `data_dir` (one node: `data_dir` itself, as before clusters).
    pub fn node_dir(&self, data_dir: &Path, node: u32) -> PathBuf {
        if self.nodes == 1 {
            data_dir.to_path_buf()
        } else {
            data_dir.join(format!("node{node}"))
        }
    }

    /// Node i's broker log, `<logs>.broker.log` for one node as before clusters.
    pub fn node_log(&self, logs: &str, node: u32) -> PathBuf {
        if self.nodes == 1 {
            PathBuf::from(format!("{logs}.broker.log"))
        } else {
            PathBuf::from(format!("{logs}.node{node}.broker.log"))
        }
    }
}

fn host_ip(node: u32) -> Ipv4Addr {
    debug_assert!((1..=254).contains(&node), "node {node} has no 127.0.0.x address");
    Ipv4Addr::new(127, 0, 0, node as u8)
}

/// The node a broker id names: corelog's id is node × 1000 + shard, Kafka's is the node id.
pub fn node_of_broker(kind: BrokerKind, broker_id: i32) -> u32 {
    match kind {
        BrokerKind::Corelog => (broker_id / CORELOG_SHARDS_PER_NODE_MAX) as u32,
        BrokerKind::Kafka => broker_id as u32,
    }
}

/// corelog's `serve` arguments for node i: today's single node without a
/// node id or voters; in a cluster the node id, its own address and the voters.
pub fn corelog_args(layout: &Layout, node: u32, data_dir: &Path, extra: &[String]) -> Vec<String> {
    let host = layout.host(node);
    let mut args: Vec<String> = vec!["serve".into(), "--data-dir".into(), data_dir.display().to_string()];
    if layout.nodes > 1 {
        args.extend(["--node-id".into(), node.to_string()]);
    }
    args.extend(["--host".into(), host.clone(), "--advertised-host".into(), host]);
    args.extend(["--port".into(), layout.port.to_string(), "--shards".into(), layout.shards.to_string()]);
    if layout.nodes > 1 {
        args.extend(["--controller-quorum-voters".into(), layout.voters()]);
    }
    args.extend(extra.iter().cloned());
    args
}

/// One node's process.
struct Node {
    id: u32,
    child: Child,
    log: PathBuf,
    /// SIGKILLed by the run (a failover case); not stopped again.
    killed: bool,
}

/// The nodes of one run; stopped (SIGTERM) and their data removed by `stop`.
pub struct Cluster {
    pub kind: BrokerKind,
    pub layout: Layout,
    nodes: Vec<Node>,
    data_dir: PathBuf,
    /// From the first spawn until every node answered Metadata naming the whole cluster.
    pub start_time: Duration,
}

impl Cluster {
    /// Spawns one command per node (`commands[i]` is node i + 1's, its
    /// output going to `layout.node_log(logs, i + 1)`), then waits for each.
    pub fn start(
        kind: BrokerKind,
        layout: Layout,
        commands: Vec<Command>,
        data_dir: &Path,
        logs: &str,
        timeout: Option<Duration>,
    ) -> Result<Cluster> {
        assert_eq!(commands.len(), layout.nodes as usize, "one command per node");
        let spawned = Instant::now();
        let mut cluster =
            Cluster { kind, layout, nodes: Vec::new(), data_dir: data_dir.to_path_buf(), start_time: Duration::ZERO };
        for (i, mut cmd) in commands.into_iter().enumerate() {
            let id = i as u32 + 1;
            let log = cluster.layout.node_log(logs, id);
            let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file).env("NO_COLOR", "1");
            let child = cmd.spawn().with_context(|| format!("starting node {id} ({:?})", cmd.get_program()))?;
            cluster.nodes.push(Node { id, child, log, killed: false });
        }
        let deadline = spawned + timeout.unwrap_or(CORELOG_READY_TIMEOUT);
        if let Err(e) = cluster.wait_ready(deadline) {
            cluster.kill_all();
            return Err(e);
        }
        cluster.start_time = spawned.elapsed();
        Ok(cluster)
    }

    /// Every node's every listener answers Metadata naming all the cluster's brokers.
    fn wait_ready(&mut self, deadline: Instant) -> Result<()> {
        let expected = self.layout.brokers(self.kind);
        let mut pending: Vec<(usize, SocketAddr)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for s in 0..self.layout.shards_listening(self.kind) {
                pending.push((i, SocketAddr::from((host_ip(n.id), self.layout.port + s))));
            }
        }
        let mut last = String::from("no answer yet");
        while let Some(&(i, addr)) = pending.first() {
            for n in &mut self.nodes {
                if let Some(status) = n.child.try_wait()? {
                    bail!("{} node {} exited with {status} during start-up:\n{}", self.kind.name(), n.id, tail(&n.log));
                }
            }
            if Instant::now() > deadline {
                let n = &self.nodes[i];
                bail!(
                    "{} node {} did not answer Metadata naming {expected} brokers on {addr} in time ({last}):\n{}",
                    self.kind.name(),
                    n.id,
                    tail(&n.log)
                );
            }
            match probe::metadata_brokers(addr, PROBE_TIMEOUT) {
                Ok(n) if n >= expected => {
                    pending.remove(0);
                }
                Ok(n) => {
                    last = format!("it named {n}");
                    std::thread::sleep(PROBE_INTERVAL);
                }
                Err(e) => {
                    last = format!("{e:#}");
                    std::thread::sleep(PROBE_INTERVAL);
                }
            }
        }
        Ok(())
    }

    /// The client addresses of the nodes still running, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.layout.bootstrap(self.nodes.iter().filter(|n| !n.killed).map(|n| n.id))
    }

    /// The process ids of the nodes still running.
    pub fn pids(&self) -> Vec<i32> {
        self.nodes.iter().filter(|n| !n.killed).map(|n| n.child.id() as i32).collect()
    }

    /// SIGKILLs node `id` (a crash: no shutdown, no flush) and reaps it.
    pub fn kill(&mut self, id: u32) -> Result<()> {
        let n = self.nodes.iter_mut().find(|n| n.id == id).ok_or_else(|| anyhow!("no node {id}"))?;
        ensure_running(n)?;
        n.child.kill().with_context(|| format!("SIGKILL to node {id}"))?;
        n.child.wait()?;
        n.killed = true;
        Ok(())
    }

    fn kill_all(&mut self) {
        for n in &mut self.nodes {
            let _ = n.child.kill();
            let _ = n.child.wait();
        }
    }

    /// SIGTERM to every node still running, then a clean exit of each
    /// (SIGKILL after STOP_TIMEOUT); the data directory is removed. A single
    /// node that does not exit in time is an error. In a cluster the last
    /// nodes may be unable to: a Kafka node's controlled shutdown waits for
    /// a controller quorum that the others took with them (or that a failover
    /// case's kill already cut down). Such nodes are SIGKILLed and returned,
    /// not an error: stopping is not measured, and the data is thrown away.
    pub fn stop(mut self) -> Result<Vec<u32>> {
        for n in self.nodes.iter().filter(|n| !n.killed) {
            // SAFETY: kill takes no pointer; the pid is our child's, not yet reaped.
            unsafe { libc::kill(n.child.id() as i32, libc::SIGTERM) };
        }
        let mut stuck = Vec::new();
        for n in self.nodes.iter_mut().filter(|n| !n.killed) {
            if wait_timeout(&mut n.child, STOP_TIMEOUT)?.is_none() {
                let _ = n.child.kill();
                let _ = n.child.wait();
                stuck.push(n.id);
            }
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if !stuck.is_empty() && self.layout.nodes == 1 {
            bail!("{} did not exit within {STOP_TIMEOUT:?} of SIGTERM", self.kind.name());
        }
        Ok(stuck)
    }
}

impl Layout {
    /// Listeners per node: corelog one per shard, Kafka one.
    fn shards_listening(&self, kind: BrokerKind) -> u16 {
        match kind {
            BrokerKind::Corelog => self.shards,
            BrokerKind::Kafka => 1,
        }
    }
}

fn ensure_running(n: &mut Node) -> Result<()> {
    if n.killed {
        bail!("node {} was already killed", n.id);
    }
    if let Some(status) = n.child.try_wait()? {
        bail!("node {} had already exited with {status}:\n{}", n.id, tail(&n.log));
    }
    Ok(())
}

/// Clears `data_dir` and creates each node's directory in it.
pub fn fresh_node_dirs(layout: &Layout, data_dir: &Path) -> Result<()> {
    fresh_dir(data_dir)?;
    for n in 1..=layout.nodes {
        std::fs::create_dir_all(layout.node_dir(data_dir, n))?;
    }
    Ok(())
}

/// `corelog serve` for every node of `layout`, pinned to `cpus`.
pub fn corelog_commands(
    corelog: &Path,
    layout: &Layout,
    cpus: Option<&str>,
    data_dir: &Path,
    extra: &[String],
) -> Vec<Command> {
    (1..=layout.nodes)
        .map(|n| {
            let mut cmd = proc::on_cpus(corelog, cpus);
            cmd.args(corelog_args(layout, n, &layout.node_dir(data_dir, n), extra));
            cmd
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Layout {
        Layout { nodes: 3, shards: 1, port: 9092, controller_port: 9093 }
    }

    #[test]
    fn nodes_listen_on_their_own_loopback_address() {
        let l = three();
        assert_eq!(l.host(2), "127.0.0.2");
        assert_eq!(l.voters(), "1@127.0.0.1:9093,2@127.0.0.2:9093,3@127.0.0.3:9093");
        assert_eq!(l.bootstrap([1, 3]), "127.0.0.1:9092,127.0.0.3:9092");
        assert_eq!(l.node_dir(Path::new("/d"), 2), Path::new("/d/node2"));
        assert_eq!(l.node_log("/l/r0-x-kafka", 3), Path::new("/l/r0-x-kafka.node3.broker.log"));
        assert_eq!(l.brokers(BrokerKind::Kafka), 3);
        assert_eq!(Layout { shards: 2, ..l }.brokers(BrokerKind::Corelog), 6);
    }

    #[test]
    fn corelog_command_lines() {
        let l = three();
        let args = corelog_args(&l, 2, Path::new("/d/node2"), &["--flush-ms=5".into()]);
        assert_eq!(
            args.join(" "),
            "serve --data-dir /d/node2 --node-id 2 --host 127.0.0.2 --advertised-host 127.0.0.2 --port 9092 \
             --shards 1 --controller-quorum-voters 1@127.0.0.1:9093,2@127.0.0.2:9093,3@127.0.0.3:9093 --flush-ms=5"
        );
        // One node: today's command line, no node id, no voters.
        let one = Layout { nodes: 1, shards: 1, port: 9092, controller_port: 9093 };
        assert_eq!(
            corelog_args(&one, 1, Path::new("/d"), &[]).join(" "),
            "serve --data-dir /d --host 127.0.0.1 --advertised-host 127.0.0.1 --port 9092 --shards 1"
        );
        assert_eq!(one.node_dir(Path::new("/d"), 1), Path::new("/d"));
        assert_eq!(one.node_log("/l/x", 1), Path::new("/l/x.broker.log"));
    }

    #[test]
    fn broker_ids_name_their_node() {
        assert_eq!(node_of_broker(BrokerKind::Corelog, 2000), 2);
        assert_eq!(node_of_broker(BrokerKind::Corelog, 3001), 3);
        assert_eq!(node_of_broker(BrokerKind::Corelog, 0), 0);
        assert_eq!(node_of_broker(BrokerKind::Kafka, 2), 2);
    }

    #[test]
    fn picked_ports_are_free_on_every_address() {
        let l = Layout::pick(3, 2).unwrap();
        assert_eq!(l.controller_port, l.port + 2);
        for n in 1..=3 {
            for p in l.port..=l.controller_port {
                TcpListener::bind((host_ip(n), p)).unwrap();
            }
        }
    }
}
