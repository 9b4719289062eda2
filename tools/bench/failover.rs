//! The failover case of `corelog-bench peer --nodes N`: corelog-load
//! produces at a fixed rate with acks=all to one partition replicated on the
//! cluster, writing a timeline of every acknowledgement and error with the
//! broker that sent it (`--timeline`); after `--warmup` + `--failover-after`
//! seconds the node leading the partition (found through Metadata) is
//! SIGKILLed. The failover time is read from the timeline: from the last
//! acknowledgement the old leader sent to the first one a new leader sent,
//! with the errors the producer saw in between. The producer follows the
//! leader change as a Kafka client does (metadata refresh on
//! NOT_LEADER_OR_FOLLOWER or a lost connection, tools/load/route.rs).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _, Result};
use serde::Serialize;
use serde_json::{json, Value};

use crate::cluster::{node_of_broker, Cluster};
use crate::peer::{On, Runner, LOAD_SLACK};
use crate::peer_cases::Case;
use crate::peer_report::{fig, PeerRun};
use crate::probe;
use crate::proc;

const TOPIC: &str = "peer-failover";
/// The partition whose leader is killed.
const PARTITION: i32 = 0;
/// How long one Metadata probe for the leader may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The timeline file's header (tools/load/route.rs writes it).
const TIMELINE_HEADER: &str = "unix_us\tpartition\tbroker\tevent";
const ACK: &str = "ack";
/// The failover producer's batches close every 20 ms (corelog-load's
/// --linger-ms; its default of 5 ms means 200 requests a second at any
/// rate, more than three Kafka nodes sharing one busy core acknowledge at
/// acks=all, and an open loop that falls behind measures its own backlog).
/// It bounds the resolution of the gap, which is measured in seconds.
const LINGER_MS: u32 = 20;

/// One line of corelog-load's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEvent {
    pub unix_us: u64,
    pub partition: i32,
    /// The broker that answered or was talked to (-1: none).
    pub broker: i32,
    /// "ack", a Kafka error name, "disconnected" or "no-leader".
    pub event: String,
}

pub fn parse_timeline(text: &str) -> Result<Vec<TimelineEvent>> {
    let mut lines = text.lines();
    ensure!(lines.next() == Some(TIMELINE_HEADER), "not a corelog-load timeline (header {TIMELINE_HEADER:?})");
    lines
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split('\t').collect();
            let [t, p, b, e] = f[..] else { bail!("timeline line {}: {line:?} has not 4 columns", i + 2) };
            let bad = |what: &str| format!("timeline line {}: bad {what} in {line:?}", i + 2);
            Ok(TimelineEvent {
                unix_us: t.parse().with_context(|| bad("time"))?,
                partition: p.parse().with_context(|| bad("partition"))?,
                broker: b.parse().with_context(|| bad("broker"))?,
                event: e.to_string(),
            })
        })
        .collect()
}

/// What the timeline says about one failover.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failover {
    pub old_leader: i32,
    pub new_leader: i32,
    /// Last acknowledgement the old leader sent, first one a new leader sent (µs since the epoch).
    pub last_old_ack_unix_us: u64,
    pub first_new_ack_unix_us: u64,
    /// From the last acknowledgement of the old leader to the first of the new.
    pub gap_ms: f64,
    /// From the SIGKILL to the first acknowledgement of the new leader.
    pub kill_to_new_ack_ms: f64,
    /// Errors seen for the partition in between, by name.
    pub errors_between: BTreeMap<String, u64>,
}

impl Failover {
    pub fn error_count(&self) -> u64 {
        self.errors_between.values().sum()
    }
}

