//! `corelog groups`: list, describe, reset the offsets of, and delete
//! consumer groups.
//!
//! Everything goes over the Kafka protocol (Metadata, ListGroups,
//! FindCoordinator, DescribeGroups, OffsetFetch, OffsetCommit, ListOffsets,
//! DeleteGroups), so the command works against any Kafka broker, not only
//! corelog. Group requests go to the group's coordinator; in corelog that is
//! the shard owning the group's `__consumer_offsets` partition.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;

use corelog_client::requests::{list_offsets_request, topic_name};
use corelog_client::{Broker, Cluster, Connection, KafkaError};

use super::{ConnectArgs, REQUEST_TIMEOUT_MS};

/// ListOffsets special timestamps.
const TIMESTAMP_EARLIEST: i64 = -2;
const TIMESTAMP_LATEST: i64 = -1;
/// FindCoordinator key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// Error codes after which the coordinator is looked up again.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const GROUP_ID_NOT_FOUND: i16 = 69;
/// How often a coordinator is looked up before giving up, and the pauses.
const COORDINATOR_ATTEMPTS: u32 = 8;
const RETRY_DELAY_MIN: Duration = Duration::from_millis(100);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(1);
/// A "simple" commit: not from a group member.
const GENERATION_NONE: i32 = -1;
/// Group states in which offsets may be reset (no members).
const INACTIVE_STATES: [&str; 2] = ["Empty", "Dead"];
/// Printed for a value that is absent or unknown.
const NONE: &str = "-";

