//! The nodes of a cluster: the controller quorum's voters (static, from
//! `controller.quorum.voters`) and the registration each node leaves in
//! the metadata log when it starts (KRaft's RegisterBrokerRecord).

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use super::{shard_port, NodeId, ReplicaPlacement, ShardId};

/// One voter of the controller quorum: `id@host:port`, Kafka's
/// `controller.quorum.voters` entry. Every voter is also a broker node
/// (Kafka's combined mode: `process.roles=broker,controller`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: NodeId,
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VotersError {
    #[error("controller.quorum.voters entry '{0}' is not id@host:port")]
    Syntax(String),
    #[error("controller.quorum.voters names node {0} twice")]
    Duplicate(NodeId),
    #[error("controller.quorum.voters does not name this node ({0}): every node of a corelog cluster is a voter")]
    NotAVoter(NodeId),
}

/// Parses `1@127.0.0.1:9093,2@127.0.0.2:9093,...` (an empty string: no quorum).
pub fn parse_voters(list: &str) -> Result<Vec<Voter>, VotersError> {
    let mut voters: Vec<Voter> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let syntax = || VotersError::Syntax(entry.to_string());
        let (id, addr) = entry.split_once('@').ok_or_else(syntax)?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(syntax)?;
        let id = NodeId(id.parse().map_err(|_| syntax())?);
        let port = port.parse().map_err(|_| syntax())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(syntax());
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(VotersError::Duplicate(id));
        }
        voters.push(Voter { id, host: host.to_string(), port });
    }
    Ok(voters)
}

/// A node as the cluster knows it: where its brokers listen and whether it
/// may lead partitions. `epoch` is the broker epoch KRaft gives a
/// registration (the metadata log index it was committed at): a restarted
/// node registers again with a higher one, so requests from its previous
/// life are told apart. A node is registered fenced and unfenced once it has
/// caught up with the metadata log; it is fenced again when its heartbeats
/// stop for `broker.session.timeout.ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRegistration {
    pub id: NodeId,
    /// Chosen at each start of the process (Kafka's incarnation id).
    pub incarnation: Uuid,
    pub epoch: i64,
    /// Advertised host; shard s listens on `port + s`.
    pub host: String,
    pub port: u16,
    pub shards: u16,
    pub fenced: bool,
    /// A port in the shards' range that they skip (the controller listener's).
    #[serde(default)]
    pub skipped_port: Option<u16>,
}

impl NodeRegistration {
    /// Shard `shard` of this node, if it has one.
    pub fn replica(&self, shard: ShardId) -> Option<ReplicaPlacement> {
        (shard.0 < self.shards).then_some(ReplicaPlacement::new(self.id, shard))
    }

    /// The port shard `shard` listens on.
    pub fn port_of(&self, shard: ShardId) -> u16 {
        shard_port(self.port, shard, self.skipped_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_as_kafka_writes_them() {
        let voters = parse_voters("1@127.0.0.1:9093, 2@127.0.0.2:9093,3@[::1]:19093").unwrap();
        assert_eq!(voters.len(), 3);
        assert_eq!(voters[1], Voter { id: NodeId(2), host: "127.0.0.2".into(), port: 9093 });
        assert_eq!(voters[2].host, "::1");
        assert_eq!(parse_voters("").unwrap(), vec![]);
        for bad in ["1@127.0.0.1", "x@h:1", "1@:9093", "1@h:99999", "127.0.0.1:9093"] {
            assert!(matches!(parse_voters(bad), Err(VotersError::Syntax(_))), "{bad}");
        }
        assert_eq!(parse_voters("1@a:1,1@b:1"), Err(VotersError::Duplicate(NodeId(1))));
    }
}
