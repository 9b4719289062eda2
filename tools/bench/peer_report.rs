//! What `corelog-bench peer` records and how it is summed up: every run's
//! figures (results.json), the median and range over the interleaved rounds
//! per broker, the ratio corelog / Kafka, and peer.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::peer_cases::{Case, CaseKind};
use crate::report::{num, si, write_run_header};

/// Names of the figures a run records (keys of `PeerRun::figures`); the
/// suffix says the unit (`fmt_value`), and which direction is better.
pub mod fig {
    /// From spawn until the broker answered a Metadata request.
    pub const START_MS: &str = "start_ms";
    /// VmRSS right after the start.
    pub const IDLE_RSS_MIB: &str = "idle_rss_mib";
    /// VmHWM at the end of the run.
    pub const PEAK_RSS_MIB: &str = "peak_rss_mib";
    pub const PRODUCE_MSGS: &str = "produce_msgs_per_s";
    pub const PRODUCE_MB: &str = "produce_mb_per_s";
    /// Broker CPU seconds (utime + stime, every thread) per million messages produced.
    pub const PRODUCE_CPU: &str = "produce_cpu_s_per_million";
    pub const ACK_P50: &str = "ack_p50_ms";
    pub const ACK_P99: &str = "ack_p99_ms";
    pub const ACK_P99_9: &str = "ack_p99.9_ms";
    pub const E2E_P99: &str = "e2e_p99_ms";
    /// The rate asked of the producers (fixed-rate cases).
    pub const RATE: &str = "rate_msgs_per_s";
    pub const CONSUME_MSGS: &str = "consume_msgs_per_s";
    pub const CONSUME_MB: &str = "consume_mb_per_s";
    pub const CONSUME_CPU: &str = "consume_cpu_s_per_million";
    pub const PERF_RECORDS: &str = "perf_records_per_s";
    pub const PERF_MB: &str = "perf_mb_per_s";
    pub const PERF_AVG: &str = "perf_avg_ms";
    pub const PERF_P50: &str = "perf_p50_ms";
    pub const PERF_P95: &str = "perf_p95_ms";
    pub const PERF_P99: &str = "perf_p99_ms";
    pub const PERF_P99_9: &str = "perf_p99.9_ms";
    pub const PERF_MAX: &str = "perf_max_ms";
    pub const PERF_CPU: &str = "perf_cpu_s_per_million";
    pub const CONSUMER_PERF_MSGS: &str = "consumer_perf_msgs_per_s";
    pub const CONSUMER_PERF_FETCH_MSGS: &str = "consumer_perf_fetch_msgs_per_s";
    pub const CONSUMER_PERF_FETCH_MB: &str = "consumer_perf_fetch_mb_per_s";
    /// From the old leader's last acknowledgement to a new leader's first.
    pub const FAILOVER_GAP_MS: &str = "failover_gap_ms";
    /// From the SIGKILL of the leader's node to a new leader's first acknowledgement.
    pub const FAILOVER_KILL_MS: &str = "failover_kill_to_ack_ms";
    /// Errors the producer saw for the partition during the gap.
    pub const FAILOVER_ERRORS: &str = "failover_errors";

    /// The order figures are listed in; anything else follows alphabetically.
    pub const ORDER: &[&str] = &[
        PRODUCE_MSGS,
        PRODUCE_MB,
        RATE,
        ACK_P50,
        ACK_P99,
        ACK_P99_9,
        E2E_P99,
        PRODUCE_CPU,
        CONSUME_MSGS,
        CONSUME_MB,
        CONSUME_CPU,
        PERF_RECORDS,
        PERF_MB,
        PERF_AVG,
        PERF_P50,
        PERF_P95,
        PERF_P99,
        PERF_P99_9,
        PERF_MAX,
        PERF_CPU,
        CONSUMER_PERF_MSGS,
        CONSUMER_PERF_FETCH_MSGS,
        CONSUMER_PERF_FETCH_MB,
        FAILOVER_GAP_MS,
        FAILOVER_KILL_MS,
        FAILOVER_ERRORS,
        START_MS,
        IDLE_RSS_MIB,
        PEAK_RSS_MIB,
    ];
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    #[default]
    Corelog,
    Kafka,
}

impl BrokerKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Corelog => "corelog",
            BrokerKind::Kafka => "kafka",
        }
    }
}

