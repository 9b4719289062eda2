//! Apache Kafka as the yardstick (`corelog-bench peer`): KRaft nodes, each
//! broker and controller in one process (one node, or `--nodes N` on
//! 127.0.0.1..N with the same cluster id), run from the jars that
//! tests/java/setup.sh resolves from Maven Central, with the heap and JVM
//! flags of Kafka's own bin/kafka-server-start.sh and kafka-run-class.sh.
//! Everything the issue does not name keeps Kafka's default, the flush policy
//! included: no log.flush.* setting, so an acknowledged write is in the page
//! cache and the kernel writes it back when it sees fit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::cluster::{self, Cluster, Layout};
use crate::peer_report::BrokerKind;
use crate::proc;

/// bin/kafka-server-start.sh: KAFKA_HEAP_OPTS.
pub const SERVER_HEAP_ARGS: &[&str] = &["-Xmx1G", "-Xms1G"];
/// bin/kafka-producer-perf-test.sh: KAFKA_HEAP_OPTS.
pub const PERF_HEAP_ARGS: &[&str] = &["-Xmx512M"];
/// bin/kafka-run-class.sh: KAFKA_JVM_PERFORMANCE_OPTS (less -XX:MaxInlineLevel=15,
/// the JVM's own default since JDK 14).
pub const JVM_PERFORMANCE_ARGS: &[&str] = &[
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
];
/// bin/kafka-storage.sh: KAFKA_HEAP_OPTS (a tool's, kafka-run-class.sh's default).
const FORMAT_HEAP_ARGS: &[&str] = &["-Xmx256M"];
pub const SERVER_CLASS: &str = "kafka.Kafka";
const STORAGE_TOOL_CLASS: &str = "kafka.tools.StorageTool";
pub const PRODUCER_PERF_CLASS: &str = "org.apache.kafka.tools.ProducerPerformance";
pub const CONSUMER_PERF_CLASS: &str = "org.apache.kafka.tools.ConsumerPerformance";
/// A JVM on one loaded core takes several seconds to start Kafka; allow plenty.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
const FORMAT_TIMEOUT: Duration = Duration::from_secs(180);
const SETUP_TIMEOUT: Duration = Duration::from_secs(1800);
/// Replication factor and min.insync.replicas of the internal topics
/// (offsets, transactions, share state) when the cluster has that many nodes:
/// Kafka's defaults of 3 and 2.
const INTERNAL_REPLICATION_FACTOR: u32 = 3;
const INTERNAL_MIN_INSYNC_REPLICAS: u32 = 2;

/// Java and Kafka's jars, as tests/java/setup.sh resolved them.
#[derive(Clone)]
pub struct Jars {
    java: PathBuf,
    classpath: String,
    pub version: String,
    pub java_version: String,
}

impl Jars {
    /// Runs `java_dir/setup.sh` (Maven Central, cached in ~/.m2; its log in
    /// `work`) and reads the classpath it writes.
    pub fn resolve(java: &Path, java_dir: &Path, work: &Path) -> Result<Jars> {
        let setup = java_dir.join("setup.sh");
        let setup_log = work.join("kafka-setup.log");
        std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
        let status = proc::run_logged(&mut Command::new(&setup), &setup_log, SETUP_TIMEOUT)?;
        if !status.success() {
            bail!("{} exited with {status}:\n{}", setup.display(), proc::tail(&setup_log));
        }
        let cp_file = java_dir.join("target/classpath.txt");
        let classpath = std::fs::read_to_string(&cp_file)
            .with_context(|| format!("reading {} (written by {})", cp_file.display(), setup.display()))?
            .trim()
            .to_string();
        let version =
            version_in_classpath(&classpath).with_context(|| format!("no kafka_2.13 jar in {}", cp_file.display()))?;
        let java_version = Command::new(java)
            .arg("-version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stderr).lines().next().map(str::to_string))
            .with_context(|| format!("running {} -version", java.display()))?;
        Ok(Jars { java: java.to_path_buf(), classpath, version, java_version })
    }

    /// `java <heap> <JVM_PERFORMANCE_ARGS> -cp <jars> <class>`, under taskset when CPUs are given.
    pub fn java_command(&self, cpus: Option<&str>, heap: &[&str], class: &str) -> Command {
        let mut cmd = proc::on_cpus(&self.java, cpus);
        cmd.args(heap).args(JVM_PERFORMANCE_ARGS).arg("-cp").arg(&self.classpath).arg(class);
        cmd
    }
}

/// The broker's JVM flags: kafka-server-start.sh's heap, kafka-run-class.sh's performance options.
pub fn server_jvm_args() -> Vec<&'static str> {
    [SERVER_HEAP_ARGS, JVM_PERFORMANCE_ARGS].concat()
}

