//! The cases of `corelog-bench peer`: what runs on each broker, by name.
//! A single node runs today's matrix (acks=1, the broker's default
//! replication); a cluster (`--nodes N`) runs its replicated cases, whose
//! names end in `-nN-rfR`: produce and consume at acks=all with the
//! replication factor asked and with RF=1 beside it, ack latency at a fixed
//! rate, ProducerPerformance, and the failover under load.

use serde::{Deserialize, Serialize};

use crate::peer_report::{partitions_label, size_label};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum CaseKind {
    /// Closed-loop produce; with one producer, then also --consume-mb written
    /// to a second topic and read from the beginning by one consumer.
    Throughput { record_bytes: usize, partitions: i32, producers: usize },
    /// Open loop at --latency-pct of the lower maximum of `base`, one producer
    /// and one consumer, after --warmup seconds of closed-loop load.
    Latency { record_bytes: usize, base: String },
    /// Kafka's ProducerPerformance, one partition.
    ProducerPerf { record_bytes: usize },
    /// Open loop at --failover-rate on one partition; after --failover-after
    /// seconds the node leading it is SIGKILLed; the gap in its acks is measured.
    Failover { record_bytes: usize },
}

/// How a cluster case's topic is replicated; its producers use acks=all.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Replication {
    pub nodes: u32,
    pub factor: i16,
}

/// min.insync.replicas of a replicated case's topic: 2, as the issue asks
/// (Kafka's recommendation for RF 3), but never above the replication factor.
pub const MIN_INSYNC_REPLICAS: i16 = 2;

impl Replication {
    pub fn min_insync_replicas(self) -> i16 {
        MIN_INSYNC_REPLICAS.min(self.factor)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Case {
    pub name: String,
    pub kind: CaseKind,
    /// None: a single node's case (acks=1, the broker's default replication).
    #[serde(default)]
    pub replication: Option<Replication>,
}

impl Case {
    fn throughput(record_bytes: usize, partitions: i32, producers: usize) -> Case {
        Case {
            name: format!("produce-{}-p{partitions}-x{producers}", short_size(record_bytes)),
            kind: CaseKind::Throughput { record_bytes, partitions, producers },
            replication: None,
        }
    }

    /// The same case on a cluster: the name says the node count and the replication factor.
    fn replicated(self, r: Replication) -> Case {
        Case { name: format!("{}-n{}-rf{}", self.name, r.nodes, r.factor), replication: Some(r), ..self }
    }

    /// acks of corelog-load's producers in this case.
    pub fn acks(&self) -> &'static str {
        if self.replication.is_some() {
            "all"
        } else {
            "1"
        }
    }

    /// "100 B, 16 partitions, 2 producers" (", 3 nodes, RF 3, acks=all" on a cluster).
    pub fn describe(&self) -> String {
        let what = self.describe_load();
        match self.replication {
            Some(r) => format!("{what}, {} nodes, RF {}, acks=all", r.nodes, r.factor),
            None => what,
        }
    }

    fn describe_load(&self) -> String {
        match &self.kind {
            CaseKind::Throughput { record_bytes, partitions, producers } => format!(
                "{}, {}, {producers} producer{}",
                size_label(*record_bytes),
                partitions_label(*partitions),
                if *producers == 1 { "" } else { "s" }
            ),
            CaseKind::Latency { record_bytes, .. }
            | CaseKind::ProducerPerf { record_bytes }
            | CaseKind::Failover { record_bytes } => format!("{}, 1 partition", size_label(*record_bytes)),
        }
    }
}

fn short_size(bytes: usize) -> String {
    size_label(bytes).replace(' ', "")
}

/// Every case: produce (and consume) 100 B and 1 KiB × 1 and 16 partitions ×
/// 1 and 2 producers, ack latency at a fixed rate for both sizes, and
/// ProducerPerformance with 100 B records. Throughput cases come first: the
/// fixed rates are derived from them.
pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for size in [100, 1024] {
        for partitions in [1, 16] {
            for producers in [1, 2] {
                v.push(Case::throughput(size, partitions, producers));
            }
        }
    }
    for size in [100, 1024] {
        let base = Case::throughput(size, 1, 1).name;
        v.push(Case {
            name: format!("latency-{}", short_size(size)),
            kind: CaseKind::Latency { record_bytes: size, base },
            replication: None,
        });
    }
    v.push(Case {
        name: "producer-perf-100B".into(),
        kind: CaseKind::ProducerPerf { record_bytes: 100 },
        replication: None,
    });
    v
}

