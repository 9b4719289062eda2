//! corelog-bench: the benchmark harness. `run` starts a fresh corelog broker
//! per scenario (or uses `--bootstrap-server` for any Kafka-compatible
//! broker), drives it with corelog-load over a scenario matrix, samples the
//! broker's CPU time and peak RSS, and writes `report.md` (machine, command
//! line, results table, SVG plots) and `results.json`. `compare A.json
//! B.json` prints two runs side by side with their ratios. `peer` runs the
//! same cases against corelog and Apache Kafka, interleaved, and writes the
//! two side by side with the ratio corelog / Kafka.

mod cluster;
mod compare;
mod failover;
mod kafka;
mod matrix;
mod peer;
mod peer_cases;
mod peer_method;
mod peer_report;
mod perf;
mod probe;
mod proc;
mod report;
mod svg;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::matrix::Scenario;

#[derive(Parser, Debug)]
#[command(
    name = "corelog-bench",
    version,
    about = "Benchmark harness for corelog: scenario matrix, report, comparison"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the scenario matrix and write DIR/report.md and DIR/results.json.
    Run(Box<RunArgs>),
    /// Print two results.json files side by side with the ratio B/A per scenario.
    Compare { a: PathBuf, b: PathBuf },
    /// Run the same cases against corelog and Apache Kafka (started from its
    /// Maven Central jars), interleaved; write DIR/peer.md and DIR/results.json.
    Peer(Box<peer::PeerArgs>),
}

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct RunArgs {
    /// The small matrix (about a minute): 100 B and 1 KiB, none and lz4, 1 and 16 partitions.
    #[arg(long)]
    quick: bool,
    /// Where report.md, results.json, the SVGs and per-scenario logs go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Use this broker instead of starting corelog per scenario.
    #[arg(long)]
    bootstrap_server: Option<String>,
    /// With --bootstrap-server: the broker's process id, to record its CPU time and RSS.
    #[arg(long, requires = "bootstrap_server")]
    broker_pid: Option<i32>,
    /// The corelog binary (default: next to corelog-bench, else target/release/corelog).
    #[arg(long)]
    corelog: Option<PathBuf>,
    /// The corelog-load binary (default: next to corelog-bench).
    #[arg(long)]
    load: Option<PathBuf>,
    /// Shards of the started broker.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Data directory of the started broker, cleared per scenario (default: OUT/broker-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Extra argument for `corelog serve` (repeatable), e.g. --broker-arg=--log-segment-bytes=268435456.
    #[arg(long, allow_hyphen_values = true)]
    broker_arg: Vec<String>,
    /// Extra argument for corelog-load (repeatable), e.g. --load-arg=--batch-bytes=16384.
    #[arg(long, allow_hyphen_values = true)]
    load_arg: Vec<String>,
    /// Seconds measured per scenario (default 4 with --quick, else 10).
    #[arg(long)]
    duration: Option<f64>,
    /// Warm-up seconds per scenario, not measured (default 1 with --quick, else 2).
    #[arg(long)]
    warmup: Option<f64>,
    /// Run only the first N throughput scenarios (and the fixed-rate scenarios based on them).
    #[arg(long)]
    scenarios: Option<usize>,
    /// Run only scenarios whose name contains this (repeatable); see --list.
    #[arg(long)]
    only: Vec<String>,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Run the started broker on these CPUs (taskset -c LIST), e.g. 0.
    #[arg(long)]
    broker_cpus: Option<String>,
    /// Run corelog-load on these CPUs (taskset -c LIST), e.g. 1.
    #[arg(long)]
    load_cpus: Option<String>,
    /// Runs per scenario: the table shows the run with the median produce rate, and the spread.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Print the selected scenarios and exit.
    #[arg(long)]
    list: bool,
}

/// One scenario's result: what results.json holds per scenario and what
/// `compare` reads back.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct Outcome {
    pub scenario: Option<Scenario>,
    pub name: String,
    pub topic: String,
    /// Fixed-rate scenarios: the rate asked of corelog-load (msgs/s).
    pub rate_msgs_per_s: Option<f64>,
    pub ok: bool,
    pub error: Option<String>,
    pub produced: Option<u64>,
    pub consumed: Option<u64>,
    pub produce_msgs_per_s: Option<f64>,
    pub produce_mb_per_s: Option<f64>,
    pub consume_msgs_per_s: Option<f64>,
    pub consume_mb_per_s: Option<f64>,
    /// Percentiles in microseconds (corelog-load's keys: p50 … p99.99, max).
    pub ack_latency_us: Value,
    pub e2e_latency_us: Value,
    pub broker_cpu_s: Option<f64>,
    /// Broker CPU seconds per million produced messages (serving their consumption included).
    pub broker_cpu_s_per_million: Option<f64>,
    pub broker_peak_rss_kib: Option<u64>,
    pub wall_s: f64,
    /// Every successful run's rates when the scenario ran more than once (--repeat).
    pub runs_produce_msgs_per_s: Vec<f64>,
    pub runs_consume_msgs_per_s: Vec<f64>,
    /// corelog-load's full --json result.
    pub load: Value,
}