/// One case run once on one broker (a fresh broker and data directory).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct PeerRun {
    pub round: usize,
    pub case: String,
    pub broker: BrokerKind,
    pub ok: bool,
    pub error: Option<String>,
    /// The first node's process id (the only one of a single node).
    pub pid: Option<i32>,
    /// Every node's process id.
    pub pids: Vec<i32>,
    pub wall_s: f64,
    pub figures: BTreeMap<String, f64>,
    /// Every corelog-load --json result and ProducerPerformance summary of the run.
    pub raw: Vec<Value>,
}

impl PeerRun {
    pub fn set(&mut self, figure: &str, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.figures.insert(figure.to_string(), v);
        }
    }
}

/// Median and range of one figure over a broker's runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Stat> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Stat { median, min: v[0], max: v[n - 1], runs: n })
    }
}

/// Which runs a table row takes its values from.
#[derive(Clone, Debug, PartialEq)]
pub enum Pool {
    /// The runs of one case, one value per round.
    Case(String),
    /// Every run (time to start, RSS after start: every start is a sample).
    Every,
    /// Per round, the highest value over all cases (peak RSS).
    HighestPerRound,
}

pub struct RowSpec {
    pub label: String,
    pub pool: Pool,
    pub figure: &'static str,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Row {
    pub label: String,
    pub figure: String,
    pub corelog: Option<Stat>,
    pub kafka: Option<Stat>,
    /// corelog's median / Kafka's median.
    pub ratio: Option<f64>,
}

fn values(runs: &[PeerRun], pool: &Pool, figure: &str, broker: BrokerKind) -> Vec<f64> {
    let mine = runs.iter().filter(|r| r.ok && r.broker == broker);
    match pool {
        Pool::Case(case) => mine.filter(|r| &r.case == case).filter_map(|r| r.figures.get(figure).copied()).collect(),
        Pool::Every => mine.filter_map(|r| r.figures.get(figure).copied()).collect(),
        Pool::HighestPerRound => {
            let mut per_round: BTreeMap<usize, f64> = BTreeMap::new();
            for r in mine {
                if let Some(&v) = r.figures.get(figure) {
                    let e = per_round.entry(r.round).or_insert(v);
                    *e = e.max(v);
                }
            }
            per_round.into_values().collect()
        }
    }
}

pub fn summarize(runs: &[PeerRun], specs: &[RowSpec]) -> Vec<Row> {
    specs
        .iter()
        .map(|s| {
            let corelog = Stat::of(&values(runs, &s.pool, s.figure, BrokerKind::Corelog));
            let kafka = Stat::of(&values(runs, &s.pool, s.figure, BrokerKind::Kafka));
            let ratio = match (corelog, kafka) {
                (Some(c), Some(k)) if k.median > 0.0 => Some(c.median / k.median),
                _ => None,
            };
            Row { label: s.label.clone(), figure: s.figure.to_string(), corelog, kafka, ratio }
        })
        .collect()
}