/// Reads the failover of `partition` from `events`: `old` says which broker
/// ids were the killed node's, `kill_unix_us` when it was killed.
pub fn measure(
    events: &[TimelineEvent],
    partition: i32,
    old: impl Fn(i32) -> bool,
    kill_unix_us: u64,
) -> Result<Failover> {
    let mine: Vec<&TimelineEvent> = events.iter().filter(|e| e.partition == partition).collect();
    let last_old = mine
        .iter()
        .filter(|e| e.event == ACK && old(e.broker))
        .max_by_key(|e| e.unix_us)
        .with_context(|| format!("no acknowledgement of partition {partition} from the killed node"))?;
    let first_new = mine
        .iter()
        .filter(|e| e.event == ACK && !old(e.broker) && e.unix_us >= last_old.unix_us)
        .min_by_key(|e| e.unix_us)
        .with_context(|| {
            format!("no acknowledgement of partition {partition} from a new leader: the failover did not complete")
        })?;
    let mut errors_between = BTreeMap::new();
    for e in mine.iter().filter(|e| e.event != ACK && (last_old.unix_us..=first_new.unix_us).contains(&e.unix_us)) {
        *errors_between.entry(e.event.clone()).or_default() += 1;
    }
    let ms = |from: u64, to: u64| (to as f64 - from as f64) / 1e3;
    Ok(Failover {
        old_leader: last_old.broker,
        new_leader: first_new.broker,
        last_old_ack_unix_us: last_old.unix_us,
        first_new_ack_unix_us: first_new.unix_us,
        gap_ms: ms(last_old.unix_us, first_new.unix_us),
        kill_to_new_ack_ms: ms(kill_unix_us, first_new.unix_us),
        errors_between,
    })
}

fn unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