impl Outcome {
    pub fn ack_ms(&self, key: &str) -> Option<f64> {
        self.ack_latency_us.get(key)?.as_f64().map(|us| us / 1000.0)
    }
    pub fn e2e_ms(&self, key: &str) -> Option<f64> {
        self.e2e_latency_us.get(key)?.as_f64().map(|us| us / 1000.0)
    }
    pub fn rss_mib(&self) -> Option<f64> {
        self.broker_peak_rss_kib.map(|k| k as f64 / 1024.0)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct Results {
    pub tool: String,
    pub version: String,
    pub command_line: String,
    pub machine: proc::Machine,
    /// "spawned" (a fresh corelog per scenario) or "external".
    pub broker_mode: String,
    pub broker: Value,
    pub load_binary: String,
    pub options: Value,
    pub scenarios: Vec<Outcome>,
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run(args) => run(*args),
        Cmd::Compare { a, b } => compare::compare(&a, &b).map(|_| true),
        Cmd::Peer(args) => peer::run(*args),
    };
    match r {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("corelog-bench: {e:#}");
            std::process::exit(2);
        }
    }
}

fn sibling(name: &str) -> Option<PathBuf> {
    let p = std::env::current_exe().ok()?.parent()?.join(name);
    p.is_file().then_some(p)
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn run(args: RunArgs) -> Result<bool> {
    let all = if args.quick { matrix::quick() } else { matrix::full() };
    let scenarios = matrix::select(all, &args.only, args.scenarios);
    if args.list {
        for s in &scenarios {
            println!("{}", s.name);
        }
        return Ok(true);
    }
    if scenarios.is_empty() {
        bail!("no scenario selected (see --list)");
    }
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let duration = args.duration.unwrap_or(if args.quick { 4.0 } else { 10.0 });
    let warmup = args.warmup.unwrap_or(if args.quick { 1.0 } else { 2.0 });
    if duration.is_nan() || duration <= 0.0 || warmup.is_nan() || warmup < 0.0 {
        bail!("--duration must be positive and --warmup not negative");
    }
    let corelog =
        args.corelog.clone().or_else(|| sibling("corelog")).unwrap_or_else(|| PathBuf::from("target/release/corelog"));
    let load = args
        .load
        .clone()
        .or_else(|| sibling("corelog-load"))
        .unwrap_or_else(|| PathBuf::from("target/release/corelog-load"));
    if !load.is_file() {
        bail!("no corelog-load at {} (build with cargo build --release, or pass --load)", load.display());
    }
    let needs_corelog = args.bootstrap_server.is_none() || scenarios.iter().any(|s| s.durable);
    if needs_corelog && !corelog.is_file() {
        bail!("no corelog at {} (build with cargo build --release, or pass --corelog)", corelog.display());
    }
    let out = &args.out;
    let logs = out.join("logs");
    let raw = out.join("raw");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    std::fs::create_dir_all(&raw)?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| out.join("broker-data"));

    let machine = proc::machine();
    let run_id = format!("{:x}", machine.unix_time % 0x100_0000);
    let command_line: Vec<String> = std::env::args().map(|a| shell_quote(&a)).collect();
    let corelog_version = Command::new(&corelog)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut results = Results {
        tool: "corelog-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        command_line: command_line.join(" "),
        machine,
        broker_mode: if args.bootstrap_server.is_some() { "external" } else { "spawned" }.into(),
        broker: match &args.bootstrap_server {
            Some(b) => serde_json::json!({"bootstrap_server": b, "pid": args.broker_pid}),
            None => serde_json::json!({
                "corelog": corelog.display().to_string(),
                "version": corelog_version,
                "shards": args.shards,
                "data_dir": data_dir.display().to_string(),
                "args": args.broker_arg,
            }),
        },
        load_binary: load.display().to_string(),
        options: serde_json::json!({
            "quick": args.quick, "duration_s": duration, "warmup_s": warmup,
            "producers": args.producers, "consumers": args.consumers, "load_args": args.load_arg,
            "repeat": args.repeat, "broker_cpus": args.broker_cpus, "load_cpus": args.load_cpus,
        }),
        scenarios: Vec::new(),
    };

    let bench = Bench {
        args: &args,
        corelog: &corelog,
        load: &load,
        data_dir: &data_dir,
        logs: &logs,
        raw: &raw,
        duration,
        warmup,
    };
    let started = Instant::now();
    let total = scenarios.len();
    for (i, sc) in scenarios.iter().enumerate() {
        eprintln!("[{}/{total}] {} ...", i + 1, sc.name);
        let o = bench.scenario(sc, &run_id, &results.scenarios);
        match &o.error {
            None => eprintln!(
                "[{}/{total}] {}: produce {} msgs/s, consume {} msgs/s, p99 {} ms, CPU {} s/M msgs ({:.1} s)",
                i + 1,
                sc.name,
                report::si(o.produce_msgs_per_s),
                report::si(o.consume_msgs_per_s),
                report::num(o.ack_ms("p99"), 2),
                report::num(o.broker_cpu_s_per_million, 2),
                o.wall_s
            ),
            Some(e) => eprintln!("[{}/{total}] {}: FAILED: {e}", i + 1, sc.name),
        }
        results.scenarios.push(o);
        // Keep what we have on disk in case the run is interrupted.
        write_json(&out.join("results.json"), &results)?;
    }
    let _ = std::fs::remove_dir(&data_dir);
    write_json(&out.join("results.json"), &results)?;
    report::write(out, &results)?;
    println!("{}", report::table(&results));
    let failed = results.scenarios.iter().filter(|o| !o.ok).count();
    eprintln!(
        "corelog-bench: {} scenarios in {:.0} s, {failed} failed; wrote {} and {}",
        results.scenarios.len(),
        started.elapsed().as_secs_f64(),
        out.join("report.md").display(),
        out.join("results.json").display()
    );
    Ok(failed == 0)
}