/// The headline rows: throughput of every produce and consume case, latency
/// and CPU at the fixed rates, ProducerPerformance, start time and memory.
/// `rates` holds the rate each fixed-rate case ran at.
pub fn headline(cases: &[Case], rates: &BTreeMap<String, f64>, consume_mb: f64, perf_acks: &str) -> Vec<RowSpec> {
    let mut specs = Vec::new();
    let mut row = |label: String, case: &Case, figure: &'static str| {
        specs.push(RowSpec { label, pool: Pool::Case(case.name.clone()), figure })
    };
    for c in cases {
        if let CaseKind::Throughput { .. } = c.kind {
            row(format!("produce {}: msgs/s", c.describe()), c, fig::PRODUCE_MSGS);
            row(format!("produce {}: MB/s", c.describe()), c, fig::PRODUCE_MB);
        }
    }
    for c in cases {
        if let CaseKind::Throughput { record_bytes, partitions, producers: 1 } = c.kind {
            let what = format!(
                "consume {}, {}{} from the beginning",
                size_label(record_bytes),
                partitions_label(partitions),
                replicated(c)
            );
            row(format!("{what} ({consume_mb} MB): msgs/s"), c, fig::CONSUME_MSGS);
            row(format!("{what} ({consume_mb} MB): MB/s"), c, fig::CONSUME_MB);
        }
    }
    for c in cases {
        if let CaseKind::Latency { record_bytes, .. } = c.kind {
            let at = match rates.get(&c.name) {
                Some(r) => format!("at {} msgs/s", si(Some(*r))),
                None => "at a fixed rate".into(),
            };
            let acks = if c.replication.is_some() { ", acks=all" } else { "" };
            let what = format!("{}, 1 partition{}{acks}, {at}", size_label(record_bytes), replicated(c));
            // A broker that cannot hold the rate shows it here (and its latency has no meaning).
            row(format!("rate achieved, {what}: msgs/s"), c, fig::PRODUCE_MSGS);
            row(format!("ack latency p50, {what}: ms"), c, fig::ACK_P50);
            row(format!("ack latency p99, {what}: ms"), c, fig::ACK_P99);
            row(format!("ack latency p99.9, {what}: ms"), c, fig::ACK_P99_9);
            row(format!("broker CPU per million msgs, {what}: s"), c, fig::PRODUCE_CPU);
        }
    }
    for c in cases {
        if let CaseKind::Throughput { partitions: 1, producers: 1, .. } = c.kind {
            row(
                format!("broker CPU per million msgs, produce {} at the maximum: s", c.describe()),
                c,
                fig::PRODUCE_CPU,
            );
        }
    }
    for c in cases {
        if let CaseKind::ProducerPerf { record_bytes } = c.kind {
            let what =
                format!("Kafka's ProducerPerformance, {}{}, acks={perf_acks}", size_label(record_bytes), replicated(c));
            row(format!("{what}: records/s"), c, fig::PERF_RECORDS);
            row(format!("{what}: MB/s"), c, fig::PERF_MB);
            row(format!("{what}: p50 ms"), c, fig::PERF_P50);
            row(format!("{what}: p99 ms"), c, fig::PERF_P99);
            row(format!("{what}: p99.9 ms"), c, fig::PERF_P99_9);
            let what =
                format!("Kafka's ConsumerPerformance, {}{}, the same records", size_label(record_bytes), replicated(c));
            row(format!("{what}: msgs/s while fetching"), c, fig::CONSUMER_PERF_FETCH_MSGS);
            row(format!("{what}: MB/s while fetching"), c, fig::CONSUMER_PERF_FETCH_MB);
        }
    }
    for c in cases {
        if let CaseKind::Failover { .. } = c.kind {
            let at = match rates.get(&c.name) {
                Some(r) => format!(" at {} msgs/s", si(Some(*r))),
                None => String::new(),
            };
            let what = format!("failover, {}{at}, leader's node SIGKILLed", c.describe());
            row(format!("{what}: old leader's last ack to new leader's first, ms"), c, fig::FAILOVER_GAP_MS);
            row(format!("{what}: SIGKILL to new leader's first ack, ms"), c, fig::FAILOVER_KILL_MS);
            row(format!("{what}: errors in between"), c, fig::FAILOVER_ERRORS);
        }
    }
    let mut general = |label: &str, pool: Pool, figure| specs.push(RowSpec { label: label.into(), pool, figure });
    general("time to start (spawn until a Metadata answer), every start: ms", Pool::Every, fig::START_MS);
    general("RSS right after start, every start: MiB", Pool::Every, fig::IDLE_RSS_MIB);
    general("peak RSS, highest case of each round: MiB", Pool::HighestPerRound, fig::PEAK_RSS_MIB);
    specs
}

/// One row per figure any run of a case recorded, case by case.
pub fn every_figure(cases: &[Case], runs: &[PeerRun]) -> Vec<RowSpec> {
    let mut specs = Vec::new();
    for c in cases {
        let mut names: Vec<&String> = runs.iter().filter(|r| r.case == c.name).flat_map(|r| r.figures.keys()).collect();
        names.sort();
        names.dedup();
        let rank = |n: &str| fig::ORDER.iter().position(|o| *o == n).unwrap_or(fig::ORDER.len());
        names.sort_by_key(|n| rank(n));
        for n in names {
            // The rows point at static names; anything unknown is skipped.
            if let Some(figure) = fig::ORDER.iter().find(|o| **o == n.as_str()) {
                specs.push(RowSpec {
                    label: format!("{} · {figure}", c.name),
                    pool: Pool::Case(c.name.clone()),
                    figure,
                });
            }
        }
    }
    specs
}

/// ", 3 nodes, RF 3" for a cluster's case, nothing for a single node's.
fn replicated(c: &Case) -> String {
    c.replication.map_or(String::new(), |r| format!(", {} nodes, RF {}", r.nodes, r.factor))
}

pub fn size_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

pub fn partitions_label(n: i32) -> String {
    format!("{n} partition{}", if n == 1 { "" } else { "s" })
}

