//! `corelog groups list` and `corelog groups describe`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::ListGroupsRequest;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use corelog_client::{Broker, Cluster, KafkaError};

use super::assignment::{assignment_string, decode_assignment, Assignment};
use super::coordinator::{describe_group, fetch_committed, on_coordinator};
use super::offsets::log_end_offsets;
use super::Partition;
use crate::cli::table::{table, NONE};

pub(super) fn list(cluster: &mut Cluster) -> anyhow::Result<()> {
    let (rows, failures) = list_rows(cluster)?;
    for line in table(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows) {
        println!("{line}");
    }
    match failures.len() {
        0 => Ok(()),
        _ => bail!("{}", failures.join("\n")),
    }
}

/// ListGroups on every broker, merged and sorted: rows of GROUP STATE
/// PROTOCOL-TYPE, and the brokers that failed.
fn list_rows(cluster: &mut Cluster) -> anyhow::Result<(Vec<Vec<String>>, Vec<String>)> {
    cluster.metadata(Some(&[]))?;
    let mut groups: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut failures = Vec::new();
    for broker in cluster.brokers() {
        let answer = cluster.node(broker.node_id).and_then(|c| c.send(ListGroupsRequest::default()));
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                failures.push(format!("ListGroups to broker {}: {error:#}", broker.node_id));
                continue;
            }
        };
        if let Err(error) = KafkaError::check(response.error_code, None) {
            failures.push(format!("ListGroups to broker {}: {error}", broker.node_id));
            continue;
        }
        for g in response.groups {
            // group_state is only in v4 and later; it decodes empty before.
            let state = g.group_state.to_string();
            groups.insert(g.group_id.0.to_string(), (state, g.protocol_type.to_string()));
        }
    }
    let rows = groups.into_iter().map(|(group, (state, protocol_type))| vec![group, state, protocol_type]).collect();
    Ok((rows, failures))
}

// -------------------------------------------------------------- describe ---

/// Who owns a partition: consumer id, host, client id.
#[derive(Debug, Clone, PartialEq)]
struct Owner {
    member_id: String,
    host: String,
    client_id: String,
}

/// One row of the offsets table.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetRow {
    pub topic: String,
    pub partition: i32,
    pub current: Option<i64>,
    pub log_end: Option<i64>,
    owner: Option<Owner>,
}

impl OffsetRow {
    /// Log end offset minus committed offset, when both are known.
    pub fn lag(&self) -> Option<i64> {
        Some((self.log_end? - self.current?).max(0))
    }

    fn cells(&self) -> Vec<String> {
        let owner = |f: fn(&Owner) -> &String| self.owner.as_ref().map_or(String::new(), |o| f(o).clone());
        vec![
            self.topic.clone(),
            self.partition.to_string(),
            opt_string(self.current),
            opt_string(self.log_end),
            opt_string(self.lag()),
            owner(|o| &o.member_id),
            owner(|o| &o.host),
            owner(|o| &o.client_id),
        ]
    }
}

const OFFSET_HEADERS: [&str; 8] =
    ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"];
const MEMBER_HEADERS: [&str; 6] =
    ["CONSUMER-ID", "GROUP-INSTANCE-ID", "CLIENT-ID", "HOST", "#PARTITIONS", "ASSIGNMENT"];

/// The member's assignment, if the group speaks the consumer protocol.
fn member_assignment(protocol_type: &str, member: &DescribedGroupMember) -> Result<Assignment, String> {
    if protocol_type != "consumer" && !(protocol_type.is_empty() && member.member_assignment.is_empty()) {
        return Err(format!("<{} bytes of {protocol_type} protocol>", member.member_assignment.len()));
    }
    decode_assignment(&member.member_assignment)
        .map_err(|error| format!("<undecodable {} bytes: {error}>", member.member_assignment.len()))
}

/// What `describe` prints.
struct GroupDescription {
    described: DescribedGroup,
    coordinator: Broker,
    assignments: Vec<(DescribedGroupMember, Result<Assignment, String>)>,
    rows: Vec<OffsetRow>,
}

pub(super) fn describe(cluster: &mut Cluster, group: &str) -> anyhow::Result<()> {
    for line in describe_lines(&describe_group_offsets(cluster, group)?) {
        println!("{line}");
    }
    Ok(())
}

fn describe_group_offsets(cluster: &mut Cluster, group: &str) -> anyhow::Result<GroupDescription> {
    let (described, committed, coordinator) = on_coordinator(cluster, group, |cluster, coordinator| {
        let connection = cluster.node(coordinator.node_id)?;
        let described = describe_group(connection, group)?;
        let committed = fetch_committed(connection, group)?;
        Ok((described, committed, coordinator.clone()))
    })?;
    let state = described.group_state.to_string();
    if (state == "Dead" || state.is_empty()) && described.members.is_empty() && committed.is_empty() {
        return Err(KafkaError {
            code: ResponseError::GroupIdNotFound.code(),
            message: Some(format!("group {group} does not exist")),
        }
        .into());
    }
    let protocol_type = described.protocol_type.to_string();
    let mut owners: BTreeMap<Partition, Owner> = BTreeMap::new();
    let mut assignments = Vec::new();
    for member in &described.members {
        let assignment = member_assignment(&protocol_type, member);
        if let Ok(partitions) = &assignment {
            let owner = Owner {
                member_id: member.member_id.to_string(),
                host: member.client_host.to_string(),
                client_id: member.client_id.to_string(),
            };
            for (topic, ids) in partitions {
                for id in ids {
                    owners.insert((topic.clone(), *id), owner.clone());
                }
            }
        }
        assignments.push((member.clone(), assignment));
    }
    let partitions: BTreeSet<Partition> = committed.keys().chain(owners.keys()).cloned().collect();
    let ends = log_end_offsets(cluster, &partitions);
    let rows = partitions
        .into_iter()
        .map(|p| OffsetRow {
            current: committed.get(&p).copied(),
            log_end: ends.get(&p).copied().flatten(),
            owner: owners.get(&p).cloned(),
            topic: p.0.clone(),
            partition: p.1,
        })
        .collect();
    Ok(GroupDescription { described, coordinator, assignments, rows })
}