/// Apache Kafka, ready to start: its jars and, per node, a formatted empty
/// log directory that every start copies (the same as running kafka-storage
/// format each time, without a JVM start per run). Every node's template
/// carries the same cluster id.
pub struct Kafka {
    pub jars: Jars,
    nodes: u32,
    templates: Vec<PathBuf>,
    extra_config: Vec<String>,
}

impl Kafka {
    /// Formats one template log directory per node under `work`
    /// (`kafka-formatted` for a single node, `kafka-formatted-nodeN` in a cluster).
    pub fn prepare(jars: Jars, work: &Path, extra_config: &[String], nodes: u32) -> Result<Kafka> {
        let id = cluster_id(*uuid::Uuid::new_v4().as_bytes());
        let layout = Layout::pick(nodes, 1)?;
        let mut templates = Vec::new();
        for node in 1..=nodes {
            let suffix = if nodes == 1 { String::new() } else { format!("-node{node}") };
            let template = work.join(format!("kafka-formatted{suffix}"));
            proc::fresh_dir(&template)?;
            let props = work.join(format!("kafka-format{suffix}.properties"));
            std::fs::write(&props, server_properties(&layout, node, &template, extra_config))?;
            let log = work.join(format!("kafka-format{suffix}.log"));
            let mut cmd = jars.java_command(None, FORMAT_HEAP_ARGS, STORAGE_TOOL_CLASS);
            cmd.args(["format", "--cluster-id", &id, "--config"]).arg(&props);
            let status = proc::run_logged(&mut cmd, &log, FORMAT_TIMEOUT)?;
            if !status.success() {
                bail!("kafka-storage format (node {node}) exited with {status}:\n{}", proc::tail(&log));
            }
            templates.push(template);
        }
        Ok(Kafka { jars, nodes, templates, extra_config: extra_config.to_vec() })
    }

    /// Starts every node on a copy of its formatted template under
    /// `data_dir`, all pinned to `cpus`, and waits until each serves the
    /// whole cluster. Node i's server.properties, output (log4j at WARN,
    /// from tests/java) and GC log (kafka-server-start.sh's -loggc) go to
    /// `logs` + ".server.properties", ".broker.log" and ".gc.log" (with
    /// ".nodeN" before them in a cluster).
    pub fn start(&self, cpus: Option<&str>, data_dir: &Path, logs: &str) -> Result<Cluster> {
        let layout = Layout::pick(self.nodes, 1)?;
        cluster::fresh_node_dirs(&layout, data_dir)?;
        let mut commands = Vec::new();
        for (i, template) in self.templates.iter().enumerate() {
            let node = i as u32 + 1;
            let dir = layout.node_dir(data_dir, node);
            copy_tree(template, &dir)?;
            let prefix = if self.nodes == 1 { logs.to_string() } else { format!("{logs}.node{node}") };
            let props = PathBuf::from(format!("{prefix}.server.properties"));
            std::fs::write(&props, self.server_properties(&layout, node, &dir))
                .with_context(|| format!("writing {}", props.display()))?;
            let mut cmd = proc::on_cpus(&self.jars.java, cpus);
            cmd.args(server_jvm_args())
                .arg(format!("-Xlog:gc*:file={prefix}.gc.log:time,tags:filecount=10,filesize=100M"))
                .arg("-cp")
                .arg(&self.jars.classpath)
                .arg(SERVER_CLASS)
                .arg(&props);
            commands.push(cmd);
        }
        Cluster::start(BrokerKind::Kafka, layout, commands, data_dir, logs, Some(READY_TIMEOUT))
    }

    /// Node `node`'s server.properties in `layout`.
    pub fn server_properties(&self, layout: &Layout, node: u32, data_dir: &Path) -> String {
        server_properties(layout, node, data_dir, &self.extra_config)
    }
}

/// A KRaft combined node's server.properties: what Kafka's
/// config/server.properties sets for a broker and controller in one process
/// (listeners, the voters, the internal topics' replication), node i on
/// 127.0.0.i; Kafka's defaults for the rest. The internal topics get
/// replication factor 3 and min.insync.replicas 2, or as many as there are
/// nodes (1 and 1 for a single node, as Kafka's own file). `extra`
/// (KEY=VALUE, from --kafka-config) comes last and so wins.
fn server_properties(layout: &Layout, node: u32, log_dir: &Path, extra: &[String]) -> String {
    let host = layout.host(node);
    let (port, controller_port) = (layout.port, layout.controller_port);
    let rf = INTERNAL_REPLICATION_FACTOR.min(layout.nodes);
    let min_isr = INTERNAL_MIN_INSYNC_REPLICAS.min(layout.nodes);
    let mut s = format!(
        "process.roles=broker,controller\n\
         node.id={node}\n\
         controller.quorum.voters={}\n\
         listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}\n\
         advertised.listeners=PLAINTEXT://{host}:{port}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         log.dirs={}\n\
         offsets.topic.replication.factor={rf}\n\
         transaction.state.log.replication.factor={rf}\n\
         transaction.state.log.min.isr={min_isr}\n\
         share.coordinator.state.topic.replication.factor={rf}\n\
         share.coordinator.state.topic.min.isr={min_isr}\n",
        layout.voters(),
        log_dir.display()
    );
    for kv in extra {
        s.push_str(kv);
        s.push('\n');
    }
    s
}

