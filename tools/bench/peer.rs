//! `corelog-bench peer`: corelog and Apache Kafka on the same machine in the
//! same run. Every case runs on a fresh broker of each kind in turn
//! (corelog, Kafka; Kafka first in odd rounds, so that a drift of the
//! machine's speed does not favour one side), both pinned the same way, driven
//! by the same load generator (corelog-load) and by Kafka's own
//! ProducerPerformance; peer.md gets the medians side by side. With
//! `--nodes N` each broker is a cluster of N nodes on 127.0.0.1..N
//! (cluster.rs) and the cases are the replicated ones (peer_cases.rs),
//! the failover under load among them (failover.rs).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::cluster::{self, Cluster, Layout};
use crate::kafka::{self, Jars, Kafka};
use crate::peer_cases::{cases, cluster_cases, select, Case, CaseKind};
use crate::peer_report::{self, fig, BrokerKind, PeerResults, PeerRun};
use crate::proc::{CpuSampler, CpuSamples};
use crate::{peer_method, perf, proc, shell_quote, sibling};

/// corelog-load may take this long beyond --warmup + --duration (topic
/// creation, draining consumers, filling the consume topic).
pub const LOAD_SLACK: Duration = Duration::from_secs(300);
/// Nodes of a cluster at most: node i listens on 127.0.0.i.
const NODES_MAX: u32 = 254;
/// How long ConsumerPerformance waits for records before it gives up.
const CONSUMER_PERF_IDLE_MS: u64 = 30_000;

/// Longest a ProducerPerformance run may take.
const PERF_TIMEOUT: Duration = Duration::from_secs(1800);
const TOPIC: &str = "peer";
const CONSUME_TOPIC: &str = "peer-consume";
const WARM_TOPIC: &str = "peer-warm";

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct PeerArgs {
    /// Where peer.md, results.json and the logs go.
    #[arg(long, default_value = "bench-peer")]
    pub out: PathBuf,
    /// Interleaved rounds; the table shows the median of each figure over them.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds measured per throughput and fixed-rate case.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds before the measured window (Kafka's JIT compiles its hot paths meanwhile).
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,
    /// Run only cases whose name contains this (repeatable); see --list.
    #[arg(long)]
    pub only: Vec<String>,
    /// Print the selected cases and exit.
    #[arg(long)]
    pub list: bool,
    /// The brokers to run, in this order in even rounds.
    #[arg(long, value_delimiter = ',', default_value = "corelog,kafka")]
    pub brokers: Vec<BrokerKind>,
    /// Megabytes of records each consume case writes first and then reads from the beginning.
    #[arg(long, default_value_t = 500.0)]
    pub consume_mb: f64,
    /// Fixed-rate cases run at this percentage of the lower of the brokers'
    /// produce maxima (same record size, 1 partition, 1 producer) in the first round.
    #[arg(long, default_value_t = 50.0)]
    pub latency_pct: f64,
    /// Records of each ProducerPerformance run (a fifth of them warm-up).
    #[arg(long, default_value_t = 2_000_000)]
    pub perf_records: u64,
    /// acks of the ProducerPerformance runs (all: the Java client's default).
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all"])]
    pub perf_acks: String,
    /// CPUs of the broker (taskset -c), the same for corelog and Kafka.
    #[arg(long, default_value = "0")]
    pub broker_cpus: String,
    /// CPUs of corelog-load and ProducerPerformance (taskset -c).
    #[arg(long, default_value = "1")]
    pub load_cpus: String,
    /// The corelog binary (default: next to corelog-bench).
    #[arg(long)]
    pub corelog: Option<PathBuf>,
    /// The corelog-load binary (default: next to corelog-bench).
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// Extra argument for `corelog serve` (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    pub broker_arg: Vec<String>,
    /// Extra KEY=VALUE line for Kafka's server.properties (repeatable).
    #[arg(long)]
    pub kafka_config: Vec<String>,
    /// The java to run Kafka with.
    #[arg(long, default_value = "java")]
    pub java: PathBuf,
    /// tests/java of the repository: its setup.sh resolves Kafka's jars from Maven Central.
    #[arg(long)]
    pub java_dir: Option<PathBuf>,
    /// Both brokers' data directory, cleared per run (default: OUT/broker-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Nodes per broker: 1 runs today's single-node cases; more start a
    /// cluster of each kind on 127.0.0.1..N and run the replicated cases.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// Replication factor of a cluster's measured topics (default: the node
    /// count); the RF=1 cases run beside them.
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// Messages per second of the failover case's producer (100 B records, acks=all).
    #[arg(long, default_value_t = 10_000.0)]
    pub failover_rate: f64,
    /// Seconds of load after the warm-up before the partition leader's node is SIGKILLed.
    #[arg(long, default_value_t = 5.0)]
    pub failover_after: f64,
    /// Seconds the load goes on after the kill (the new leader must ack within them).
    #[arg(long, default_value_t = 30.0)]
    pub failover_window: f64,
}

