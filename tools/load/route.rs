//! Where a producer sends each of its partitions, and how it follows a
//! leader change: on a lost connection or a leader error
//! (NOT_LEADER_OR_FOLLOWER and the other errors on which Kafka's producer
//! refreshes its metadata) it asks any broker that answers for the topic's
//! leaders again, as every Kafka client does, and carries on with the new
//! ones. Also the timeline (`--timeline`): every acknowledgement and error
//! per partition with the wall-clock time and the broker that sent it, from
//! which a failover's gap is read.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::{anyhow, Result};
use corelog_client::{error_name, Connection};

use crate::cluster::{self, Topology};
use crate::versions::Versions;

/// Pause between two metadata refreshes while a partition has no reachable
/// leader (Kafka's retry.backoff.ms default).
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Produce error codes after which the partition's leader is looked up again
/// (Kafka's InvalidMetadataException family): UNKNOWN_TOPIC_OR_PARTITION,
/// LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR,
/// FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH.
const STALE_LEADER_CODES: [i16; 6] = [3, 5, 6, 56, 74, 76];

pub fn is_stale_leader(code: i16) -> bool {
    STALE_LEADER_CODES.contains(&code)
}

/// One leader and the partitions of this producer it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The leader's broker id (-1 in sink mode).
    pub broker_id: i32,
    /// "host:port" (empty in sink mode).
    pub addr: String,
    pub partitions: Vec<i32>,
}

/// `mine` grouped by leader, in the order of `mine`; partitions without a
/// known leader (-1, or a broker id Metadata did not name) are returned apart.
pub fn routes(topology: &Topology, mine: &[i32]) -> (Vec<Route>, Vec<i32>) {
    let mut routes: Vec<Route> = Vec::new();
    let mut leaderless = Vec::new();
    for &p in mine {
        let leader = topology.leaders.get(p as usize).copied().unwrap_or(-1);
        let Some(addr) = topology.brokers.get(&leader) else {
            leaderless.push(p);
            continue;
        };
        match routes.iter_mut().find(|r| r.broker_id == leader) {
            Some(r) => r.partitions.push(p),
            None => routes.push(Route { broker_id: leader, addr: addr.clone(), partitions: vec![p] }),
        }
    }
    (routes, leaderless)
}

/// Asks the cluster for the topic's leaders again: the broker of the last
/// answer if it still answers, else any broker known so far, else the
/// bootstrap servers.
#[derive(Debug, Clone)]
pub struct Router {
    pub bootstrap: String,
    pub client_id: String,
    pub topic: String,
    pub versions: Versions,
    /// Every broker address seen in a Metadata answer so far.
    pub known: BTreeMap<i32, String>,
}

impl Router {
    pub fn refresh(&mut self, client: &mut Option<Connection>) -> Result<Topology> {
        if let Some(c) = client.as_mut() {
            match cluster::refresh(c, &self.versions, &self.topic) {
                Ok(t) => return Ok(self.learn(t)),
                Err(_) => *client = None,
            }
        }
        let mut candidates: Vec<String> = self.known.values().cloned().collect();
        candidates.extend(self.bootstrap.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()));
        candidates.dedup();
        let mut last = anyhow!("no broker to ask");
        for addr in candidates {
            let answer = crate::versions::connect(&addr, &self.client_id)
                .and_then(|mut c| cluster::refresh(&mut c, &self.versions, &self.topic).map(|t| (c, t)));
            match answer {
                Ok((c, t)) => {
                    *client = Some(c);
                    return Ok(self.learn(t));
                }
                Err(e) => last = e.context(format!("asking {addr} for metadata")),
            }
        }
        Err(last)
    }

    fn learn(&mut self, t: Topology) -> Topology {
        self.known.extend(t.brokers.iter().map(|(id, a)| (*id, a.clone())));
        t
    }
}

/// What happened to a partition at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The leader acknowledged a batch.
    Ack,
    /// The leader answered the batch with this Kafka error code.
    Error(i16),
    /// The connection to the leader broke (or could not be opened) with
    /// the partition's batches unanswered on it.
    Disconnected,
    /// Metadata named no reachable leader for the partition.
    NoLeader,
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Ack => f.write_str("ack"),
            EventKind::Error(code) => f.write_str(&error_name(*code)),
            EventKind::Disconnected => f.write_str("disconnected"),
            EventKind::NoLeader => f.write_str("no-leader"),
        }
    }
}

/// One line of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Wall-clock time, microseconds since the Unix epoch.
    pub unix_us: u64,
    pub partition: i32,
    /// The broker that answered (or was being talked to); -1 if none.
    pub broker_id: i32,
    pub kind: EventKind,
}

/// The header line of a timeline file; the harness reads the columns by it.
pub const TIMELINE_HEADER: &str = "unix_us\tpartition\tbroker\tevent";

/// A timeline file: the header, then one tab-separated line per event in time order.
pub fn timeline_text(events: &mut [Event]) -> String {
    events.sort_by_key(|e| e.unix_us);
    let mut s = String::with_capacity(32 * (events.len() + 1));
    s.push_str(TIMELINE_HEADER);
    s.push('\n');
    for e in events.iter() {
        s.push_str(&format!("{}\t{}\t{}\t{}\n", e.unix_us, e.partition, e.broker_id, e.kind));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(leaders: Vec<i32>) -> Topology {
        Topology {
            versions: Versions { produce: 9, fetch: 12, list_offsets: 7, metadata: 12, create_topics: 7 },
            brokers: BTreeMap::from([(1000, "127.0.0.1:9092".into()), (2000, "127.0.0.2:9092".into())]),
            leaders,
        }
    }

    #[test]
    fn partitions_are_grouped_by_leader_and_leaderless_ones_set_apart() {
        let t = topology(vec![1000, 2000, 1000, -1, 3000]);
        let (routes, leaderless) = routes(&t, &[0, 1, 2, 3, 4]);
        assert_eq!(
            routes,
            vec![
                Route { broker_id: 1000, addr: "127.0.0.1:9092".into(), partitions: vec![0, 2] },
                Route { broker_id: 2000, addr: "127.0.0.2:9092".into(), partitions: vec![1] },
            ]
        );
        // -1 during an election; 3000 is a broker Metadata no longer names (fenced).
        assert_eq!(leaderless, vec![3, 4]);
    }

    #[test]
    fn leader_errors_trigger_a_refresh_and_others_do_not() {
        assert!(is_stale_leader(6), "NOT_LEADER_OR_FOLLOWER");
        assert!(is_stale_leader(74), "FENCED_LEADER_EPOCH");
        assert!(!is_stale_leader(19), "NOT_ENOUGH_REPLICAS is the leader's own answer");
        assert!(!is_stale_leader(0));
    }

    #[test]
    fn timeline_lines_are_sorted_and_tab_separated() {
        let mut events = vec![
            Event { unix_us: 20, partition: 0, broker_id: 2, kind: EventKind::Ack },
            Event { unix_us: 10, partition: 0, broker_id: 1, kind: EventKind::Disconnected },
            Event { unix_us: 15, partition: 0, broker_id: 1, kind: EventKind::Error(6) },
        ];
        let text = timeline_text(&mut events);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], TIMELINE_HEADER);
        assert_eq!(lines[1], "10\t0\t1\tdisconnected");
        assert_eq!(lines[2], "15\t0\t1\tNOT_LEADER_OR_FOLLOWER");
        assert_eq!(lines[3], "20\t0\t2\tack");
    }
}
