//! Kafka's own load generators, org.apache.kafka.tools.ProducerPerformance
//! (bin/kafka-producer-perf-test.sh) and ConsumerPerformance
//! (bin/kafka-consumer-perf-test.sh), so that the peer figures do not rest on
//! corelog-load alone: their arguments and their summary lines.

use serde::{Deserialize, Serialize};

/// The records ProducerPerformance leaves out of its steady-state line: a
/// fifth of the run, while the client's JIT and the broker warm up.
pub const WARMUP_FRACTION: u64 = 5;

/// One summary line of ProducerPerformance, e.g.
/// `400000 steady state records sent, 93305.341731 records/sec (8.90 MB/sec),
/// 954.39 ms avg latency, 1353.00 ms max latency, 1001 ms 50th, 1289 ms 95th,
/// 1320 ms 99th, 1353 ms 99.9th.`
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Summary {
    pub records: u64,
    /// The steady-state line (after --warmup-records), not the whole run.
    pub steady_state: bool,
    pub records_per_s: f64,
    /// ProducerPerformance's MB are MiB (bytes / 1024 / 1024).
    pub mib_per_s: f64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
}

/// ProducerPerformance's arguments: `records` of `record_bytes` as fast as
/// they go (--throughput -1), the first fifth as warm-up, the producer's
/// defaults but for `acks`.
pub fn args(bootstrap: &str, topic: &str, records: u64, record_bytes: usize, acks: &str) -> Vec<String> {
    let records_s = records.to_string();
    let warmup = (records / WARMUP_FRACTION).to_string();
    let acks = format!("acks={acks}");
    let a = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--num-records",
        &records_s,
        "--warmup-records",
        &warmup,
        "--record-size",
        &record_bytes.to_string(),
        "--throughput",
        "-1",
        "--command-property",
        &acks,
    ];
    a.iter().map(|s| s.to_string()).collect()
}

/// The summary to report from ProducerPerformance's output: the steady-state
/// line when there is one, else the whole run's. Progress lines (no
/// percentiles) are skipped.
pub fn parse(stdout: &str) -> Option<Summary> {
    let lines: Vec<Summary> = stdout.lines().filter_map(parse_line).collect();
    lines.iter().find(|s| s.steady_state).or(lines.last()).cloned()
}

fn parse_line(line: &str) -> Option<Summary> {
    let line = line.trim().strip_suffix('.')?;
    let parts: Vec<&str> = line.split(", ").collect();
    let [sent, rate, avg, max, p50, p95, p99, p999] = parts.as_slice() else {
        return None;
    };
    let (records, steady_state) = match sent.strip_suffix(" steady state records sent") {
        Some(n) => (n, true),
        None => (sent.strip_suffix(" records sent")?, false),
    };
    let (records_per_s, mib) = rate.split_once(" records/sec (")?;
    let number = |s: &str, suffix: &str| s.strip_suffix(suffix)?.trim().parse::<f64>().ok();
    Some(Summary {
        records: records.trim().parse().ok()?,
        steady_state,
        records_per_s: records_per_s.trim().parse().ok()?,
        mib_per_s: number(mib, " MB/sec)")?,
        avg_ms: number(avg, " ms avg latency")?,
        max_ms: number(max, " ms max latency")?,
        p50_ms: number(p50, " ms 50th")?,
        p95_ms: number(p95, " ms 95th")?,
        p99_ms: number(p99, " ms 99th")?,
        p99_9_ms: number(p999, " ms 99.9th")?,
    })
}

/// ConsumerPerformance's result: its header line and the values under it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ConsumerSummary {
    pub messages: u64,
    /// Over the whole run, the consumer group's join included (nMsg.sec).
    pub msgs_per_s: f64,
    /// Over the time spent fetching only (fetch.nMsg.sec).
    pub fetch_msgs_per_s: f64,
    /// ConsumerPerformance's MB are MiB (fetch.MB.sec).
    pub fetch_mib_per_s: f64,
}

/// ConsumerPerformance's arguments: `messages` from the beginning of `topic`
/// with the consumer's defaults, giving up after `timeout_ms` without records.
pub fn consumer_args(bootstrap: &str, topic: &str, messages: u64, timeout_ms: u64) -> Vec<String> {
    let a = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--messages",
        &messages.to_string(),
        "--timeout",
        &timeout_ms.to_string(),
    ];
    a.iter().map(|s| s.to_string()).collect()
}