impl PeerArgs {
    pub fn replication_factor(&self) -> i16 {
        self.replication_factor.unwrap_or(self.nodes.min(i16::MAX as u32) as i16)
    }
}

pub fn run(args: PeerArgs) -> Result<bool> {
    ensure!((1..=NODES_MAX).contains(&args.nodes), "--nodes must be 1 to {NODES_MAX}");
    let rf = args.replication_factor();
    ensure!(rf >= 1 && rf as u32 <= args.nodes, "--replication-factor must be 1 to --nodes ({})", args.nodes);
    ensure!(
        args.failover_rate > 0.0 && args.failover_after >= 0.0 && args.failover_window > 0.0,
        "--failover-rate and --failover-window must be positive, --failover-after not negative"
    );
    let all = if args.nodes == 1 { cases() } else { cluster_cases(args.nodes, rf) };
    let cases = select(all, &args.only);
    if args.list {
        for c in &cases {
            println!("{}", c.name);
        }
        return Ok(true);
    }
    ensure!(!cases.is_empty(), "no case selected (see --list)");
    ensure!(args.rounds >= 1, "--rounds must be at least 1");
    ensure!(!args.brokers.is_empty(), "--brokers names no broker");
    ensure!(args.duration > 0.0 && args.warmup >= 0.0, "--duration must be positive and --warmup not negative");
    ensure!(args.consume_mb > 0.0 && args.latency_pct > 0.0, "--consume-mb and --latency-pct must be positive");
    ensure!(args.perf_records >= perf::WARMUP_FRACTION, "--perf-records must be at least {}", perf::WARMUP_FRACTION);
    let corelog =
        args.corelog.clone().or_else(|| sibling("corelog")).unwrap_or_else(|| "target/release/corelog".into());
    let load =
        args.load.clone().or_else(|| sibling("corelog-load")).unwrap_or_else(|| "target/release/corelog-load".into());
    ensure!(load.is_file(), "no corelog-load at {} (cargo build --release, or --load)", load.display());
    let wants = |k| args.brokers.contains(&k);
    if wants(BrokerKind::Corelog) {
        ensure!(corelog.is_file(), "no corelog at {} (cargo build --release, or --corelog)", corelog.display());
    }
    let out = args.out.clone();
    let logs = out.join("logs");
    let raw = out.join("raw");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    std::fs::create_dir_all(&raw)?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| out.join("broker-data"));

    let needs_java = wants(BrokerKind::Kafka) || cases.iter().any(|c| matches!(c.kind, CaseKind::ProducerPerf { .. }));
    let jars = if needs_java {
        let java_dir = args
            .java_dir
            .clone()
            .or_else(default_java_dir)
            .context("no tests/java with setup.sh in the working directory or above the binary: pass --java-dir")?;
        eprintln!("corelog-bench peer: resolving Kafka's jars ({}/setup.sh) ...", java_dir.display());
        Some(Jars::resolve(&args.java, &java_dir, &out)?)
    } else {
        None
    };
    let kafka = match (&jars, wants(BrokerKind::Kafka)) {
        (Some(j), true) => Some(Kafka::prepare(j.clone(), &out, &args.kafka_config, args.nodes)?),
        _ => None,
    };

    let machine = proc::machine();
    let corelog_version = std::process::Command::new(&corelog)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let perf_jvm_args = [kafka::PERF_HEAP_ARGS, kafka::JVM_PERFORMANCE_ARGS].concat();
    // How the nodes are started, on example ports (each start picks free ones).
    let example = Layout { nodes: args.nodes, shards: 1, port: 9092, controller_port: 9093 };
    let corelog_args: Vec<Vec<String>> = (1..=args.nodes)
        .map(|n| cluster::corelog_args(&example, n, &example.node_dir(Path::new("DATA"), n), &args.broker_arg))
        .collect();
    let mut results = PeerResults {
        tool: "corelog-bench peer".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        command_line: std::env::args().map(|a| shell_quote(&a)).collect::<Vec<_>>().join(" "),
        machine,
        brokers: json!({
            "corelog": {
                "binary": corelog.display().to_string(), "version": corelog_version,
                "args": ["serve", "--shards", "1"], "extra_args": args.broker_arg,
                "nodes": args.nodes, "node_args": corelog_args,
            },
            "kafka": kafka.as_ref().map(|k| json!({
                "version": k.jars.version, "java": k.jars.java_version,
                "jvm_args": kafka::server_jvm_args(), "main_class": kafka::SERVER_CLASS,
                "nodes": args.nodes,
                "server_properties": k.server_properties(&example, 1, &example.node_dir(&data_dir, 1)),
            })),
            "producer_performance": jars.as_ref().map(|j| json!({
                "version": j.version, "jvm_args": perf_jvm_args,
                "main_class": kafka::PRODUCER_PERF_CLASS,
            })),
        }),
        options: serde_json::to_value(&args)?,
        cases: cases.clone(),
        ..PeerResults::default()
    };
    // The failover cases' rate is fixed by --failover-rate (the table names it).
    for c in cases.iter().filter(|c| matches!(c.kind, CaseKind::Failover { .. })) {
        results.rates.insert(c.name.clone(), args.failover_rate);
    }
    let mut runner = Runner { args: &args, corelog, load, jars, kafka, data_dir, logs, raw, results };
    let started = Instant::now();
    let total = args.rounds * cases.len() * args.brokers.len();
    let mut done = 0;
    for round in 0..args.rounds {
        for case in &cases {
            let mut order = args.brokers.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for broker in order {
                done += 1;
                eprintln!("[{done}/{total}] round {round} {} on {} ...", case.name, broker.name());
                let r = runner.run(round, case, broker);
                match &r.error {
                    None => eprintln!("[{done}/{total}] {}", brief(&r)),
                    Some(e) => eprintln!("[{done}/{total}] FAILED: {e}"),
                }
                runner.results.runs.push(r);
                runner.save()?;
            }
        }
    }
    let _ = std::fs::remove_dir(&runner.data_dir);
    let r = &mut runner.results;
    let headline = peer_report::headline(&cases, &r.rates, args.consume_mb, &args.perf_acks);
    r.headline = peer_report::summarize(&r.runs, &headline);
    r.every_figure = peer_report::summarize(&r.runs, &peer_report::every_figure(&cases, &r.runs));
    runner.save()?;
    let r = &runner.results;
    peer_report::write(&out.join("peer.md"), r, &peer_method::method(&args, r))?;
    println!("{}", peer_report::markdown(&r.headline));
    let failed = r.runs.iter().filter(|x| !x.ok).count();
    eprintln!(
        "corelog-bench peer: {} runs in {:.0} s, {failed} failed; wrote {} and {}",
        r.runs.len(),
        started.elapsed().as_secs_f64(),
        out.join("peer.md").display(),
        out.join("results.json").display()
    );
    Ok(failed == 0)
}

