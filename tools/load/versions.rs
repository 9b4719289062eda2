//! What corelog-load asks of the client codec (corelog-client): the versions
//! of each API this tool speaks, and its blocking connections.

use std::time::Duration;

use anyhow::{Context as _, Result};
use corelog_client::{ConnectOptions, Connection};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{StrBytes, VersionRange};

/// Lowest and highest version of each API this tool speaks. Produce 13 and
/// Fetch 13 name topics by id only, so the tool stops below them.
const VERSION_CAPS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
    // Consumer groups (--group): non-flexible FindCoordinator (one key),
    // JoinGroup from v4 (MEMBER_ID_REQUIRED), OffsetFetch below v8 (one group).
    (ApiKey::FindCoordinator, 1, 3),
    (ApiKey::JoinGroup, 4, 9),
    (ApiKey::SyncGroup, 3, 5),
    (ApiKey::Heartbeat, 3, 4),
    (ApiKey::OffsetFetch, 2, 7),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::LeaveGroup, 3, 5),
];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A control-plane answer (CreateTopics, JoinGroup) may take a rebalance.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The version of each API to use with this cluster.
#[derive(Debug, Clone, Copy)]
pub struct Versions {
    pub produce: i16,
    pub fetch: i16,
    pub list_offsets: i16,
    pub metadata: i16,
    pub create_topics: i16,
}

/// The versions of the consumer group APIs to use with this cluster.
#[derive(Debug, Clone, Copy)]
pub struct GroupVersions {
    pub find_coordinator: i16,
    pub join_group: i16,
    pub sync_group: i16,
    pub heartbeat: i16,
    pub offset_fetch: i16,
    pub offset_commit: i16,
    pub leave_group: i16,
}

/// A blocking connection for the control plane, its API versions negotiated.
pub fn connect(addr: &str, client_id: &str) -> Result<Connection> {
    let options = ConnectOptions {
        client_id: StrBytes::from_string(client_id.to_string()),
        software_name: StrBytes::from_static_str("corelog-load"),
        software_version: StrBytes::from_static_str(env!("CARGO_PKG_VERSION")),
        connect_timeout: CONNECT_TIMEOUT,
        io_timeout: Some(ANSWER_TIMEOUT),
    };
    Ok(Connection::connect(addr, &options)?)
}

/// The highest version of `key` both this tool and the broker speak.
fn pick(connection: &Connection, key: ApiKey) -> Result<i16> {
    let &(_, min, max) = VERSION_CAPS.iter().find(|(k, _, _)| *k == key).expect("every API sent has a cap");
    Ok(connection.version_within(key, VersionRange { min, max })?)
}

pub fn versions(connection: &Connection) -> Result<Versions> {
    Ok(Versions {
        produce: pick(connection, ApiKey::Produce)?,
        fetch: pick(connection, ApiKey::Fetch)?,
        list_offsets: pick(connection, ApiKey::ListOffsets)?,
        metadata: pick(connection, ApiKey::Metadata)?,
        create_topics: pick(connection, ApiKey::CreateTopics).unwrap_or(-1),
    })
}

pub fn group_versions(connection: &Connection) -> Result<GroupVersions> {
    Ok(GroupVersions {
        find_coordinator: pick(connection, ApiKey::FindCoordinator)?,
        join_group: pick(connection, ApiKey::JoinGroup)?,
        sync_group: pick(connection, ApiKey::SyncGroup)?,
        heartbeat: pick(connection, ApiKey::Heartbeat)?,
        offset_fetch: pick(connection, ApiKey::OffsetFetch)?,
        offset_commit: pick(connection, ApiKey::OffsetCommit)?,
        leave_group: pick(connection, ApiKey::LeaveGroup)?,
    })
}

/// Opens `n` connections spread over `addrs`, each after one ApiVersions
/// exchange, so the broker holds `n` served connections that then stay idle.
pub fn open_idle(addrs: &[&str], n: usize, client_id: &str) -> Result<Vec<Connection>> {
    (0..n)
        .map(|i| {
            connect(addrs[i % addrs.len()], client_id)
                .with_context(|| format!("idle connection {i} of {n} (is the open-file limit high enough?)"))
        })
        .collect()
}
