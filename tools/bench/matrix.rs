//! The scenario matrix: closed-loop throughput scenarios, then fixed-rate
//! (open-loop) latency scenarios at a percentage of a closed-loop scenario's
//! measured produce rate.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Scenario {
    /// Unique, file-name safe: "100B-none-p1-acks1", "100B-none-p1-acks1-rate50".
    pub name: String,
    pub record_bytes: usize,
    pub compression: String,
    pub partitions: i32,
    /// Durable: the topic is created with flush.messages=1 (every ack waits
    /// for fdatasync) and produced with acks=all; otherwise acks=1.
    pub durable: bool,
    /// Fixed-rate scenario: this percentage of `base`'s measured produce msgs/s.
    pub rate_pct: Option<f64>,
    /// The closed-loop scenario whose measured maximum sets the rate.
    pub base: Option<String>,
}

impl Scenario {
    fn closed(record_bytes: usize, compression: &str, partitions: i32, durable: bool) -> Scenario {
        let name = format!(
            "{}-{compression}-p{partitions}-{}",
            size_name(record_bytes),
            if durable { "durable" } else { "acks1" }
        );
        Scenario {
            name,
            record_bytes,
            compression: compression.into(),
            partitions,
            durable,
            rate_pct: None,
            base: None,
        }
    }

    fn at_rate(base: &Scenario, pct: f64) -> Scenario {
        Scenario {
            name: format!("{}-rate{pct}", base.name),
            rate_pct: Some(pct),
            base: Some(base.name.clone()),
            ..base.clone()
        }
    }

    pub fn acks(&self) -> &'static str {
        if self.durable {
            "all"
        } else {
            "1"
        }
    }

    /// Scenarios of the same shape but different partition counts share a group
    /// (a line of the throughput-against-partitions plot).
    pub fn group(&self) -> String {
        format!(
            "{} {} {}",
            size_name(self.record_bytes),
            self.compression,
            if self.durable { "durable" } else { "acks1" }
        )
    }
}

pub fn size_name(bytes: usize) -> String {
    if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{}KiB", bytes / 1024)
    } else {
        format!("{bytes}B")
    }
}

/// `--quick`: 100 B and 1 KiB, none and lz4, 1 and 16 partitions, acks 1;
/// one fixed-rate scenario at 50% of the 100 B / 1 partition maximum.
pub fn quick() -> Vec<Scenario> {
    let mut v = Vec::new();
    for size in [100, 1024] {
        for comp in ["none", "lz4"] {
            for parts in [1, 16] {
                v.push(Scenario::closed(size, comp, parts, false));
            }
        }
    }
    let base = v[0].clone();
    v.push(Scenario::at_rate(&base, 50.0));
    v
}

/// The full matrix: 100 B, 1 KiB, 16 KiB; none, lz4, zstd; acks 1 and
/// durable; 1, 10, 100, 1000 partitions; then, per record size, fixed rates at
/// 10%, 50% and 80% of the uncompressed 1-partition acks-1 maximum.
pub fn full() -> Vec<Scenario> {
    let mut v = Vec::new();
    let sizes = [100, 1024, 16 * 1024];
    for size in sizes {
        for comp in ["none", "lz4", "zstd"] {
            for durable in [false, true] {
                for parts in [1, 10, 100, 1000] {
                    v.push(Scenario::closed(size, comp, parts, durable));
                }
            }
        }
    }
    for size in sizes {
        let base = Scenario::closed(size, "none", 1, false);
        for pct in [10.0, 50.0, 80.0] {
            v.push(Scenario::at_rate(&base, pct));
        }
    }
    v
}

/// Keeps the closed-loop scenarios whose name contains one of `only` (all when
/// empty), at most `limit` of them, and the fixed-rate scenarios that match
/// `only` too; a kept fixed-rate scenario brings its base along.
pub fn select(all: Vec<Scenario>, only: &[String], limit: Option<usize>) -> Vec<Scenario> {
    let matches = |s: &Scenario| only.is_empty() || only.iter().any(|o| s.name.contains(o.as_str()));
    let mut closed: Vec<Scenario> = all.iter().filter(|s| s.rate_pct.is_none() && matches(s)).cloned().collect();
    if let Some(n) = limit {
        closed.truncate(n);
    }
    let mut rated: Vec<Scenario> = all
        .iter()
        .filter(|s| s.rate_pct.is_some() && matches(s))
        .filter(|s| limit.is_none() || closed.iter().any(|c| Some(&c.name) == s.base.as_ref()))
        .cloned()
        .collect();
    for r in &rated {
        let base = r.base.as_ref().unwrap();
        if !closed.iter().any(|c| &c.name == base) {
            if let Some(b) = all.iter().find(|s| &s.name == base) {
                closed.push(b.clone());
            }
        }
    }
    closed.append(&mut rated);
    closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices() {
        let q = quick();
        assert_eq!(q.len(), 9);
        assert_eq!(q[8].base.as_deref(), Some("100B-none-p1-acks1"));
        let f = full();
        assert_eq!(f.len(), 3 * 3 * 2 * 4 + 9);
        let names: std::collections::HashSet<_> = f.iter().map(|s| &s.name).collect();
        assert_eq!(names.len(), f.len());
    }

    #[test]
    fn selection_keeps_bases() {
        let s = select(quick(), &[], Some(2));
        let names: Vec<_> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["100B-none-p1-acks1", "100B-none-p16-acks1", "100B-none-p1-acks1-rate50"]);
        let s = select(full(), &["16KiB-none-p1-acks1-rate".into()], None);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name, "16KiB-none-p1-acks1");
        let s = select(quick(), &[], Some(1)).len();
        assert_eq!(s, 2);
        let s = select(quick(), &["lz4".into()], Some(1));
        assert_eq!(s.len(), 1);
    }
}