impl Runner<'_> {
    /// Runs the failover case on `cluster` (which loses a node).
    pub(crate) fn failover(
        &self,
        cluster: &mut Cluster,
        on: &On,
        r: &mut PeerRun,
        case: &Case,
        record_bytes: usize,
    ) -> Result<()> {
        let a = &self.args;
        let topic_args = self.topic_args(case);
        let (bootstrap, tag) = (&on.bootstrap, &on.tag);
        // The topic first, so that its leader can be looked up before the load starts.
        let mut create = vec!["--topic", TOPIC, "--partitions", "1", "--messages", "0"];
        create.extend(topic_args.iter().map(String::as_str));
        self.load(on, r, "create", &create)?;

        let timeline = self.raw.join(format!("{tag}-failover.timeline.tsv"));
        let json_path = self.raw.join(format!("{tag}-failover.json"));
        let log = self.logs.join(format!("{tag}-failover.load.log"));
        let _ = std::fs::remove_file(&json_path);
        let run_s = a.failover_after + a.failover_window;
        let mut cmd = proc::on_cpus(&self.load, Some(&a.load_cpus));
        cmd.args(["--bootstrap-server", bootstrap, "--quiet", "--topic", TOPIC, "--partitions", "1"])
            .args(["--record-bytes", &record_bytes.to_string(), "--rate", &a.failover_rate.to_string()])
            .args(["--duration", &run_s.to_string(), "--warmup", &a.warmup.to_string()])
            .args(["--linger-ms", &LINGER_MS.to_string()])
            .args(&topic_args)
            .arg("--timeline")
            .arg(&timeline)
            .arg("--json")
            .arg(&json_path);
        let mut load = proc::spawn_logged(&mut cmd, &log)?;
        let started = Instant::now();
        let kill_at = started + Duration::from_secs_f64(a.warmup + a.failover_after);
        std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
        let killed = (|| -> Result<(i32, u32, u64)> {
            let leader = probe::partition_leader(&cluster.bootstrap(), TOPIC, PARTITION, PROBE_TIMEOUT)?;
            let node = node_of_broker(cluster.kind, leader);
            let at = unix_us();
            cluster.kill(node)?;
            Ok((leader, node, at))
        })();
        let timeout = Duration::from_secs_f64(a.warmup + run_s) + LOAD_SLACK;
        let status = proc::wait_timeout(&mut load, timeout)?;
        if status.is_none() {
            let _ = load.kill();
            let _ = load.wait();
        }
        let (leader, node, kill_unix_us) = killed?;
        let status = status.with_context(|| format!("corelog-load did not finish within {timeout:?}"))?;
        let text = std::fs::read_to_string(&json_path)
            .with_context(|| format!("corelog-load exited with {status}, no result:\n{}", proc::tail(&log)))?;
        let v: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", json_path.display()))?;
        r.raw.push(json!({"step": "failover", "load": v.clone()}));
        // Errors are expected here (what was in flight to the killed node);
        // a producer that gave up is not.
        let failures = v.get("failures").and_then(Value::as_array).map_or(0, Vec::len);
        ensure!(failures == 0, "corelog-load gave up during the failover ({status}):\n{}", proc::tail(&log));
        let events = parse_timeline(&std::fs::read_to_string(&timeline)?)?;
        let kind = cluster.kind;
        let f = measure(&events, PARTITION, |b| b >= 0 && node_of_broker(kind, b) == node, kill_unix_us)?;
        r.set(fig::RATE, Some(a.failover_rate));
        r.set(fig::FAILOVER_GAP_MS, Some(f.gap_ms));
        r.set(fig::FAILOVER_KILL_MS, Some(f.kill_to_new_ack_ms));
        r.set(fig::FAILOVER_ERRORS, Some(f.error_count() as f64));
        r.raw.push(json!({
            "step": "failover-measured", "killed_node": node, "leader_before": leader,
            "kill_unix_us": kill_unix_us, "failover": f, "timeline": timeline.display().to_string(),
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(unix_us: u64, partition: i32, broker: i32, event: &str) -> TimelineEvent {
        TimelineEvent { unix_us, partition, broker, event: event.into() }
    }

    #[test]
    fn timelines_parse_and_refuse_what_is_not_one() {
        let text = "unix_us\tpartition\tbroker\tevent\n10\t0\t1000\tack\n20\t0\t-1\tno-leader\n";
        assert_eq!(parse_timeline(text).unwrap(), vec![ev(10, 0, 1000, "ack"), ev(20, 0, -1, "no-leader")]);
        assert!(parse_timeline("time,partition\n").is_err());
        assert!(parse_timeline("unix_us\tpartition\tbroker\tevent\n10\t0\tack\n").is_err());
        assert!(parse_timeline("unix_us\tpartition\tbroker\tevent\nx\t0\t1\tack\n").is_err());
    }

    #[test]
    fn the_gap_runs_from_the_old_leaders_last_ack_to_the_new_leaders_first() {
        // corelog ids: node 1 = broker 1000 (killed), node 2 = broker 2000.
        let events = vec![
            ev(1_000_000, 0, 1000, "ack"),
            ev(1_000_500, 1, 2000, "ack"), // another partition: ignored
            ev(1_010_000, 0, 1000, "ack"), // the old leader's last ack
            ev(1_020_000, 0, 1000, "disconnected"),
            ev(1_120_000, 0, 1000, "disconnected"),
            ev(1_300_000, 0, -1, "no-leader"),
            ev(1_400_000, 0, 2000, "NOT_LEADER_OR_FOLLOWER"),
            ev(1_510_000, 0, 2000, "ack"), // the new leader's first ack
            ev(1_520_000, 0, 2000, "ack"),
            ev(1_530_000, 0, 2000, "NOT_ENOUGH_REPLICAS"), // after: not counted
        ];
        let old = |b: i32| b / 1000 == 1;
        let f = measure(&events, 0, old, 1_015_000).unwrap();
        assert_eq!((f.old_leader, f.new_leader), (1000, 2000));
        assert_eq!(f.gap_ms, 500.0);
        assert_eq!(f.kill_to_new_ack_ms, 495.0);
        assert_eq!(
            f.errors_between,
            BTreeMap::from([
                ("disconnected".to_string(), 2),
                ("no-leader".to_string(), 1),
                ("NOT_LEADER_OR_FOLLOWER".to_string(), 1)
            ])
        );
        assert_eq!(f.error_count(), 4);
    }

    #[test]
    fn a_failover_that_never_completes_is_an_error() {
        let events = vec![ev(10, 0, 1, "ack"), ev(20, 0, 1, "disconnected"), ev(30, 0, -1, "no-leader")];
        let e = measure(&events, 0, |b| b == 1, 15).unwrap_err();
        assert!(format!("{e:#}").contains("did not complete"), "{e:#}");
        // Nothing from the killed node at all: the wrong node was killed, or nothing was acknowledged.
        assert!(measure(&[ev(10, 0, 2, "ack")], 0, |b| b == 1, 5).is_err());
    }

    #[test]
    fn acks_from_the_new_leader_before_the_old_ones_last_do_not_count() {
        // Kafka ids; the partition moved 3 -> 1 earlier, then 1 was killed and 2 took over.
        let events = vec![ev(10, 0, 3, "ack"), ev(20, 0, 1, "ack"), ev(40, 0, 2, "ack")];
        let f = measure(&events, 0, |b| b == 1, 30).unwrap();
        assert_eq!((f.old_leader, f.new_leader, f.gap_ms), (1, 2, 0.02));
    }
}