/// tests/java under the working directory, else under the repository the binary was built in.
fn default_java_dir() -> Option<PathBuf> {
    let from_exe = std::env::current_exe().ok()?.parent()?.parent()?.parent()?.join("tests/java");
    [PathBuf::from("tests/java"), from_exe].into_iter().find(|d| d.join("setup.sh").is_file())
}

fn brief(r: &PeerRun) -> String {
    let shown: Vec<String> =
        [fig::PRODUCE_MSGS, fig::CONSUME_MSGS, fig::ACK_P99, fig::PERF_RECORDS, fig::FAILOVER_GAP_MS, fig::START_MS]
            .iter()
            .filter_map(|f| r.figures.get(*f).map(|v| format!("{f} {}", peer_report::fmt_value(f, *v))))
            .collect();
    format!("{} on {}: {} ({:.1} s)", r.case, r.broker.name(), shown.join(", "), r.wall_s)
}

/// What every run needs: the options, the binaries, where things go, what was measured so far.
pub(crate) struct Runner<'a> {
    pub(crate) args: &'a PeerArgs,
    corelog: PathBuf,
    pub(crate) load: PathBuf,
    jars: Option<Jars>,
    kafka: Option<Kafka>,
    data_dir: PathBuf,
    pub(crate) logs: PathBuf,
    pub(crate) raw: PathBuf,
    results: PeerResults,
}