fn write_json(path: &Path, results: &Results) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(results)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// What every scenario run needs: the options, the binaries and where things go.
struct Bench<'a> {
    args: &'a RunArgs,
    corelog: &'a Path,
    load: &'a Path,
    data_dir: &'a Path,
    logs: &'a Path,
    raw: &'a Path,
    duration: f64,
    warmup: f64,
}

impl Bench<'_> {
    /// Runs a scenario --repeat times and keeps the run with the median produce
    /// rate (consume rate for consume-only runs), with every run's rates beside it.
    fn scenario(&self, sc: &Scenario, run_id: &str, done: &[Outcome]) -> Outcome {
        let t0 = Instant::now();
        let mut runs = Vec::with_capacity(self.args.repeat);
        for rep in 0..self.args.repeat {
            let tag = if self.args.repeat > 1 { format!("{}-r{rep}", sc.name) } else { sc.name.clone() };
            let mut o = Outcome {
                scenario: Some(sc.clone()),
                name: sc.name.clone(),
                topic: format!("bench-{tag}-{run_id}"),
                ..Outcome::default()
            };
            if let Err(e) = self.run_one(sc, &tag, &mut o, done) {
                o.ok = false;
                o.error = Some(format!("{e:#}"));
            }
            runs.push(o);
        }
        let rate = |o: &Outcome| o.produce_msgs_per_s.or(o.consume_msgs_per_s).unwrap_or(0.0);
        let mut ok: Vec<Outcome> = runs.iter().filter(|o| o.ok).cloned().collect();
        let mut chosen = if ok.is_empty() {
            runs.swap_remove(0)
        } else {
            ok.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
            let produce = ok.iter().filter_map(|o| o.produce_msgs_per_s).collect();
            let consume = ok.iter().filter_map(|o| o.consume_msgs_per_s).collect();
            let mut median = ok.swap_remove(ok.len() / 2);
            if self.args.repeat > 1 {
                median.runs_produce_msgs_per_s = produce;
                median.runs_consume_msgs_per_s = consume;
            }
            median
        };
        chosen.wall_s = t0.elapsed().as_secs_f64();
        chosen
    }

    fn run_one(&self, sc: &Scenario, tag: &str, o: &mut Outcome, done: &[Outcome]) -> Result<()> {
        let Bench { args, corelog, load, data_dir, logs, raw, duration, warmup } = *self;
        if let (Some(pct), Some(base)) = (sc.rate_pct, &sc.base) {
            let max = done
                .iter()
                .find(|d| &d.name == base)
                .and_then(|d| d.produce_msgs_per_s)
                .filter(|r| *r > 0.0)
                .with_context(|| format!("no measured maximum from {base} to set the rate"))?;
            o.rate_msgs_per_s = Some((max * pct / 100.0).round().max(1.0));
        }

        let broker = match &args.bootstrap_server {
            Some(_) => None,
            None => Some(proc::Broker::start(
                corelog,
                args.broker_cpus.as_deref(),
                data_dir,
                args.shards,
                &args.broker_arg,
                &logs.join(format!("{tag}.broker.log")),
            )?),
        };
        let result = (|| -> Result<()> {
            let bootstrap = match (&broker, &args.bootstrap_server) {
                (Some(b), _) => b.bootstrap(),
                (None, Some(s)) => s.clone(),
                _ => unreachable!(),
            };
            let pid = broker.as_ref().map(|b| b.pid()).or(args.broker_pid);
            if sc.durable {
                let status = proc::run_logged(
                    Command::new(corelog)
                        .args(["topics", "create", &o.topic, "--partitions", &sc.partitions.to_string()])
                        .args(["--config", "flush.messages=1", "--bootstrap-server", &bootstrap]),
                    &logs.join(format!("{tag}.create.log")),
                    Duration::from_secs(60),
                )?;
                if !status.success() {
                    bail!(
                        "corelog topics create {} exited with {status}:\n{}",
                        o.topic,
                        proc::tail(&logs.join(format!("{tag}.create.log")))
                    );
                }
            }
            let json_path = raw.join(format!("{tag}.json"));
            let _ = std::fs::remove_file(&json_path);
            let mut cmd = proc::on_cpus(load, args.load_cpus.as_deref());
            cmd.args(["--bootstrap-server", &bootstrap, "--topic", &o.topic])
                .args(["--partitions", &sc.partitions.to_string()])
                .args(["--producers", &args.producers.to_string(), "--consumers", &args.consumers.to_string()])
                .args(["--record-bytes", &sc.record_bytes.to_string(), "--compression", &sc.compression])
                .args(["--acks", sc.acks(), "--duration", &duration.to_string(), "--warmup", &warmup.to_string()])
                .arg("--json")
                .arg(&json_path)
                .arg("--quiet");
            if let Some(rate) = o.rate_msgs_per_s {
                cmd.args(["--rate", &rate.to_string()]);
            }
            cmd.args(&args.load_arg);
            let peak_scoped = pid.map(proc::reset_peak_rss).unwrap_or(false);
            let cpu0 = pid.and_then(proc::cpu_seconds);
            let load_log = logs.join(format!("{tag}.load.log"));
            let status = proc::run_logged(&mut cmd, &load_log, Duration::from_secs_f64(duration + warmup + 120.0))?;
            let cpu1 = pid.and_then(proc::cpu_seconds);
            if peak_scoped || broker.is_some() {
                o.broker_peak_rss_kib = pid.and_then(proc::peak_rss_kib);
            }
            if let (Some(a), Some(b)) = (cpu0, cpu1) {
                o.broker_cpu_s = Some(b - a);
            }
            let text = std::fs::read_to_string(&json_path).with_context(|| {
                format!("corelog-load exited with {status} and wrote no result:\n{}", proc::tail(&load_log))
            })?;
            let v: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", json_path.display()))?;
            let f = |p: &str| v.pointer(p).and_then(Value::as_f64);
            o.produced = v.pointer("/produce/messages").and_then(Value::as_u64);
            o.consumed = v.pointer("/consume/messages").and_then(Value::as_u64);
            o.produce_msgs_per_s = f("/produce/measured/msgs_per_s");
            o.produce_mb_per_s = f("/produce/measured/mb_per_s");
            o.consume_msgs_per_s = f("/consume/measured/msgs_per_s");
            o.consume_mb_per_s = f("/consume/measured/mb_per_s");
            o.ack_latency_us = v.pointer("/produce/ack_latency_us").cloned().unwrap_or(Value::Null);
            o.e2e_latency_us = v.pointer("/consume/e2e_latency_us").cloned().unwrap_or(Value::Null);
            if let (Some(cpu), Some(n)) = (o.broker_cpu_s, o.produced) {
                if n > 0 {
                    o.broker_cpu_s_per_million = Some(cpu / (n as f64 / 1e6));
                }
            }
            let load_ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
            o.load = v;
            if !status.success() || !load_ok {
                bail!("corelog-load exited with {status} (ok: {load_ok}):\n{}", proc::tail(&load_log));
            }
            o.ok = true;
            Ok(())
        })();
        if let Some(b) = broker {
            let stopped = b.stop();
            if let (Ok(()), Err(e)) = (&result, stopped) {
                bail!("stopping the broker: {e:#}");
            }
        }
        result
    }
}