/// The version of the kafka_2.13 jar on a ':'-separated classpath.
fn version_in_classpath(classpath: &str) -> Option<String> {
    classpath.split(':').find_map(|entry| {
        let file = entry.rsplit('/').next()?;
        Some(file.strip_prefix("kafka_2.13-")?.strip_suffix(".jar")?.to_string())
    })
}

/// A Kafka cluster id: 16 bytes in unpadded URL-safe base64 (22 characters),
/// what `kafka-storage random-uuid` prints.
fn cluster_id(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Copies the directory tree `from` into the existing directory `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying to {}", target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_kafka_base64() {
        // Kafka's Uuid.toString of these bytes (Base64 URL encoder, no padding).
        assert_eq!(cluster_id([0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(cluster_id([0xff; 16]), "_____________________w");
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(cluster_id(bytes), "AAECAwQFBgcICQoLDA0ODw");
    }

    #[test]
    fn version_comes_from_the_server_jar() {
        let cp = "/x/classes:/m2/org/apache/kafka/kafka-clients/4.4.0/kafka-clients-4.4.0.jar:\
                  /m2/org/apache/kafka/kafka_2.13/4.4.0/kafka_2.13-4.4.0.jar:/m2/scala-library-2.13.16.jar";
        assert_eq!(version_in_classpath(cp).as_deref(), Some("4.4.0"));
        assert_eq!(version_in_classpath("/a.jar:/b/kafka-tools-4.4.0.jar"), None);
    }

    #[test]
    fn properties_name_both_listeners_and_let_extra_settings_win() {
        let one = Layout { nodes: 1, shards: 1, port: 9000, controller_port: 9001 };
        let p = server_properties(&one, 1, Path::new("/d/k"), &["num.io.threads=4".into()]);
        assert!(p.contains("node.id=1\n"));
        assert!(p.contains("controller.quorum.voters=1@127.0.0.1:9001\n"));
        assert!(p.contains("listeners=PLAINTEXT://127.0.0.1:9000,CONTROLLER://127.0.0.1:9001\n"));
        assert!(p.contains("log.dirs=/d/k\n"));
        assert!(p.contains("offsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n"));
        assert!(p.ends_with("num.io.threads=4\n"));
        // Kafka's default flush policy: nothing about flushing is set.
        assert!(!p.contains("flush"));
    }

    #[test]
    fn every_node_of_a_cluster_names_all_voters_and_listens_on_its_own_address() {
        let three = Layout { nodes: 3, shards: 1, port: 9000, controller_port: 9001 };
        let p = server_properties(&three, 2, Path::new("/d/node2"), &[]);
        assert!(p.contains("node.id=2\n"));
        assert!(p.contains("controller.quorum.voters=1@127.0.0.1:9001,2@127.0.0.2:9001,3@127.0.0.3:9001\n"));
        assert!(p.contains("listeners=PLAINTEXT://127.0.0.2:9000,CONTROLLER://127.0.0.2:9001\n"));
        assert!(p.contains("advertised.listeners=PLAINTEXT://127.0.0.2:9000\n"));
        assert!(p.contains("offsets.topic.replication.factor=3\n"));
        assert!(p.contains("transaction.state.log.min.isr=2\n"));
        assert!(p.contains("share.coordinator.state.topic.replication.factor=3\n"));
        // min.insync.replicas of the measured topics is a topic config, not the broker's default.
        assert!(!p.contains("\nmin.insync.replicas"));
    }

    #[test]
    fn template_copies_whole_trees() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        std::fs::create_dir_all(from.join("__cluster_metadata-0")).unwrap();
        std::fs::write(from.join("meta.properties"), "node.id=1\n").unwrap();
        std::fs::write(from.join("__cluster_metadata-0/bootstrap.checkpoint"), [1, 2, 3]).unwrap();
        std::fs::create_dir(&to).unwrap();
        copy_tree(&from, &to).unwrap();
        assert_eq!(std::fs::read(to.join("__cluster_metadata-0/bootstrap.checkpoint")).unwrap(), [1, 2, 3]);
        assert_eq!(std::fs::read_to_string(to.join("meta.properties")).unwrap(), "node.id=1\n");
    }
}