impl Runner<'_> {
    fn save(&self) -> Result<()> {
        let path = self.args.out.join("results.json");
        std::fs::write(&path, serde_json::to_string_pretty(&self.results)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }

    fn run(&mut self, round: usize, case: &Case, broker: BrokerKind) -> PeerRun {
        let t0 = Instant::now();
        let mut r = PeerRun { round, case: case.name.clone(), broker, ..PeerRun::default() };
        match self.try_run(case, &mut r) {
            Ok(()) => r.ok = true,
            Err(e) => r.error = Some(format!("{e:#}")),
        }
        r.wall_s = t0.elapsed().as_secs_f64();
        r
    }

    fn try_run(&mut self, case: &Case, r: &mut PeerRun) -> Result<()> {
        let rate = match &case.kind {
            CaseKind::Latency { base, .. } => Some(self.rate_for(&case.name, base)?),
            _ => None,
        };
        let tag = format!("r{}-{}-{}", r.round, case.name, r.broker.name());
        let logs = self.logs.join(&tag).display().to_string();
        let cpus = Some(self.args.broker_cpus.as_str());
        let mut cluster = match r.broker {
            BrokerKind::Corelog => {
                let layout = Layout::pick(self.args.nodes, 1)?;
                cluster::fresh_node_dirs(&layout, &self.data_dir)?;
                let commands =
                    cluster::corelog_commands(&self.corelog, &layout, cpus, &self.data_dir, &self.args.broker_arg);
                Cluster::start(BrokerKind::Corelog, layout, commands, &self.data_dir, &logs, None)?
            }
            BrokerKind::Kafka => {
                self.kafka.as_ref().context("Kafka was not prepared")?.start(cpus, &self.data_dir, &logs)?
            }
        };
        let pids = cluster.pids();
        r.pid = pids.first().copied();
        r.pids = pids.clone();
        r.set(fig::START_MS, Some(cluster.start_time.as_secs_f64() * 1e3));
        r.set(fig::IDLE_RSS_MIB, sum_kib(&pids, proc::rss_kib));
        let on = On { bootstrap: cluster.bootstrap(), pids: pids.clone(), tag };
        let result = match &case.kind {
            CaseKind::Throughput { record_bytes, partitions, producers } => {
                self.throughput(&on, r, case, *record_bytes, *partitions, *producers)
            }
            CaseKind::Latency { record_bytes, .. } => {
                self.latency(&on, r, case, *record_bytes, rate.unwrap_or_default())
            }
            CaseKind::ProducerPerf { record_bytes } => self.producer_perf(&on, r, case, *record_bytes),
            CaseKind::Failover { record_bytes } => self.failover(&mut cluster, &on, r, case, *record_bytes),
        };
        // The nodes still running (a failover case killed one).
        r.set(fig::PEAK_RSS_MIB, sum_kib(&cluster.pids(), proc::peak_rss_kib));
        let stopped = cluster.stop();
        result?;
        let forced = stopped?;
        if !forced.is_empty() {
            let waited = cluster::STOP_TIMEOUT.as_secs();
            eprintln!("{}: nodes {forced:?} did not exit within {waited} s of SIGTERM: SIGKILLed", r.broker.name());
            r.raw.push(json!({"step": "stop", "sigkilled_after_sigterm": forced}));
        }
        Ok(())
    }

    /// corelog-load's flags for a case's topic and producers: on a cluster
    /// the replication factor, min.insync.replicas and acks=all; nothing on a
    /// single node (the broker's defaults, acks=1).
    pub(crate) fn topic_args(&self, case: &Case) -> Vec<String> {
        match case.replication {
            None => Vec::new(),
            Some(r) => vec![
                "--acks".into(),
                case.acks().into(),
                "--replication-factor".into(),
                r.factor.to_string(),
                "--topic-config".into(),
                format!("min.insync.replicas={}", r.min_insync_replicas()),
            ],
        }
    }

    /// The fixed rate of a latency case: --latency-pct of the lower of the
    /// brokers' produce maxima of `base` in the first round that has them all;
    /// kept for the later rounds.
    fn rate_for(&mut self, case: &str, base: &str) -> Result<f64> {
        if let Some(r) = self.results.rates.get(case) {
            return Ok(*r);
        }
        let runs = &self.results.runs;
        let rounds: Vec<usize> = runs.iter().map(|r| r.round).collect();
        for round in rounds {
            let maxima: Vec<Option<f64>> = self
                .args
                .brokers
                .iter()
                .map(|b| {
                    runs.iter()
                        .find(|r| r.ok && r.round == round && r.case == base && r.broker == *b)
                        .and_then(|r| r.figures.get(fig::PRODUCE_MSGS).copied())
                })
                .collect();
            if let Some(lower) =
                maxima.iter().copied().collect::<Option<Vec<f64>>>().and_then(|m| m.into_iter().reduce(f64::min))
            {
                let rate = (lower * self.args.latency_pct / 100.0).round().max(1.0);
                self.results.rates.insert(case.to_string(), rate);
                return Ok(rate);
            }
        }
        bail!("no round yet has every broker's maximum of {base} to set the rate from")
    }

    fn throughput(
        &self,
        on: &On,
        r: &mut PeerRun,
        case: &Case,
        record_bytes: usize,
        partitions: i32,
        producers: usize,
    ) -> Result<()> {
        let a = &self.args;
        let topic_args = self.topic_args(case);
        let topic_args: Vec<&str> = topic_args.iter().map(String::as_str).collect();
        let (v, cpu) = self.load(
            on,
            r,
            "produce",
            &[
                &topic_args[..],
                &[
                    "--topic",
                    TOPIC,
                    "--partitions",
                    &partitions.to_string(),
                    "--producers",
                    &producers.to_string(),
                    "--record-bytes",
                    &record_bytes.to_string(),
                    "--duration",
                    &a.duration.to_string(),
                    "--warmup",
                    &a.warmup.to_string(),
                ],
            ]
            .concat(),
        )?;
        produce_figures(r, &v, &cpu);
        if producers != 1 {
            return Ok(());
        }
        let n = ((a.consume_mb * 1e6 / record_bytes as f64).round() as u64).max(1);
        let n_s = n.to_string();
        let (fill, _) = self.load(
            on,
            r,
            "fill",
            &[
                &topic_args[..],
                &[
                    "--topic",
                    CONSUME_TOPIC,
                    "--partitions",
                    &partitions.to_string(),
                    "--record-bytes",
                    &record_bytes.to_string(),
                    "--messages",
                    &n_s,
                ],
            ]
            .concat(),
        )?;
        let written = fill.pointer("/produce/messages").and_then(Value::as_u64);
        ensure!(written == Some(n), "filling {CONSUME_TOPIC}: {written:?} of {n} messages acknowledged");
        let (v, cpu) = self.load(
            on,
            r,
            "consume",
            &[
                "--topic",
                CONSUME_TOPIC,
                "--producers",
                "0",
                "--consumers",
                "1",
                "--record-bytes",
                &record_bytes.to_string(),
                "--messages",
                &n_s,
            ],
        )?;
        let read = v.pointer("/consume/messages").and_then(Value::as_u64);
        ensure!(read == Some(n), "consuming {CONSUME_TOPIC}: read {read:?} of {n} messages");
        r.set(fig::CONSUME_MSGS, number(&v, "/consume/measured/msgs_per_s"));
        r.set(fig::CONSUME_MB, number(&v, "/consume/measured/mb_per_s"));
        r.set(fig::CONSUME_CPU, cpu.total().map(|c| c / n as f64 * 1e6));
        Ok(())
    }

    fn latency(&self, on: &On, r: &mut PeerRun, case: &Case, record_bytes: usize, rate: f64) -> Result<()> {
        let a = &self.args;
        let topic_args = self.topic_args(case);
        let topic_args: Vec<&str> = topic_args.iter().map(String::as_str).collect();
        // A fresh JVM runs its produce path interpreted until the JIT has
        // compiled it; an open-loop run that starts cold carries the backlog
        // of those seconds into its measured window. So both brokers first
        // take --warmup seconds of closed-loop load on another topic.
        if a.warmup > 0.0 {
            self.load(
                on,
                r,
                "prewarm",
                &[
                    &topic_args[..],
                    &[
                        "--topic",
                        WARM_TOPIC,
                        "--partitions",
                        "1",
                        "--consumers",
                        "1",
                        "--record-bytes",
                        &record_bytes.to_string(),
                        "--duration",
                        &a.warmup.to_string(),
                    ],
                ]
                .concat(),
            )?;
        }
        let (v, cpu) = self.load(
            on,
            r,
            "rate",
            &[
                &topic_args[..],
                &[
                    "--topic",
                    TOPIC,
                    "--partitions",
                    "1",
                    "--consumers",
                    "1",
                    "--record-bytes",
                    &record_bytes.to_string(),
                    "--rate",
                    &rate.to_string(),
                    "--duration",
                    &a.duration.to_string(),
                    "--warmup",
                    &a.warmup.to_string(),
                ],
            ]
            .concat(),
        )?;
        r.set(fig::RATE, Some(rate));
        produce_figures(r, &v, &cpu);
        r.set(fig::E2E_P99, number(&v, "/consume/e2e_latency_us/p99").map(|us| us / 1e3));
        Ok(())
    }

    fn producer_perf(&self, on: &On, r: &mut PeerRun, case: &Case, record_bytes: usize) -> Result<()> {
        let jars = self.jars.as_ref().context("Kafka's jars were not resolved")?;
        // The topic first (same partitions and replication on both brokers),
        // so that the run does not time its creation.
        let mut create = self.topic_args(case);
        create.extend(["--topic", TOPIC, "--partitions", "1", "--messages", "0"].map(String::from));
        self.load(on, r, "create", &create.iter().map(String::as_str).collect::<Vec<_>>())?;
        let args = perf::args(&on.bootstrap, TOPIC, self.args.perf_records, record_bytes, &self.args.perf_acks);
        let cpu0 = proc::cpu_seconds_of(&on.pids);
        let s = self.run_java_tool(on, jars, kafka::PRODUCER_PERF_CLASS, "perf", &args, perf::parse)?;
        // The whole run's (its warm-up records included: ProducerPerformance reports no times).
        let cpu = proc::cpu_seconds_of(&on.pids).zip(cpu0).map(|(b, a)| b - a);
        r.set(fig::PERF_RECORDS, Some(s.records_per_s));
        // Its "MB" are MiB; the table's MB/s are 10^6 bytes, as corelog-load's.
        r.set(fig::PERF_MB, Some(s.records_per_s * record_bytes as f64 / 1e6));
        r.set(fig::PERF_AVG, Some(s.avg_ms));
        r.set(fig::PERF_P50, Some(s.p50_ms));
        r.set(fig::PERF_P95, Some(s.p95_ms));
        r.set(fig::PERF_P99, Some(s.p99_ms));
        r.set(fig::PERF_P99_9, Some(s.p99_9_ms));
        r.set(fig::PERF_MAX, Some(s.max_ms));
        r.set(fig::PERF_CPU, cpu.map(|c| c / self.args.perf_records as f64 * 1e6));
        r.raw.push(json!({"step": "producer-perf", "summary": s}));
        self.consumer_perf(on, r, jars)
    }

    /// Runs one of Kafka's tools (`class`) pinned like the load, logging to
    /// `<tag>.<step>.log`, and reads its result from that log with `parse`;
    /// an error if it fails or prints no result.
    fn run_java_tool<T>(
        &self,
        on: &On,
        jars: &kafka::Jars,
        class: &str,
        step: &str,
        args: &[String],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T> {
        let log = self.logs.join(format!("{}.{step}.log", on.tag));
        let mut cmd = jars.java_command(Some(&self.args.load_cpus), kafka::PERF_HEAP_ARGS, class);
        cmd.args(args);
        let status = proc::run_logged(&mut cmd, &log, PERF_TIMEOUT)?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let found =
            parse(&text).with_context(|| format!("{class} exited with {status}, no result:\n{}", proc::tail(&log)))?;
        ensure!(status.success(), "{class} exited with {status}:\n{}", proc::tail(&log));
        Ok(found)
    }

    /// Kafka's ConsumerPerformance reads back what ProducerPerformance wrote,
    /// from the beginning, pinned like the load; it must read every record.
    fn consumer_perf(&self, on: &On, r: &mut PeerRun, jars: &kafka::Jars) -> Result<()> {
        let args = perf::consumer_args(&on.bootstrap, TOPIC, self.args.perf_records, CONSUMER_PERF_IDLE_MS);
        let s =
            self.run_java_tool(on, jars, kafka::CONSUMER_PERF_CLASS, "consumer-perf", &args, perf::parse_consumer)?;
        ensure!(
            s.messages == self.args.perf_records,
            "ConsumerPerformance read {} of the {} records written",
            s.messages,
            self.args.perf_records
        );
        r.set(fig::CONSUMER_PERF_MSGS, Some(s.msgs_per_s));
        r.set(fig::CONSUMER_PERF_FETCH_MSGS, Some(s.fetch_msgs_per_s));
        // MiB/s to the table's 10^6 bytes per second.
        r.set(fig::CONSUMER_PERF_FETCH_MB, Some(s.fetch_mib_per_s * (1 << 20) as f64 / 1e6));
        r.raw.push(json!({"step": "consumer-perf", "summary": s}));
        Ok(())
    }

    /// Runs corelog-load (pinned like the client) against the broker; its
    /// --json result (also kept in raw/) and the broker's CPU time meanwhile.
    pub(crate) fn load(&self, on: &On, r: &mut PeerRun, step: &str, args: &[&str]) -> Result<(Value, CpuSamples)> {
        let json_path = self.raw.join(format!("{}-{step}.json", on.tag));
        let log = self.logs.join(format!("{}-{step}.load.log", on.tag));
        let _ = std::fs::remove_file(&json_path);
        let mut cmd = proc::on_cpus(&self.load, Some(&self.args.load_cpus));
        cmd.args(["--bootstrap-server", &on.bootstrap, "--quiet", "--json"]).arg(&json_path).args(args);
        let timeout = Duration::from_secs_f64(self.args.duration + self.args.warmup) + LOAD_SLACK;
        let sampler = CpuSampler::start(on.pids.clone());
        let status = proc::run_logged(&mut cmd, &log, timeout);
        let cpu = sampler.finish();
        let status = status?;
        let text = std::fs::read_to_string(&json_path)
            .with_context(|| format!("corelog-load ({step}) exited with {status}, no result:\n{}", proc::tail(&log)))?;
        let v: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", json_path.display()))?;
        let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
        r.raw.push(json!({"step": step, "load": v.clone()}));
        ensure!(status.success() && ok, "corelog-load ({step}) exited with {status} (ok: {ok}):\n{}", proc::tail(&log));
        Ok((v, cpu))
    }
}

/// The broker (its nodes) a run talks to.
pub(crate) struct On {
    /// Every node's address, comma-separated.
    pub(crate) bootstrap: String,
    pids: Vec<i32>,
    pub(crate) tag: String,
}

/// A /proc figure in KiB summed over the processes that still run, in MiB.
fn sum_kib(pids: &[i32], figure: fn(i32) -> Option<u64>) -> Option<f64> {
    pids.iter().filter_map(|p| figure(*p)).reduce(|a, b| a + b).map(|k| k as f64 / 1024.0)
}

fn number(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64)
}