fn describe_lines(d: &GroupDescription) -> Vec<String> {
    let g = &d.described;
    let or_none = |s: &StrBytes| if s.is_empty() { NONE.to_string() } else { s.to_string() };
    let mut lines = vec![format!(
        "Group: {}  State: {}  ProtocolType: {}  Protocol: {}  Coordinator: {} ({})  Members: {}",
        g.group_id.0,
        or_none(&g.group_state),
        or_none(&g.protocol_type),
        or_none(&g.protocol_data),
        d.coordinator.node_id,
        d.coordinator.addr(),
        g.members.len(),
    )];
    lines.push(String::new());
    if d.assignments.is_empty() {
        lines.push(format!("Group {} has no active members.", g.group_id.0));
    } else {
        let mut members: Vec<Vec<String>> = d
            .assignments
            .iter()
            .map(|(m, assignment)| {
                let (count, shown) = match assignment {
                    Ok(a) => (a.iter().map(|(_, p)| p.len()).sum::<usize>().to_string(), assignment_string(a)),
                    Err(why) => (NONE.to_string(), why.replace(' ', "_")),
                };
                vec![
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()).unwrap_or_default(),
                    m.client_id.to_string(),
                    m.client_host.to_string(),
                    count,
                    shown,
                ]
            })
            .collect();
        members.sort();
        lines.extend(table(&MEMBER_HEADERS, &members));
    }
    lines.push(String::new());
    if d.rows.is_empty() {
        lines.push(format!("Group {} has no committed offsets and no assigned partitions.", g.group_id.0));
    } else {
        let rows: Vec<Vec<String>> = d.rows.iter().map(OffsetRow::cells).collect();
        lines.extend(table(&OFFSET_HEADERS, &rows));
    }
    lines
}

fn opt_string(value: Option<i64>) -> String {
    value.map_or_else(|| NONE.to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    use crate::cli::groups::assignment::tests::{assignment, owned};
    use crate::cli::groups::coordinator::group_id;

    #[test]
    fn offset_rows_show_lag_and_owner() {
        let mut row = OffsetRow { topic: "t".into(), partition: 1, current: Some(10), log_end: Some(25), owner: None };
        assert_eq!(row.lag(), Some(15));
        assert_eq!(row.cells(), ["t", "1", "10", "25", "15", "", "", ""]);
        row.owner = Some(Owner { member_id: "m-1".into(), host: "/127.0.0.1".into(), client_id: "c".into() });
        row.current = None;
        assert_eq!(row.lag(), None);
        assert_eq!(row.cells(), ["t", "1", "-", "25", "-", "m-1", "/127.0.0.1", "c"]);
        row.current = Some(30);
        row.log_end = None;
        assert_eq!(row.cells()[2..5], ["30", "-", "-"]);
        // A committed offset past a truncated log shows no negative lag.
        row.log_end = Some(20);
        assert_eq!(row.lag(), Some(0));
    }

    #[test]
    fn describe_prints_header_members_and_offsets() {
        let mut described = DescribedGroup::default();
        described.group_id = group_id("g");
        described.group_state = StrBytes::from_static_str("Stable");
        described.protocol_type = StrBytes::from_static_str("consumer");
        described.protocol_data = StrBytes::from_static_str("range");
        let mut member = DescribedGroupMember::default();
        member.member_id = StrBytes::from_static_str("m-1");
        member.client_id = StrBytes::from_static_str("rdkafka");
        member.client_host = StrBytes::from_static_str("/127.0.0.1");
        member.member_assignment = Bytes::from(assignment(0, &[("t", &[0, 1])], None));
        described.members = vec![member.clone()];
        let decoded = member_assignment("consumer", &member);
        assert_eq!(decoded, Ok(owned(&[("t", &[0, 1])])));
        let owner = Owner { member_id: "m-1".into(), host: "/127.0.0.1".into(), client_id: "rdkafka".into() };
        let d = GroupDescription {
            described,
            coordinator: Broker { node_id: 1, host: "127.0.0.1".into(), port: 9093 },
            assignments: vec![(member, decoded)],
            rows: vec![OffsetRow {
                topic: "t".into(),
                partition: 0,
                current: Some(10),
                log_end: Some(12),
                owner: Some(owner),
            }],
        };
        let lines = describe_lines(&d);
        assert_eq!(
            lines[0],
            "Group: g  State: Stable  ProtocolType: consumer  Protocol: range  Coordinator: 1 (127.0.0.1:9093)  Members: 1"
        );
        assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), MEMBER_HEADERS);
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["m-1", "-", "rdkafka", "/127.0.0.1", "2", "t(0,1)"]
        );
        assert_eq!(lines[5].split_whitespace().collect::<Vec<_>>(), OFFSET_HEADERS);
        assert_eq!(
            lines[6].split_whitespace().collect::<Vec<_>>(),
            ["t", "0", "10", "12", "2", "m-1", "/127.0.0.1", "rdkafka"]
        );
        let other = member_assignment("connect", &d.assignments[0].0).unwrap_err();
        assert!(other.starts_with("<"), "{other}");
    }
}
