//! The cases of `corelog-bench peer`: what runs on each broker, by name.

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
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Case {
    pub name: String,
    pub kind: CaseKind,
}

impl Case {
    fn throughput(record_bytes: usize, partitions: i32, producers: usize) -> Case {
        Case {
            name: format!("produce-{}-p{partitions}-x{producers}", short_size(record_bytes)),
            kind: CaseKind::Throughput { record_bytes, partitions, producers },
        }
    }

    /// "100 B, 16 partitions, 2 producers".
    pub fn describe(&self) -> String {
        match &self.kind {
            CaseKind::Throughput { record_bytes, partitions, producers } => format!(
                "{}, {}, {producers} producer{}",
                size_label(*record_bytes),
                partitions_label(*partitions),
                if *producers == 1 { "" } else { "s" }
            ),
            CaseKind::Latency { record_bytes, .. } | CaseKind::ProducerPerf { record_bytes } => {
                format!("{}, 1 partition", size_label(*record_bytes))
            }
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
        });
    }
    v.push(Case { name: "producer-perf-100B".into(), kind: CaseKind::ProducerPerf { record_bytes: 100 } });
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
}