/// Manage consumer groups over the Kafka protocol (works against any Kafka broker).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GroupsCommand {
    /// List groups (asks every broker): GROUP STATE PROTOCOL-TYPE, sorted
    List {
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Describe a group: state, members, assignments, committed offsets and lag
    Describe {
        /// Group id
        group: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Reset a group's committed offsets (dry run unless --execute); the group must have no members
    ResetOffsets {
        /// Group id
        group: String,
        /// Topic to reset, TOPIC or TOPIC:0,1,2 for some partitions only (repeatable)
        #[arg(long = "topic", value_name = "TOPIC[:PARTITIONS]", required = true, value_parser = parse_topic_spec)]
        topics: Vec<TopicSpec>,
        #[command(flatten)]
        target: ResetTargetArgs,
        /// Commit the new offsets (without it, only print the plan)
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Delete groups (only groups without members)
    Delete {
        /// Group ids
        #[arg(required = true)]
        groups: Vec<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Where `reset-offsets` moves the offsets: exactly one of these.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ResetTargetArgs {
    /// To the log start offset
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset
    #[arg(long)]
    to_latest: bool,
    /// To this offset (kept within the log start and end offsets)
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    to_offset: Option<i64>,
    /// To the first offset at or after this time: YYYY-MM-DDTHH:MM:SS[.sss][Z|+hh:mm] (local time without a zone)
    #[arg(long, value_name = "DATETIME", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
}

/// A reset target, from `ResetTargetArgs`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the epoch.
    Datetime(i64),
}

impl ResetTargetArgs {
    fn target(&self) -> anyhow::Result<ResetTarget> {
        match (self.to_earliest, self.to_latest, self.to_offset, self.to_datetime) {
            (true, false, None, None) => Ok(ResetTarget::Earliest),
            (false, true, None, None) => Ok(ResetTarget::Latest),
            (false, false, Some(offset), None) => Ok(ResetTarget::Offset(offset)),
            (false, false, None, Some(ms)) => Ok(ResetTarget::Datetime(ms)),
            _ => bail!("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime"),
        }
    }
}

/// A `--topic` argument: a topic, and optionally some of its partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub topic: String,
    /// `None`: every partition.
    pub partitions: Option<Vec<i32>>,
}

/// Parses `--topic T` or `--topic T:0,1,2`.
pub fn parse_topic_spec(arg: &str) -> Result<TopicSpec, String> {
    let (topic, partitions) = match arg.rsplit_once(':') {
        None => (arg, None),
        Some((topic, list)) => {
            let mut partitions = Vec::new();
            for part in list.split(',') {
                let part = part.trim();
                let index: i32 = part.parse().map_err(|_| format!("bad partition {part:?} in {arg:?}"))?;
                if index < 0 {
                    return Err(format!("negative partition {index} in {arg:?}"));
                }
                if !partitions.contains(&index) {
                    partitions.push(index);
                }
            }
            partitions.sort_unstable();
            (topic, Some(partitions))
        }
    };
    if topic.is_empty() {
        return Err(format!("no topic name in {arg:?}"));
    }
    Ok(TopicSpec { topic: topic.to_string(), partitions })
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+hh:mm|-hh:mm|+hhmm|+hh]` into
/// milliseconds since the epoch. Without a zone the time is local, as with
/// kafka-consumer-groups.sh.
pub fn parse_datetime(arg: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("bad datetime {arg:?} ({why}); expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+hh:mm]");
    let s = arg.trim();
    if s.len() < 19 || !s.is_char_boundary(19) {
        return Err(bad("too short"));
    }
    let (date_time, rest) = s.split_at(19);
    let b = date_time.as_bytes();
    let separators_ok = b[4] == b'-' && b[7] == b'-' && (b[10] == b'T' || b[10] == b't' || b[10] == b' ');
    if !separators_ok || b[13] != b':' || b[16] != b':' {
        return Err(bad("layout"));
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let digits = &date_time[range];
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad("not a number"));
        }
        digits.parse::<i64>().map_err(|_| bad("not a number"))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad("no such time"));
    }
    // Fraction of a second: milliseconds, further digits ignored.
    let mut rest = rest;
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("empty fraction"));
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().map_err(|_| bad("fraction"))?;
        rest = &fraction[digits..];
    }
    let wall = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second;
    let seconds = match rest {
        "" => local_to_utc(year, month, day, hour, minute, second).ok_or_else(|| bad("not a local time"))?,
        "Z" | "z" => wall,
        zone => wall - zone_offset_seconds(zone).ok_or_else(|| bad("zone"))?,
    };
    Ok(seconds * 1000 + millis)
}

/// `+hh:mm`, `-hh:mm`, `+hhmm` or `+hh` as seconds east of UTC.
fn zone_offset_seconds(zone: &str) -> Option<i64> {
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let (hours, minutes) = match digits.len() {
        2 => (digits, "00"),
        4 => digits.split_at(2),
        5 if digits.as_bytes()[2] == b':' => (&digits[..2], &digits[3..]),
        _ => return None,
    };
    if !(hours.bytes().chain(minutes.bytes())).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes): (i64, i64) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 18 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of a local wall-clock time (the TZ of the process).
fn local_to_utc(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> Option<i64> {
    // SAFETY: `tm` is a plain C struct, zero is a valid value for every field;
    // mktime only reads and normalises it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = i32::try_from(year - 1900).ok()?;
    tm.tm_mon = i32::try_from(month - 1).ok()?;
    tm.tm_mday = i32::try_from(day).ok()?;
    tm.tm_hour = i32::try_from(hour).ok()?;
    tm.tm_min = i32::try_from(minute).ok()?;
    tm.tm_sec = i32::try_from(second).ok()?;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a valid, exclusively borrowed `struct tm`.
    let seconds = unsafe { libc::mktime(&mut tm) };
    (seconds != -1 || (year, month, day, hour, minute, second) == (1969, 12, 31, 23, 59, 59)).then_some(seconds)
}

/// Runs one `corelog groups` command. Errors carry Kafka's error names,
/// e.g. `NON_EMPTY_GROUP`.
pub fn run(command: GroupsCommand) -> anyhow::Result<()> {
    match command {
        GroupsCommand::List { connect } => list(&mut connect.cluster()?),
        GroupsCommand::Describe { group, connect } => describe(&mut connect.cluster()?, &group),
        GroupsCommand::ResetOffsets { group, topics, target, execute, connect } => {
            let target = target.target()?;
            let mut cluster = connect.cluster()?;
            reset_offsets(&mut cluster, &group, &topics, target, execute)
        }
        GroupsCommand::Delete { groups, connect } => delete(&mut connect.cluster()?, &groups),
    }
}

// ------------------------------------------------------------ formatting ---

/// Lines of a table: columns padded to their widest cell, two spaces apart,
/// no trailing spaces. Empty cells print as `-` so that every line splits
/// into the same number of words.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let cell = |s: &str| if s.is_empty() { NONE.to_string() } else { s.to_string() };
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell(value).chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, value) in cells.into_iter().enumerate() {
            out.push_str(&value);
            if i < last {
                let pad = widths[i].saturating_sub(value.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out
    };
    let mut lines = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    lines.extend(rows.iter().map(|row| line(row.iter().map(|v| cell(v)).collect())));
    lines
}

fn opt_string(value: Option<i64>) -> String {
    value.map_or_else(|| NONE.to_string(), |v| v.to_string())
}

/// An assignment as `topic(0,1),other(2)`, or `-` when empty.
pub fn assignment_string(assignment: &[(String, Vec<i32>)]) -> String {
    let parts: Vec<String> = assignment
        .iter()
        .map(|(topic, partitions)| {
            let ids: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic}({})", ids.join(","))
        })
        .collect();
    match parts.is_empty() {
        true => NONE.to_string(),
        false => parts.join(","),
    }
}

// ------------------------------------------------------ consumer protocol ---

/// The partitions of a ConsumerProtocolAssignment (v0-v3: version i16,
/// [topic string, [partition i32]], user_data bytes), sorted. Empty bytes
/// (a member between rebalance phases) are an empty assignment.
pub fn decode_assignment(bytes: &[u8]) -> anyhow::Result<Assignment> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = Bytes::copy_from_slice(bytes);
    let version = read_i16(&mut buf)?;
    if version < 0 {
        bail!("assignment version {version}");
    }
    let topics = read_array_len(&mut buf)?;
    let mut assignment = Vec::with_capacity(topics.min(1024));
    for _ in 0..topics {
        let topic = read_string(&mut buf)?;
        let count = read_array_len(&mut buf)?;
        let mut partitions = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            partitions.push(read_i32(&mut buf)?);
        }
        partitions.sort_unstable();
        assignment.push((topic, partitions));
    }
    // user_data (nullable bytes) follows; it is optional in what clients
    // send, and later versions may add fields: only check it is well formed.
    if buf.remaining() >= 4 {
        let len = buf.get_i32();
        if len > 0 && buf.remaining() < len as usize {
            bail!("user data of {len} bytes is truncated");
        }
    }
    assignment.sort();
    Ok(assignment)
}

fn need(buf: &Bytes, n: usize) -> anyhow::Result<()> {
    match buf.remaining() >= n {
        true => Ok(()),
        false => bail!("assignment truncated"),
    }
}

fn read_i16(buf: &mut Bytes) -> anyhow::Result<i16> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}

fn read_i32(buf: &mut Bytes) -> anyhow::Result<i32> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

/// An array length; null (-1) reads as empty.
fn read_array_len(buf: &mut Bytes) -> anyhow::Result<usize> {
    let len = read_i32(buf)?;
    if len < -1 {
        bail!("array length {len}");
    }
    Ok(len.max(0) as usize)
}

fn read_string(buf: &mut Bytes) -> anyhow::Result<String> {
    let len = read_i16(buf)?;
    if len < 0 {
        bail!("null topic name");
    }
    need(buf, len as usize)?;
    let raw = buf.split_to(len as usize);
    String::from_utf8(raw.to_vec()).map_err(|_| anyhow!("topic name is not UTF-8"))
}

// ----------------------------------------------------------- coordinator ---

fn kafka_code(error: &anyhow::Error) -> Option<i16> {
    error.chain().find_map(|cause| cause.downcast_ref::<KafkaError>()).map(|e| e.code)
}

fn is_coordinator_error(error: &anyhow::Error) -> bool {
    matches!(kafka_code(error), Some(COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR))
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

/// The node id of `group`'s coordinator, which becomes reachable through
/// `cluster.node`.
fn find_coordinator(cluster: &mut Cluster, group: &str) -> anyhow::Result<Broker> {
    let connection = cluster.bootstrap();
    let version = connection.version(ApiKey::FindCoordinator)?;
    let mut request = FindCoordinatorRequest::default();
    request.key_type = KEY_TYPE_GROUP;
    // v4 batches keys; earlier versions take one key.
    if version >= 4 {
        request.coordinator_keys = vec![StrBytes::from_string(group.to_string())];
    } else {
        request.key = StrBytes::from_string(group.to_string());
    }
    let response = connection.send_at(&request, version).context("FindCoordinator")?;
    let coordinator = if version >= 4 {
        let found = response.coordinators.iter().find(|c| c.key.as_str() == group);
        let c = found.ok_or_else(|| anyhow!("FindCoordinator response has no answer for {group}"))?;
        KafkaError::check(c.error_code, c.error_message.as_ref())?;
        Broker { node_id: c.node_id.0, host: c.host.to_string(), port: c.port }
    } else {
        KafkaError::check(response.error_code, response.error_message.as_ref())?;
        Broker { node_id: response.node_id.0, host: response.host.to_string(), port: response.port }
    };
    cluster.add_broker(coordinator.clone());
    Ok(coordinator)
}

/// Runs `op` against `group`'s coordinator. When the coordinator is not
/// known yet, loading, or moved (COORDINATOR_NOT_AVAILABLE,
/// COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR), looks it up again after a
/// brief pause, a few times.
fn on_coordinator<T>(
    cluster: &mut Cluster,
    group: &str,
    mut op: impl FnMut(&mut Cluster, &Broker) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut delay = RETRY_DELAY_MIN;
    let mut attempt = 1;
    loop {
        let result = find_coordinator(cluster, group).and_then(|coordinator| op(cluster, &coordinator));
        match result {
            Err(error) if attempt < COORDINATOR_ATTEMPTS && is_coordinator_error(&error) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(RETRY_DELAY_MAX);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// DescribeGroups for one group, on its coordinator.
fn describe_group(connection: &mut Connection, group: &str) -> anyhow::Result<DescribedGroup> {
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![group_id(group)];
    let response = connection.send(request).context("DescribeGroups")?;
    let described = response.groups.into_iter().find(|g| g.group_id.0.as_str() == group);
    let described = described.ok_or_else(|| anyhow!("DescribeGroups response has no answer for {group}"))?;
    KafkaError::check(described.error_code, described.error_message.as_ref())?;
    Ok(described)
}

/// Committed offsets of every partition of `group`, by (topic, partition).
fn fetch_committed(connection: &mut Connection, group: &str) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let version = connection.version(ApiKey::OffsetFetch)?;
    let mut request = OffsetFetchRequest::default();
    // v8 batches groups; null topics (v2+) means every topic.
    if version >= 8 {
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = group_id(group);
        g.topics = None;
        request.groups = vec![g];
    } else {
        request.group_id = group_id(group);
        request.topics = None;
    }
    let response = connection.send_at(&request, version).context("OffsetFetch")?;
    let mut committed = BTreeMap::new();
    let mut note = |topic: &str, partition: i32, offset: i64, error_code: i16| match KafkaError::check(error_code, None)
    {
        Ok(()) if offset >= 0 => {
            committed.insert((topic.to_string(), partition), offset);
        }
        Ok(()) => {}
        Err(error) => eprintln!("Warning: committed offset of {topic} partition {partition}: {error}"),
    };
    if version >= 8 {
        let found = response.groups.iter().find(|g| g.group_id.0.as_str() == group);
        let g = found.ok_or_else(|| anyhow!("OffsetFetch response has no answer for {group}"))?;
        KafkaError::check(g.error_code, None)?;
        for topic in &g.topics {
            for p in &topic.partitions {
                note(topic.name.0.as_str(), p.partition_index, p.committed_offset, p.error_code);
            }
        }
    } else {
        KafkaError::check(response.error_code, None)?;
        for topic in &response.topics {
            for p in &topic.partitions {
                note(topic.name.0.as_str(), p.partition_index, p.committed_offset, p.error_code);
            }
        }
    }
    Ok(committed)
}

// --------------------------------------------------------------- offsets ---

type Partition = (String, i32);

/// Assigned partitions by topic, as a member's assignment lists them.
type Assignment = Vec<(String, Vec<i32>)>;

/// Partition -> leader of each topic, or why the topic has none.
type TopicLeaders = BTreeMap<String, Result<BTreeMap<i32, i32>, KafkaError>>;

/// Leaders of the partitions of `topics`, by topic: partition -> leader id
/// (-1 without leader). A topic the broker does not know maps to its error.
fn partition_leaders(cluster: &mut Cluster, topics: &[String]) -> anyhow::Result<TopicLeaders> {
    let mut leaders = BTreeMap::new();
    if topics.is_empty() {
        return Ok(leaders);
    }
    let metadata = cluster.metadata(Some(topics))?;
    for topic in metadata.topics {
        let name = topic.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        let partitions = KafkaError::check(topic.error_code, None)
            .map(|()| topic.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect());
        leaders.insert(name, partitions);
    }
    Ok(leaders)
}

/// ListOffsets at `timestamp` for `partitions`, one request per leader.
/// Offsets are -1 where the broker found none (a timestamp past the end).
fn list_offsets(
    cluster: &mut Cluster,
    partitions: &BTreeMap<Partition, i32>,
    timestamp: i64,
) -> BTreeMap<Partition, Result<i64, String>> {
    let mut by_leader: BTreeMap<i32, Vec<&Partition>> = BTreeMap::new();
    let mut offsets = BTreeMap::new();
    for (partition, leader) in partitions {
        match *leader {
            leader if leader >= 0 => by_leader.entry(leader).or_default().push(partition),
            _ => {
                offsets.insert(partition.clone(), Err("no leader".to_string()));
            }
        }
    }
    for (leader, wanted) in by_leader {
        let request = list_offsets_request(wanted.iter().copied(), timestamp, REQUEST_TIMEOUT_MS);
        let answer = cluster.node(leader).and_then(|c| c.send(request)).context("ListOffsets");
        match answer {
            Err(error) => {
                for p in wanted {
                    offsets.insert(p.clone(), Err(format!("broker {leader}: {error:#}")));
                }
            }
            Ok(response) => {
                let mut got: HashMap<Partition, Result<i64, String>> = HashMap::new();
                for topic in response.topics {
                    for p in topic.partitions {
                        let offset =
                            KafkaError::check(p.error_code, None).map(|()| p.offset).map_err(|e| e.to_string());
                        got.insert((topic.name.0.to_string(), p.partition_index), offset);
                    }
                }
                for p in wanted {
                    let offset = got.remove(p).unwrap_or_else(|| Err("not in the ListOffsets response".to_string()));
                    offsets.insert(p.clone(), offset);
                }
            }
        }
    }
    offsets
}

/// Log end offsets of `partitions`; `None` where unknown (with a warning).
fn log_end_offsets(cluster: &mut Cluster, partitions: &BTreeSet<Partition>) -> BTreeMap<Partition, Option<i64>> {
    let topics: Vec<String> = partitions.iter().map(|(t, _)| t.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let leaders = match partition_leaders(cluster, &topics) {
        Ok(leaders) => leaders,
        Err(error) => {
            eprintln!("Warning: Metadata: {error:#}");
            return partitions.iter().map(|p| (p.clone(), None)).collect();
        }
    };
    let mut wanted = BTreeMap::new();
    for p in partitions {
        let leader = match leaders.get(&p.0) {
            Some(Ok(topic)) => topic.get(&p.1).copied(),
            Some(Err(error)) => {
                eprintln!("Warning: {}: {error}", p.0);
                continue;
            }
            None => None,
        };
        wanted.insert(p.clone(), leader.unwrap_or(-1));
    }
    let offsets = list_offsets(cluster, &wanted, TIMESTAMP_LATEST);
    partitions
        .iter()
        .map(|p| {
            let end = match offsets.get(p) {
                Some(Ok(offset)) => Some(*offset),
                Some(Err(reason)) => {
                    eprintln!("Warning: log end offset of {} partition {}: {reason}", p.0, p.1);
                    None
                }
                None => None,
            };
            (p.clone(), end)
        })
        .collect()
}

// ------------------------------------------------------------------ list ---

fn list(cluster: &mut Cluster) -> anyhow::Result<()> {
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

fn describe(cluster: &mut Cluster, group: &str) -> anyhow::Result<()> {
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
        return Err(
            KafkaError { code: GROUP_ID_NOT_FOUND, message: Some(format!("group {group} does not exist")) }.into()
        );
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

// --------------------------------------------------------- reset-offsets ---

/// The partitions `specs` name, checked against the topics' metadata, with
/// their leaders.
fn resolve_partitions(cluster: &mut Cluster, specs: &[TopicSpec]) -> anyhow::Result<BTreeMap<Partition, i32>> {
    let topics: Vec<String> = specs.iter().map(|s| s.topic.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let leaders = partition_leaders(cluster, &topics)?;
    let mut resolved = BTreeMap::new();
    for spec in specs {
        let topic = match leaders.get(&spec.topic) {
            Some(Ok(topic)) => topic,
            Some(Err(error)) => bail!("{}: {error}", spec.topic),
            None => bail!("{}: UNKNOWN_TOPIC_OR_PARTITION", spec.topic),
        };
        if topic.is_empty() {
            bail!("{}: UNKNOWN_TOPIC_OR_PARTITION: the topic has no partitions", spec.topic);
        }
        let indexes: Vec<i32> = match &spec.partitions {
            None => topic.keys().copied().collect(),
            Some(wanted) => wanted.clone(),
        };
        for index in indexes {
            let Some(leader) = topic.get(&index) else {
                bail!(
                    "{} partition {index}: UNKNOWN_TOPIC_OR_PARTITION (the topic has {} partitions)",
                    spec.topic,
                    topic.len()
                );
            };
            resolved.insert((spec.topic.clone(), index), *leader);
        }
    }
    Ok(resolved)
}

/// The new offset of each partition.
fn plan_offsets(
    cluster: &mut Cluster,
    partitions: &BTreeMap<Partition, i32>,
    target: ResetTarget,
) -> anyhow::Result<BTreeMap<Partition, i64>> {
    let mut asked = |timestamp| -> anyhow::Result<BTreeMap<Partition, i64>> {
        let mut offsets = BTreeMap::new();
        for (p, offset) in list_offsets(cluster, partitions, timestamp) {
            let offset = offset.map_err(|why| anyhow!("{} partition {}: {why}", p.0, p.1))?;
            offsets.insert(p, offset);
        }
        Ok(offsets)
    };
    match target {
        ResetTarget::Earliest => asked(TIMESTAMP_EARLIEST),
        ResetTarget::Latest => asked(TIMESTAMP_LATEST),
        ResetTarget::Offset(offset) => {
            let start = asked(TIMESTAMP_EARLIEST)?;
            let end = asked(TIMESTAMP_LATEST)?;
            Ok(start
                .into_iter()
                .map(|(p, start)| {
                    let end = end.get(&p).copied().unwrap_or(i64::MAX);
                    let clamped = clamp_offset(offset, start, end);
                    if clamped != offset {
                        eprintln!(
                            "Warning: {} partition {}: offset {offset} is outside {start}..={end}; using {clamped}",
                            p.0, p.1
                        );
                    }
                    (p, clamped)
                })
                .collect())
        }
        ResetTarget::Datetime(ms) => {
            let at = asked(ms)?;
            let end = asked(TIMESTAMP_LATEST)?;
            Ok(at
                .into_iter()
                .map(|(p, offset)| {
                    // No record at or after the time: the log end.
                    let offset = if offset < 0 { end.get(&p).copied().unwrap_or(offset) } else { offset };
                    (p, offset)
                })
                .collect())
        }
    }
}

/// `--to-offset`, kept within the log, as Kafka does.
pub fn clamp_offset(offset: i64, start: i64, end: i64) -> i64 {
    offset.max(start).min(end.max(start))
}

fn commit_offsets(connection: &mut Connection, group: &str, offsets: &BTreeMap<Partition, i64>) -> anyhow::Result<()> {
    let version = connection.version(ApiKey::OffsetCommit)?;
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, index), offset) in offsets {
        let mut partition = OffsetCommitRequestPartition::default();
        partition.partition_index = *index;
        partition.committed_offset = *offset;
        partition.committed_leader_epoch = -1;
        partition.committed_metadata = Some(StrBytes::from_static_str(""));
        by_topic.entry(topic).or_default().push(partition);
    }
    let mut request = OffsetCommitRequest::default();
    request.group_id = group_id(group);
    request.generation_id_or_member_epoch = GENERATION_NONE;
    request.member_id = StrBytes::from_static_str("");
    request.group_instance_id = None;
    request.retention_time_ms = -1;
    request.topics = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = OffsetCommitRequestTopic::default();
            topic.name = topic_name(name);
            topic.partitions = partitions;
            topic
        })
        .collect();
    let response = connection.send_at(&request, version).context("OffsetCommit")?;
    let mut failures = Vec::new();
    let mut coordinator_error = None;
    for topic in &response.topics {
        for p in &topic.partitions {
            if let Err(error) = KafkaError::check(p.error_code, None) {
                if matches!(error.code, COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR) {
                    coordinator_error = Some(error.clone());
                }
                failures.push(format!("{} partition {}: {error}", topic.name.0, p.partition_index));
            }
        }
    }
    if let Some(error) = coordinator_error {
        return Err(anyhow::Error::new(error).context(failures.join("\n")));
    }
    match failures.len() {
        0 => Ok(()),
        _ => bail!("{}", failures.join("\n")),
    }
}

/// Refuses to touch a group that has members.
fn check_inactive(described: &DescribedGroup, group: &str) -> anyhow::Result<()> {
    let state = described.group_state.to_string();
    if INACTIVE_STATES.contains(&state.as_str()) {
        return Ok(());
    }
    bail!("group {group} has active members; stop them first (state: {state})")
}

fn reset_offsets(
    cluster: &mut Cluster,
    group: &str,
    specs: &[TopicSpec],
    target: ResetTarget,
    execute: bool,
) -> anyhow::Result<()> {
    let partitions = resolve_partitions(cluster, specs)?;
    let plan = on_coordinator(cluster, group, |cluster, coordinator| {
        check_inactive(&describe_group(cluster.node(coordinator.node_id)?, group)?, group)?;
        let plan = plan_offsets(cluster, &partitions, target)?;
        if execute {
            commit_offsets(cluster.node(coordinator.node_id)?, group, &plan)?;
        }
        Ok(plan)
    })?;
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|((topic, index), offset)| vec![topic.clone(), index.to_string(), offset.to_string()])
        .collect();
    for line in table(&["TOPIC", "PARTITION", "NEW-OFFSET"], &rows) {
        println!("{line}");
    }
    if !execute {
        eprintln!("Dry run: nothing was committed. Add --execute to commit these offsets for group {group}.");
    }
    Ok(())
}

// ---------------------------------------------------------------- delete ---

fn delete_group(cluster: &mut Cluster, group: &str) -> anyhow::Result<()> {
    on_coordinator(cluster, group, |cluster, coordinator| {
        let mut request = DeleteGroupsRequest::default();
        request.groups_names = vec![group_id(group)];
        let response = cluster.node(coordinator.node_id)?.send(request).context("DeleteGroups")?;
        let result = response.results.iter().find(|r| r.group_id.0.as_str() == group);
        let result = result.ok_or_else(|| anyhow!("DeleteGroups response has no answer for {group}"))?;
        Ok(KafkaError::check(result.error_code, None)?)
    })
}

fn delete(cluster: &mut Cluster, groups: &[String]) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for group in groups {
        match delete_group(cluster, group) {
            Ok(()) => println!("Deleted group {group}."),
            Err(error) => failures.push(format!("{group}: {error:#}")),
        }
    }
    match failures.len() {
        0 => Ok(()),
        _ => bail!("{}", failures.join("\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: GroupsCommand,
    }

    fn parse(args: &[&str]) -> Result<GroupsCommand, clap::Error> {
        let args = std::iter::once("groups").chain(args.iter().copied());
        TestCli::try_parse_from(args).map(|cli| cli.command)
    }

    /// A ConsumerProtocolAssignment as Kafka clients write it.
    fn assignment(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        buf.put_i32(topics.len() as i32);
        for (topic, partitions) in topics {
            buf.put_i16(topic.len() as i16);
            buf.put_slice(topic.as_bytes());
            buf.put_i32(partitions.len() as i32);
            for p in *partitions {
                buf.put_i32(*p);
            }
        }
        match user_data {
            None => buf.put_i32(-1),
            Some(data) => {
                buf.put_i32(data.len() as i32);
                buf.put_slice(data);
            }
        }
        buf.to_vec()
    }

    fn owned(pairs: &[(&str, &[i32])]) -> Vec<(String, Vec<i32>)> {
        pairs.iter().map(|(t, p)| (t.to_string(), p.to_vec())).collect()
    }

    #[test]
    fn assignment_decodes_every_version() {
        for version in 0..=3 {
            let bytes = assignment(version, &[("orders", &[2, 0]), ("audit", &[1])], Some(b"xyz"));
            assert_eq!(decode_assignment(&bytes).unwrap(), owned(&[("audit", &[1]), ("orders", &[0, 2])]));
        }
        let null_user_data = assignment(1, &[("t", &[0])], None);
        assert_eq!(decode_assignment(&null_user_data).unwrap(), owned(&[("t", &[0])]));
        // Some clients leave user_data off entirely; later versions may append fields.
        let mut short = assignment(0, &[("t", &[3])], None);
        short.truncate(short.len() - 4);
        assert_eq!(decode_assignment(&short).unwrap(), owned(&[("t", &[3])]));
        let mut longer = assignment(4, &[("t", &[3])], Some(b""));
        longer.extend_from_slice(&[0, 0, 0, 7]);
        assert_eq!(decode_assignment(&longer).unwrap(), owned(&[("t", &[3])]));
        assert!(decode_assignment(&[]).unwrap().is_empty());
        assert!(decode_assignment(&assignment(0, &[], None)).unwrap().is_empty());
    }

    #[test]
    fn malformed_assignments_are_errors() {
        let good = assignment(0, &[("orders", &[0, 1])], Some(b"abc"));
        for cut in [1, 3, 5, 9, 14, 17, good.len() - 1] {
            assert!(decode_assignment(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_assignment(&[0xff, 0xff, 0, 0, 0, 0]).is_err(), "negative version");
        let mut negative_count = assignment(0, &[], None);
        negative_count[2..6].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_assignment(&negative_count).is_err());
        let mut huge = assignment(0, &[("t", &[])], None);
        huge[9..13].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_assignment(&huge).is_err());
    }

    #[test]
    fn datetimes_parse_with_zones_and_fractions() {
        // 2026-11-21T10:00:00Z
        let base = 1_795_255_200_000;
        assert_eq!(parse_datetime("2026-11-21T10:00:00Z"), Ok(base));
        assert_eq!(parse_datetime("2026-11-21T10:00:00.123Z"), Ok(base + 123));
        assert_eq!(parse_datetime("2026-11-21T10:00:00.5Z"), Ok(base + 500));
        assert_eq!(parse_datetime("2026-11-21T10:00:00.123456789Z"), Ok(base + 123));
        assert_eq!(parse_datetime("2026-11-21T12:30:00+02:30"), Ok(base));
        assert_eq!(parse_datetime("2026-11-21T12:30:00+0230"), Ok(base));
        assert_eq!(parse_datetime("2026-11-21T05:00:00-05:00"), Ok(base));
        assert_eq!(parse_datetime("2026-11-21T11:00:00.250+01"), Ok(base + 250));
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_datetime("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        assert_eq!(parse_datetime("1969-12-31T23:59:59Z"), Ok(-1000));
    }

    #[test]
    fn datetimes_without_zone_are_local_time() {
        let local = parse_datetime("2026-11-21T10:00:00").unwrap();
        let utc = parse_datetime("2026-11-21T10:00:00Z").unwrap();
        // Whatever the machine's zone, it is within a day of UTC.
        assert!((local - utc).abs() <= 26 * 3_600_000, "{local} vs {utc}");
        assert_eq!(parse_datetime("2026-11-21T10:00:00.042").unwrap(), local + 42);
    }

    #[test]
    fn bad_datetimes_are_refused() {
        for bad in [
            "",
            "2026-11-21",
            "2026-11-21 10:00",
            "2026/11/21T10:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T10:60:00Z",
            "2026-11-21T10:00:00.Z",
            "2026-11-21T10:00:00+25:00",
            "2026-11-21T10:00:00+02:3",
            "2026-11-21T10:00:00 UTC",
            "2026-1a-21T10:00:00Z",
            "2026-11-21T10:00:00Zjunk",
            "+026-11-21T10:00:00Z",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_datetime("2026-11-21T10:00:00+0a:00").unwrap_err().contains("YYYY-MM-DDTHH:MM:SS"));
    }

    #[test]
    fn topic_specs_parse() {
        assert_eq!(parse_topic_spec("orders"), Ok(TopicSpec { topic: "orders".into(), partitions: None }));
        assert_eq!(
            parse_topic_spec("orders:2,0,1,0"),
            Ok(TopicSpec { topic: "orders".into(), partitions: Some(vec![0, 1, 2]) })
        );
        assert_eq!(parse_topic_spec("a:b:3"), Ok(TopicSpec { topic: "a:b".into(), partitions: Some(vec![3]) }));
        for bad in ["", ":1", "t:", "t:x", "t:1,", "t:-1", "t:1,,2"] {
            assert!(parse_topic_spec(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn reset_offsets_arguments() {
        let GroupsCommand::ResetOffsets { group, topics, target, execute, .. } =
            parse(&["reset-offsets", "g", "--topic", "a", "--topic", "b:0,1", "--to-offset", "5", "--execute"])
                .unwrap()
        else {
            panic!("not reset-offsets");
        };
        assert_eq!(group, "g");
        assert_eq!(topics.len(), 2);
        assert_eq!(topics[1].partitions, Some(vec![0, 1]));
        assert_eq!(target.target().unwrap(), ResetTarget::Offset(5));
        assert!(execute);

        let target_of = |args: &[&str]| {
            let mut all = vec!["reset-offsets", "g", "--topic", "a"];
            all.extend_from_slice(args);
            match parse(&all) {
                Ok(GroupsCommand::ResetOffsets { target, execute, .. }) => Ok((target.target().unwrap(), execute)),
                Ok(_) => panic!("not reset-offsets"),
                Err(error) => Err(error),
            }
        };
        assert_eq!(target_of(&["--to-earliest"]).unwrap(), (ResetTarget::Earliest, false));
        assert_eq!(target_of(&["--to-latest"]).unwrap(), (ResetTarget::Latest, false));
        assert_eq!(
            target_of(&["--to-datetime", "1970-01-01T00:00:01.5Z"]).unwrap(),
            (ResetTarget::Datetime(1500), false)
        );
        assert!(target_of(&[]).is_err(), "a target is required");
        assert!(target_of(&["--to-earliest", "--to-latest"]).is_err(), "only one target");
        assert!(target_of(&["--to-offset", "-1"]).is_err());
        assert!(target_of(&["--to-datetime", "yesterday"]).is_err());
        assert!(parse(&["reset-offsets", "g", "--to-earliest"]).is_err(), "--topic is required");
        assert!(parse(&["reset-offsets", "g", "--topic", "a:x", "--to-earliest"]).is_err());
    }

    #[test]
    fn list_describe_delete_parse() {
        assert!(matches!(parse(&["list"]).unwrap(), GroupsCommand::List { .. }));
        let GroupsCommand::Describe { group, connect } =
            parse(&["describe", "g", "--bootstrap-server", "h:1"]).unwrap()
        else {
            panic!("not describe");
        };
        assert_eq!((group.as_str(), connect.bootstrap_server.as_str()), ("g", "h:1"));
        assert!(parse(&["describe"]).is_err());
        let GroupsCommand::Delete { groups, .. } = parse(&["delete", "a", "b"]).unwrap() else {
            panic!("not delete");
        };
        assert_eq!(groups, ["a", "b"]);
        assert!(parse(&["delete"]).is_err());
    }

    #[test]
    fn tables_align_and_fill_empty_cells() {
        let rows = vec![
            vec!["orders".to_string(), "0".to_string(), String::new()],
            vec!["a".to_string(), "10".to_string(), "x".to_string()],
        ];
        assert_eq!(
            table(&["TOPIC", "PARTITION", "NEW-OFFSET"], &rows),
            ["TOPIC   PARTITION  NEW-OFFSET", "orders  0          -", "a       10         x"]
        );
        assert_eq!(table(&["A", "B"], &[]), ["A  B"]);
    }

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
    fn assignments_print_compactly() {
        assert_eq!(assignment_string(&owned(&[("a", &[0, 1]), ("b", &[2])])), "a(0,1),b(2)");
        assert_eq!(assignment_string(&[]), "-");
    }

    #[test]
    fn to_offset_is_kept_within_the_log() {
        assert_eq!(clamp_offset(5, 0, 10), 5);
        assert_eq!(clamp_offset(50, 0, 10), 10);
        assert_eq!(clamp_offset(2, 4, 10), 4);
        assert_eq!(clamp_offset(3, 4, 4), 4);
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

    #[test]
    fn requests_encode_at_every_supported_version() {
        use kafka_protocol::protocol::Encodable;
        let plan: BTreeMap<Partition, i32> = [(("t".to_string(), 0), 1), (("t".to_string(), 1), 2)].into();
        let wanted: Vec<&Partition> = plan.keys().collect();
        let request = list_offsets_request(wanted.iter().copied(), 1234, REQUEST_TIMEOUT_MS);
        assert_eq!(request.topics.len(), 1);
        for version in 1..=10 {
            request.encode(&mut BytesMut::new(), version).unwrap();
        }
    }

    #[test]
    fn kafka_codes_are_found_through_context() {
        let error = anyhow::Error::new(KafkaError { code: NOT_COORDINATOR, message: None }).context("DescribeGroups");
        assert!(is_coordinator_error(&error));
        let other = anyhow::Error::new(KafkaError { code: 68, message: None });
        assert!(!is_coordinator_error(&other));
        assert_eq!(other.to_string(), "NON_EMPTY_GROUP");
        assert!(!is_coordinator_error(&anyhow!("plain")));
    }
}