/// A cluster's cases: with the replication factor asked and with RF=1
/// (so the cost of replication shows), produce 100 B and 1 KiB on one
/// partition and 100 B on 16, one producer each, then consume from the
/// beginning, and ProducerPerformance; with the replication factor asked,
/// ack latency at a fixed rate for both sizes and the failover.
pub fn cluster_cases(nodes: u32, factor: i16) -> Vec<Case> {
    let mut factors = vec![factor];
    if factor != 1 {
        factors.push(1);
    }
    let mut v = Vec::new();
    for &f in &factors {
        let r = Replication { nodes, factor: f };
        for (size, partitions) in [(100, 1), (1024, 1), (100, 16)] {
            v.push(Case::throughput(size, partitions, 1).replicated(r));
        }
    }
    let r = Replication { nodes, factor };
    for size in [100, 1024] {
        let base = Case::throughput(size, 1, 1).replicated(r).name;
        let latency = Case {
            name: format!("latency-{}", short_size(size)),
            kind: CaseKind::Latency { record_bytes: size, base },
            replication: None,
        };
        v.push(latency.replicated(r));
    }
    for &f in &factors {
        let perf = Case {
            name: "producer-perf-100B".into(),
            kind: CaseKind::ProducerPerf { record_bytes: 100 },
            replication: None,
        };
        v.push(perf.replicated(Replication { nodes, factor: f }));
    }
    let failover =
        Case { name: "failover-100B".into(), kind: CaseKind::Failover { record_bytes: 100 }, replication: None };
    v.push(failover.replicated(r));
    v
}

/// The cases whose name contains one of `only` (all when empty); a kept
/// fixed-rate case brings its base along, in the base's place.
pub fn select(all: Vec<Case>, only: &[String]) -> Vec<Case> {
    let matches = |c: &Case| only.is_empty() || only.iter().any(|o| c.name.contains(o.as_str()));
    let needed: Vec<String> = all
        .iter()
        .filter(|c| matches(c))
        .filter_map(|c| match &c.kind {
            CaseKind::Latency { base, .. } => Some(base.clone()),
            _ => None,
        })
        .collect();
    all.into_iter().filter(|c| matches(c) || needed.contains(&c.name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix() {
        let all = cases();
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), 8 + 2 + 1);
        assert_eq!(names[0], "produce-100B-p1-x1");
        assert_eq!(names[7], "produce-1KiB-p16-x2");
        assert_eq!(names[8..], ["latency-100B", "latency-1KiB", "producer-perf-100B"]);
        assert_eq!(all[3].describe(), "100 B, 16 partitions, 2 producers");
    }

    #[test]
    fn a_latency_case_brings_its_base() {
        let names = |only: &[&str]| -> Vec<String> {
            select(cases(), &only.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .into_iter()
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(names(&["latency-1KiB"]), ["produce-1KiB-p1-x1", "latency-1KiB"]);
        assert_eq!(names(&["perf"]), ["producer-perf-100B"]);
        assert_eq!(names(&["100B-p1-x1", "perf"]), ["produce-100B-p1-x1", "producer-perf-100B"]);
        assert_eq!(names(&[]).len(), 11);
    }

    #[test]
    fn a_cluster_measures_replication_against_rf1_and_fails_over() {
        let all = cluster_cases(3, 3);
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "produce-100B-p1-x1-n3-rf3",
                "produce-1KiB-p1-x1-n3-rf3",
                "produce-100B-p16-x1-n3-rf3",
                "produce-100B-p1-x1-n3-rf1",
                "produce-1KiB-p1-x1-n3-rf1",
                "produce-100B-p16-x1-n3-rf1",
                "latency-100B-n3-rf3",
                "latency-1KiB-n3-rf3",
                "producer-perf-100B-n3-rf3",
                "producer-perf-100B-n3-rf1",
                "failover-100B-n3-rf3",
            ]
        );
        assert!(all.iter().all(|c| c.acks() == "all"));
        assert_eq!(all[0].describe(), "100 B, 1 partition, 1 producer, 3 nodes, RF 3, acks=all");
        assert_eq!(all[3].replication.unwrap().min_insync_replicas(), 1, "RF 1 cannot ask for 2 in sync");
        assert_eq!(all[0].replication.unwrap().min_insync_replicas(), 2);
        // A latency case's base is the produce case of its own replication factor.
        assert_eq!(all[6].kind, CaseKind::Latency { record_bytes: 100, base: "produce-100B-p1-x1-n3-rf3".into() });
        let picked: Vec<String> =
            select(cluster_cases(3, 3), &["latency-1KiB".into()]).into_iter().map(|c| c.name).collect();
        assert_eq!(picked, ["produce-1KiB-p1-x1-n3-rf3", "latency-1KiB-n3-rf3"]);
        // --replication-factor 1: no second set of RF=1 cases.
        assert_eq!(cluster_cases(3, 1).len(), 3 + 2 + 1 + 1);
        // A single node's cases are today's, acks=1.
        assert!(cases().iter().all(|c| c.replication.is_none() && c.acks() == "1"));
    }
}