/// A figure in its unit: rates with k/M, MB/s to one decimal, milliseconds
/// and seconds to three significant figures, MiB whole above 10.
pub fn fmt_value(figure: &str, v: f64) -> String {
    if figure.ends_with("msgs_per_s") || figure.ends_with("records_per_s") {
        si(Some(v))
    } else if figure.ends_with("mb_per_s") {
        num(Some(v), 1)
    } else if figure.ends_with("_errors") {
        num(Some(v), 0)
    } else if figure.ends_with("_mib") {
        num(Some(v), if v < 10.0 { 1 } else { 0 })
    } else {
        let digits = if v >= 100.0 {
            0
        } else if v >= 10.0 {
            1
        } else if v >= 0.1 {
            2
        } else {
            3
        };
        num(Some(v), digits)
    }
}

fn cell(figure: &str, s: Option<Stat>) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.runs > 1 => {
            format!("{} ({}–{})", fmt_value(figure, s.median), fmt_value(figure, s.min), fmt_value(figure, s.max))
        }
        Some(s) => fmt_value(figure, s.median),
    }
}

/// A ratio to two significant figures at least: "14.3", "3.81", "0.46", "0.0039".
pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 10.0 => format!("{r:.1}"),
        Some(r) if r >= 0.1 || r <= 0.0 => format!("{r:.2}"),
        Some(r) => format!("{r:.*}", (1.0 - r.log10().floor()) as usize),
        None => "–".into(),
    }
}

/// The side-by-side table in Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from("| scenario | corelog | Kafka | corelog / Kafka |\n|:--|--:|--:|--:|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.label.replace('|', "\\|"),
            cell(&r.figure, r.corelog),
            cell(&r.figure, r.kafka),
            fmt_ratio(r.ratio)
        );
    }
    s
}

/// Everything `peer` writes to results.json.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct PeerResults {
    pub tool: String,
    pub version: String,
    pub command_line: String,
    pub machine: crate::proc::Machine,
    /// How each broker was run: binary or jars, version, flags, settings.
    pub brokers: Value,
    pub options: Value,
    pub cases: Vec<Case>,
    /// The rate each fixed-rate case ran at (msgs/s), fixed in the first round.
    pub rates: BTreeMap<String, f64>,
    pub runs: Vec<PeerRun>,
    pub headline: Vec<Row>,
    pub every_figure: Vec<Row>,
}