/// The line under ConsumerPerformance's `start.time, end.time, …` header.
pub fn parse_consumer(stdout: &str) -> Option<ConsumerSummary> {
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines.iter().rposition(|l| l.starts_with("start.time, "))?;
    let header: Vec<&str> = lines[at].split(", ").collect();
    let values: Vec<&str> = lines.get(at + 1)?.split(", ").collect();
    let value =
        |name: &str| -> Option<f64> { values.get(header.iter().position(|h| *h == name)?)?.trim().parse().ok() };
    Some(ConsumerSummary {
        messages: value("data.consumed.in.nMsg")? as u64,
        msgs_per_s: value("nMsg.sec")?,
        fetch_msgs_per_s: value("fetch.nMsg.sec")?,
        fetch_mib_per_s: value("fetch.MB.sec")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ProducerPerformance 4.4.0 printed against a Kafka broker here.
    const OUTPUT: &str = "\
Warmup first 200000 records. Steady state results will print after the complete test summary.
40597 records sent, 8090.3 records/sec (0.77 MB/sec), 94.1 ms avg latency, 3073.0 ms max latency.
600000 records sent, 49472.295515 records/sec (4.72 MB/sec), 723.07 ms avg latency, 3073.00 ms max latency, 786 ms 50th, 1276 ms 95th, 1318 ms 99th, 1352 ms 99.9th.
400000 steady state records sent, 93305.341731 records/sec (8.90 MB/sec), 954.39 ms avg latency, 1353.00 ms max latency, 1001 ms 50th, 1289 ms 95th, 1320 ms 99th, 1353 ms 99.9th.
";

    #[test]
    fn steady_state_line_wins() {
        let s = parse(OUTPUT).unwrap();
        assert_eq!(
            s,
            Summary {
                records: 400_000,
                steady_state: true,
                records_per_s: 93305.341731,
                mib_per_s: 8.90,
                avg_ms: 954.39,
                max_ms: 1353.0,
                p50_ms: 1001.0,
                p95_ms: 1289.0,
                p99_ms: 1320.0,
                p99_9_ms: 1353.0,
            }
        );
    }

    #[test]
    fn whole_run_line_without_warmup() {
        let without: String = OUTPUT.lines().filter(|l| !l.contains("steady")).map(|l| format!("{l}\n")).collect();
        let s = parse(&without).unwrap();
        assert!(!s.steady_state);
        assert_eq!((s.records, s.p99_9_ms, s.mib_per_s), (600_000, 1352.0, 4.72));
    }

    #[test]
    fn progress_lines_and_noise_are_not_summaries() {
        assert_eq!(
            parse(
                "40597 records sent, 8090.3 records/sec (0.77 MB/sec), 94.1 ms avg latency, 3073.0 ms max latency.\n"
            ),
            None
        );
        assert_eq!(parse("Exception in thread main: TimeoutException\n"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn arguments_name_acks_and_a_fifth_as_warmup() {
        let a = args("127.0.0.1:9092", "t", 1_000_000, 100, "all");
        let joined = a.join(" ");
        assert!(joined.contains("--num-records 1000000 --warmup-records 200000 --record-size 100"));
        assert!(joined.ends_with("--throughput -1 --command-property acks=all"));
    }

    /// What ConsumerPerformance 4.4.0 printed against corelog here.
    const CONSUMER_OUTPUT: &str = "\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-12-03 17:50:01:101, 2026-12-03 17:50:04:301, 9.5367, 2.9802, 100000, 31250.0000, 3012, 188, 50.7274, 531914.8936
";

    #[test]
    fn consumer_line_is_read_by_its_header() {
        let s = parse_consumer(CONSUMER_OUTPUT).unwrap();
        assert_eq!(
            s,
            ConsumerSummary {
                messages: 100_000,
                msgs_per_s: 31250.0,
                fetch_msgs_per_s: 531914.8936,
                fetch_mib_per_s: 50.7274
            }
        );
        assert_eq!(parse_consumer("start.time, end.time\n"), None);
    }
}
