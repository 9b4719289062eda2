//! Apache Kafka as the yardstick (`corelog-bench peer`): one KRaft node,
//! broker and controller in one process, run from the jars that
//! tests/java/setup.sh resolves from Maven Central, with the heap and JVM
//! flags of Kafka's own bin/kafka-server-start.sh and kafka-run-class.sh.
//! Everything the issue does not name keeps Kafka's default, the flush policy
//! included: no log.flush.* setting, so an acknowledged write is in the page
//! cache and the kernel writes it back when it sees fit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::proc::{self, Broker, HOST};

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
const NODE_ID: u32 = 1;

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

/// Apache Kafka, ready to start: its jars and a formatted empty log directory
/// that every start copies (the same as running kafka-storage format each
/// time, without a JVM start per run).
pub struct Kafka {
    pub jars: Jars,
    template: PathBuf,
    extra_config: Vec<String>,
}

impl Kafka {
    /// Formats the template log directory under `work`.
    pub fn prepare(jars: Jars, work: &Path, extra_config: &[String]) -> Result<Kafka> {
        let template = work.join("kafka-formatted");
        proc::fresh_dir(&template)?;
        let props = work.join("kafka-format.properties");
        let port = proc::free_port_range(2)?;
        std::fs::write(&props, server_properties(port, port + 1, &template, extra_config))?;
        let log = work.join("kafka-format.log");
        let mut cmd = jars.java_command(None, FORMAT_HEAP_ARGS, STORAGE_TOOL_CLASS);
        cmd.args(["format", "--cluster-id", &cluster_id(*uuid::Uuid::new_v4().as_bytes()), "--config"]).arg(&props);
        let status = proc::run_logged(&mut cmd, &log, FORMAT_TIMEOUT)?;
        if !status.success() {
            bail!("kafka-storage format exited with {status}:\n{}", proc::tail(&log));
        }
        Ok(Kafka { jars, template, extra_config: extra_config.to_vec() })
    }

    /// Starts Kafka on a copy of the formatted template in `data_dir`. Its
    /// server.properties, output (log4j at WARN, from tests/java) and GC log
    /// (kafka-server-start.sh's -loggc) go to `logs` + ".server.properties",
    /// ".broker.log" and ".gc.log".
    pub fn start(&self, cpus: Option<&str>, data_dir: &Path, logs: &str) -> Result<Broker> {
        proc::fresh_dir(data_dir)?;
        copy_tree(&self.template, data_dir)?;
        let port = proc::free_port_range(2)?;
        let props = PathBuf::from(format!("{logs}.server.properties"));
        std::fs::write(&props, self.server_properties(port, data_dir))
            .with_context(|| format!("writing {}", props.display()))?;
        let mut cmd = proc::on_cpus(&self.jars.java, cpus);
        cmd.args(server_jvm_args())
            .arg(format!("-Xlog:gc*:file={logs}.gc.log:time,tags:filecount=10,filesize=100M"))
            .arg("-cp")
            .arg(&self.jars.classpath)
            .arg(SERVER_CLASS)
            .arg(&props);
        Broker::spawn("kafka", &mut cmd, &[port], data_dir, Path::new(&format!("{logs}.broker.log")), READY_TIMEOUT)
    }

    /// The server.properties of a start on `port` (its controller on port + 1).
    pub fn server_properties(&self, port: u16, data_dir: &Path) -> String {
        server_properties(port, port + 1, data_dir, &self.extra_config)
    }
}

/// A single KRaft node's server.properties: what Kafka's config/server.properties
/// sets for one combined broker and controller (listeners, replication factor 1
/// for the internal topics), on 127.0.0.1; Kafka's defaults for the rest.
/// `extra` (KEY=VALUE, from --kafka-config) comes last and so wins.
fn server_properties(port: u16, controller_port: u16, log_dir: &Path, extra: &[String]) -> String {
    let mut s = format!(
        "process.roles=broker,controller\n\
         node.id={NODE_ID}\n\
         controller.quorum.voters={NODE_ID}@{HOST}:{controller_port}\n\
         listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}\n\
         advertised.listeners=PLAINTEXT://{HOST}:{port}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         log.dirs={}\n\
         offsets.topic.replication.factor=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n",
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
        let p = server_properties(9000, 9001, Path::new("/d/k"), &["num.io.threads=4".into()]);
        assert!(p.contains("controller.quorum.voters=1@127.0.0.1:9001\n"));
        assert!(p.contains("listeners=PLAINTEXT://127.0.0.1:9000,CONTROLLER://127.0.0.1:9001\n"));
        assert!(p.contains("log.dirs=/d/k\n"));
        assert!(p.ends_with("num.io.threads=4\n"));
        // Kafka's default flush policy: nothing about flushing is set.
        assert!(!p.contains("flush"));
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