/// peer.md: how the figures were made, the headline table, every figure, failures.
pub fn write(path: &Path, r: &PeerResults, method: &str) -> Result<()> {
    let mut md = String::from("# corelog and Apache Kafka, side by side\n\n");
    write_run_header(&mut md, &r.machine, &r.command_line);
    md += method;
    let _ = writeln!(md, "\n## Side by side\n");
    md += &markdown(&r.headline);
    let _ = writeln!(
        md,
        "\nEach cell is the median over the rounds (every start for the start time and RSS after start), \
         with the lowest and highest in brackets. For msgs/s, records/s and MB/s a ratio above 1 favours \
         corelog; for latency, CPU, RSS and start time a ratio below 1 does. A fixed-rate case's latency \
         and CPU mean something only where its achieved rate is the rate asked: a broker that falls behind \
         an open-loop schedule shows it there, and its latency then grows with the run."
    );
    let _ = writeln!(md, "\n## Every figure\n");
    md += &markdown(&r.every_figure);
    let failed: Vec<&PeerRun> = r.runs.iter().filter(|x| !x.ok).collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\n## Failures\n");
        for x in failed {
            let _ = writeln!(
                md,
                "- round {} **{}** on {}:\n\n```\n{}\n```",
                x.round,
                x.case,
                x.broker.name(),
                x.error.as_deref().unwrap_or("?").trim()
            );
        }
    }
    let _ = writeln!(md, "\nEvery run's figures and raw results are in `results.json`, logs in `logs/`.");
    std::fs::write(path, md).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: usize, case: &str, broker: BrokerKind, figures: &[(&str, f64)]) -> PeerRun {
        PeerRun {
            round,
            case: case.into(),
            broker,
            ok: true,
            figures: figures.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..PeerRun::default()
        }
    }

    #[test]
    fn medians_and_ranges() {
        assert_eq!(Stat::of(&[3.0, 1.0, 2.0]), Some(Stat { median: 2.0, min: 1.0, max: 3.0, runs: 3 }));
        assert_eq!(Stat::of(&[4.0, 1.0, 2.0, 10.0]).unwrap().median, 3.0);
        assert_eq!(Stat::of(&[f64::NAN, 5.0]).unwrap(), Stat { median: 5.0, min: 5.0, max: 5.0, runs: 1 });
        assert_eq!(Stat::of(&[]), None);
    }

    #[test]
    fn rows_take_medians_per_broker_and_their_ratio() {
        use BrokerKind::*;
        let mut runs = vec![
            run(0, "p", Corelog, &[(fig::PRODUCE_MSGS, 2.0e6), (fig::START_MS, 10.0), (fig::PEAK_RSS_MIB, 30.0)]),
            run(0, "p", Kafka, &[(fig::PRODUCE_MSGS, 0.5e6), (fig::START_MS, 9000.0), (fig::PEAK_RSS_MIB, 700.0)]),
            run(1, "p", Kafka, &[(fig::PRODUCE_MSGS, 0.4e6), (fig::START_MS, 8000.0), (fig::PEAK_RSS_MIB, 650.0)]),
            run(1, "p", Corelog, &[(fig::PRODUCE_MSGS, 1.0e6), (fig::START_MS, 20.0), (fig::PEAK_RSS_MIB, 20.0)]),
            run(2, "p", Corelog, &[(fig::PRODUCE_MSGS, 3.0e6), (fig::START_MS, 30.0), (fig::PEAK_RSS_MIB, 10.0)]),
            run(2, "p", Kafka, &[(fig::PRODUCE_MSGS, 0.6e6), (fig::START_MS, 7000.0), (fig::PEAK_RSS_MIB, 600.0)]),
            run(0, "q", Corelog, &[(fig::START_MS, 40.0), (fig::PEAK_RSS_MIB, 50.0)]),
            run(0, "q", Kafka, &[(fig::START_MS, 6000.0), (fig::PEAK_RSS_MIB, 500.0)]),
        ];
        // A failed run counts nowhere.
        let mut failed = run(1, "p", Corelog, &[(fig::PRODUCE_MSGS, 99.0e6)]);
        failed.ok = false;
        runs.push(failed);
        let specs = [
            RowSpec { label: "produce".into(), pool: Pool::Case("p".into()), figure: fig::PRODUCE_MSGS },
            RowSpec { label: "start".into(), pool: Pool::Every, figure: fig::START_MS },
            RowSpec { label: "rss".into(), pool: Pool::HighestPerRound, figure: fig::PEAK_RSS_MIB },
            RowSpec { label: "absent".into(), pool: Pool::Case("p".into()), figure: fig::CONSUME_MSGS },
        ];
        let rows = summarize(&runs, &specs);
        assert_eq!(rows[0].corelog, Some(Stat { median: 2.0e6, min: 1.0e6, max: 3.0e6, runs: 3 }));
        assert_eq!(rows[0].kafka.unwrap().median, 0.5e6);
        assert_eq!(rows[0].ratio, Some(4.0));
        // every start: corelog 10, 20, 30, 40 -> 25; Kafka 9000, 8000, 7000, 6000 -> 7500
        assert_eq!(rows[1].corelog.unwrap().median, 25.0);
        assert_eq!(rows[1].kafka.unwrap().runs, 4);
        assert_eq!(rows[1].ratio, Some(25.0 / 7500.0));
        // highest per round: corelog 50, 20, 10 -> 20; Kafka 700, 650, 600 -> 650
        assert_eq!(rows[2].corelog.unwrap(), Stat { median: 20.0, min: 10.0, max: 50.0, runs: 3 });
        assert_eq!(rows[2].kafka.unwrap().median, 650.0);
        assert_eq!(rows[3].corelog, None);
        assert_eq!(rows[3].ratio, None);

        let md = markdown(&rows);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "| scenario | corelog | Kafka | corelog / Kafka |");
        assert_eq!(lines[2], "| produce | 2.00M (1.00M–3.00M) | 500k (400k–600k) | 4.00 |");
        assert_eq!(lines[3], "| start | 25.0 (10.0–40.0) | 7500 (6000–9000) | 0.0033 |");
        assert_eq!(lines[4], "| rss | 20 (10–50) | 650 (600–700) | 0.031 |");
        assert_eq!(lines[5], "| absent | – | – | – |");
    }

    #[test]
    fn values_in_their_units() {
        assert_eq!(fmt_value(fig::PRODUCE_MSGS, 2_345_678.0), "2.35M");
        assert_eq!(fmt_value(fig::PERF_RECORDS, 93_305.3), "93.3k");
        assert_eq!(fmt_value(fig::PRODUCE_MB, 234.56), "234.6");
        assert_eq!(fmt_value(fig::ACK_P99, 0.0123), "0.012");
        assert_eq!(fmt_value(fig::ACK_P99, 1.234), "1.23");
        assert_eq!(fmt_value(fig::PERF_P99, 1320.0), "1320");
        assert_eq!(fmt_value(fig::IDLE_RSS_MIB, 6.04), "6.0");
        assert_eq!(fmt_value(fig::PEAK_RSS_MIB, 612.7), "613");
        assert_eq!(fmt_value(fig::FAILOVER_ERRORS, 93.0), "93");
        assert_eq!(fmt_value(fig::FAILOVER_GAP_MS, 9463.2), "9463");
        assert_eq!(fmt_ratio(Some(12.345)), "12.3");
        assert_eq!(fmt_ratio(Some(0.456)), "0.46");
        assert_eq!(fmt_ratio(Some(0.0038703)), "0.0039");
        assert_eq!(fmt_ratio(Some(0.0)), "0.00");
    }

    #[test]
    fn headline_names_every_case_and_the_fixed_rates() {
        let cases = crate::peer_cases::cases();
        let rates = BTreeMap::from([("latency-100B".to_string(), 150_000.0)]);
        let specs = headline(&cases, &rates, 500.0, "all");
        let labels: Vec<&str> = specs.iter().map(|s| s.label.as_str()).collect();
        assert!(labels.contains(&"produce 100 B, 1 partition, 1 producer: msgs/s"), "{labels:?}");
        assert!(labels.contains(&"produce 1 KiB, 16 partitions, 2 producers: MB/s"), "{labels:?}");
        assert!(labels.contains(&"consume 1 KiB, 16 partitions from the beginning (500 MB): msgs/s"), "{labels:?}");
        assert!(labels.contains(&"ack latency p99.9, 100 B, 1 partition, at 150k msgs/s: ms"), "{labels:?}");
        assert!(labels.contains(&"ack latency p50, 1 KiB, 1 partition, at a fixed rate: ms"), "{labels:?}");
        assert!(labels.contains(&"Kafka's ProducerPerformance, 100 B, acks=all: records/s"), "{labels:?}");
        assert!(labels.contains(&"Kafka's ConsumerPerformance, 100 B, the same records: msgs/s while fetching"));
        // 8 produce cases x 2, 4 consume x 2, 2 latency x 5, 2 CPU at the maximum, 5 ProducerPerformance,
        // 2 ConsumerPerformance, 3 general
        assert_eq!(specs.len(), 16 + 8 + 10 + 2 + 5 + 2 + 3);
    }

    #[test]
    fn a_clusters_headline_names_nodes_and_replication_and_the_failover() {
        let cases = crate::peer_cases::cluster_cases(3, 3);
        let rates = BTreeMap::from([
            ("latency-100B-n3-rf3".to_string(), 20_000.0),
            ("failover-100B-n3-rf3".to_string(), 10_000.0),
        ]);
        let specs = headline(&cases, &rates, 500.0, "all");
        let labels: Vec<&str> = specs.iter().map(|s| s.label.as_str()).collect();
        for expected in [
            "produce 100 B, 1 partition, 1 producer, 3 nodes, RF 3, acks=all: msgs/s",
            "produce 100 B, 1 partition, 1 producer, 3 nodes, RF 1, acks=all: msgs/s",
            "consume 100 B, 16 partitions, 3 nodes, RF 1 from the beginning (500 MB): MB/s",
            "ack latency p99.9, 100 B, 1 partition, 3 nodes, RF 3, acks=all, at 20.0k msgs/s: ms",
            "Kafka's ProducerPerformance, 100 B, 3 nodes, RF 1, acks=all: records/s",
            "failover, 100 B, 1 partition, 3 nodes, RF 3, acks=all at 10.0k msgs/s, leader's node SIGKILLed: \
             old leader's last ack to new leader's first, ms",
            "failover, 100 B, 1 partition, 3 nodes, RF 3, acks=all at 10.0k msgs/s, leader's node SIGKILLed: \
             errors in between",
        ] {
            assert!(labels.contains(&expected), "{expected:?} not in {labels:#?}");
        }
        let gap = specs.iter().find(|s| s.figure == fig::FAILOVER_GAP_MS).unwrap();
        assert_eq!(gap.pool, Pool::Case("failover-100B-n3-rf3".into()));
    }
}