/// Produce rate, acknowledgement latency and CPU per million, all over the
/// measured window (after the warm-up, in which Kafka's JIT compiles).
fn produce_figures(r: &mut PeerRun, v: &Value, cpu: &CpuSamples) {
    let ms = |key: &str| number(v, &format!("/produce/ack_latency_us/{key}")).map(|us| us / 1e3);
    r.set(fig::PRODUCE_MSGS, number(v, "/produce/measured/msgs_per_s"));
    r.set(fig::PRODUCE_MB, number(v, "/produce/measured/mb_per_s"));
    r.set(fig::ACK_P50, ms("p50"));
    r.set(fig::ACK_P99, ms("p99"));
    r.set(fig::ACK_P99_9, ms("p99.9"));
    let produced = number(v, "/produce/measured/messages").filter(|n| *n > 0.0);
    let window =
        number(v, "/started_unix_ms").zip(number(v, "/effective/warmup_s")).zip(number(v, "/produce/measured/seconds"));
    let cpu = window.and_then(|((start_ms, warmup_s), secs)| {
        let from = start_ms + warmup_s * 1e3;
        cpu.between(from, from + secs * 1e3)
    });
    r.set(fig::PRODUCE_CPU, cpu.zip(produced).map(|(c, n)| c / n * 1e6));
}
