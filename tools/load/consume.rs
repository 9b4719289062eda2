//! A consumer worker: assigned partitions or a consumer group's assignment
//! (`--group`), one non-blocking connection per leader with one Fetch
//! outstanding on each, as Kafka's clients do. Records are counted from batch headers only; end-to-end
//! latency comes from the send time the producer stamped into the batch (the
//! first value's microsecond stamp when uncompressed, else the header's
//! max_timestamp in milliseconds).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use bytes::BytesMut;
use corelog::model::batch::{BatchHeader, Compression, HEADER_BYTES};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::batch;
use crate::group::{Heartbeat, Membership};
use crate::produce::{StartGate, Times};
use crate::stats::{record, Live, Tally};
use corelog_client::{error_name, frame, poll, Pipelined};

#[derive(Debug, Clone)]
pub struct Plan {
    pub topic: String,
    /// (leader address, [(partition, start offset)]); empty in a group, which assigns them.
    pub lanes: Vec<(String, Vec<(i32, i64)>)>,
    pub group: Option<GroupPlan>,
    pub version: i16,
    pub fetch_max_bytes: i32,
    pub partition_max_bytes: i32,
    pub fetch_wait_ms: i32,
    pub client_id: String,
    /// Key plus value bytes of one record, for payload MB/s.
    pub record_payload_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct GroupPlan {
    pub bootstrap: String,
    pub group: String,
    /// Leader address of each partition.
    pub leaders: Vec<String>,
    /// Where a partition without a committed offset starts (auto.offset.reset).
    pub reset_to: Vec<i64>,
}

/// Set by the main thread once producers are done: the end offset of every
/// partition, which consumers read up to before they stop.
pub type Targets = Arc<Mutex<Option<Vec<i64>>>>;

struct Partition {
    index: i32,
    position: i64,
}

struct Lane {
    conn: Pipelined,
    partitions: Vec<Partition>,
    /// The Fetch being written (frame, bytes written) and the one awaiting its answer.
    writing: Option<(BytesMut, usize)>,
    awaiting: Option<i32>,
    /// Where the next Fetch starts its partition list. A broker fills a
    /// response in request order up to max_bytes, so, as Kafka's clients do,
    /// the list is rotated past the partitions that just got data, or the
    /// first partitions would take every response and the rest would starve.
    first: usize,
}

pub fn run(plan: Plan, gate: Arc<StartGate>, live: Arc<Live>, targets: Targets) -> Tally {
    let mut membership = None;
    let lanes = match &plan.group {
        None => connect_lanes(&plan.lanes),
        Some(g) => Membership::connect(&g.bootstrap, &plan.client_id, &g.group, &plan.topic, g.leaders.len() as i32)
            .and_then(|mut m| {
                let lanes = join(&mut m, g);
                membership = Some(m);
                lanes
            }),
    };
    let times = gate.ready();
    let mut c =
        Consumer { plan, times, live, targets, tally: Tally::new(), correlation_id: 0, target: None, membership };
    match lanes {
        Ok(lanes) => {
            if let Err(e) = c.run(lanes) {
                c.tally.failure = Some(format!("{e:#}"));
            }
        }
        Err(e) => c.tally.failure = Some(format!("{e:#}")),
    }
    c.tally
}

fn connect_lanes(plan: &[(String, Vec<(i32, i64)>)]) -> Result<Vec<Lane>> {
    plan.iter()
        .map(|(addr, partitions)| {
            Ok(Lane {
                conn: Pipelined::connect(addr)?,
                partitions: partitions.iter().map(|&(index, position)| Partition { index, position }).collect(),
                writing: None,
                awaiting: None,
                first: 0,
            })
        })
        .collect()
}

/// Joins the group and opens lanes for the assigned partitions at their committed offsets.
fn join(membership: &mut Membership, plan: &GroupPlan) -> Result<Vec<Lane>> {
    let assigned = membership.join()?;
    let committed = membership.committed(&assigned)?;
    let mut lanes: Vec<(String, Vec<(i32, i64)>)> = Vec::new();
    for (p, offset) in assigned.into_iter().zip(committed) {
        let (addr, start) = (&plan.leaders[p as usize], offset.unwrap_or(plan.reset_to[p as usize]));
        match lanes.iter_mut().find(|(a, _)| a == addr) {
            Some((_, items)) => items.push((p, start)),
            None => lanes.push((addr.clone(), vec![(p, start)])),
        }
    }
    connect_lanes(&lanes)
}

fn positions(lanes: &[Lane]) -> Vec<(i32, i64)> {
    lanes.iter().flat_map(|l| l.partitions.iter().map(|p| (p.index, p.position))).collect()
}

struct Consumer {
    plan: Plan,
    times: Times,
    live: Arc<Live>,
    targets: Targets,
    tally: Tally,
    correlation_id: i32,
    target: Option<Vec<i64>>,
    membership: Option<Membership>,
}

impl Consumer {
    fn run(&mut self, lanes: Vec<Lane>) -> Result<()> {
        let result = self.consume(lanes);
        // Commit where this member got to and leave, so a later run resumes there.
        match (result, self.membership.as_mut()) {
            (Ok(lanes), Some(m)) => {
                m.commit(&positions(&lanes))?;
                m.leave()
            }
            (result, _) => result.map(|_| ()),
        }
    }

    /// Consumes until stopped or at the targets; returns the lanes as they ended.
    fn consume(&mut self, mut lanes: Vec<Lane>) -> Result<Vec<Lane>> {
        let mut pollfds = Vec::with_capacity(lanes.len());
        loop {
            if let Some(m) = self.membership.as_mut() {
                if let Heartbeat::Rejoin = m.heartbeat_if_due()? {
                    m.commit(&positions(&lanes))?;
                    let plan = self.plan.group.as_ref().expect("a member has a group plan");
                    lanes = join(m, plan)?;
                    continue;
                }
                if m.commit_due() {
                    m.commit(&positions(&lanes))?;
                }
            }
            if self.target.is_none() {
                self.target = self.targets.lock().unwrap().clone();
            }
            let stop = self.times.stop.load(Ordering::Relaxed);
            let done = |lane: &Lane, target: &Option<Vec<i64>>| match target {
                Some(t) => lane.partitions.iter().all(|p| p.position >= t[p.index as usize]),
                None => false,
            };
            if stop || lanes.iter().all(|l| done(l, &self.target)) {
                if !stop {
                    return Ok(lanes);
                }
                // Stopped before reaching the end offsets: say how far off.
                if let Some(t) = &self.target {
                    let behind: i64 = lanes
                        .iter()
                        .flat_map(|l| l.partitions.iter())
                        .map(|p| (t[p.index as usize] - p.position).max(0))
                        .sum();
                    if behind > 0 {
                        self.tally.failure = Some(format!("stopped {behind} records short of the end offsets"));
                    }
                }
                return Ok(lanes);
            }
            for lane in lanes.iter_mut() {
                if lane.writing.is_none() && lane.awaiting.is_none() && !done(lane, &self.target) {
                    let frame = self.fetch_request(lane)?;
                    lane.writing = Some((frame, 0));
                }
                if let Some((frame, mut pos)) = lane.writing.take() {
                    while pos < frame.len() {
                        let n = lane.conn.write_some(&frame[pos..])?;
                        if n == 0 {
                            break;
                        }
                        pos += n;
                    }
                    if pos < frame.len() {
                        lane.writing = Some((frame, pos));
                    }
                }
            }
            pollfds.clear();
            for lane in &lanes {
                let mut events = libc::POLLIN;
                if lane.writing.is_some() {
                    events |= libc::POLLOUT;
                }
                pollfds.push(libc::pollfd { fd: lane.conn.fd(), events, revents: 0 });
            }
            poll(&mut pollfds, Some(Duration::from_millis(100)))?;
            for (i, lane) in lanes.iter_mut().enumerate() {
                if pollfds[i].revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
                    self.receive(lane)?;
                }
            }
        }
    }

    fn fetch_request(&mut self, lane: &mut Lane) -> Result<BytesMut> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let (tail, head) = lane.partitions.split_at(lane.first.min(lane.partitions.len()));
        let partitions = head
            .iter()
            .chain(tail)
            .filter(|p| self.target.as_ref().is_none_or(|t| p.position < t[p.index as usize]))
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p.index)
                    .with_fetch_offset(p.position)
                    .with_partition_max_bytes(self.plan.partition_max_bytes)
                    .with_current_leader_epoch(-1)
                    .with_log_start_offset(-1)
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.plan.fetch_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(self.plan.fetch_max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(self.plan.topic.clone())))
                .with_partitions(partitions)]);
        lane.awaiting = Some(self.correlation_id);
        Ok(frame::encode_request(
            &request,
            self.plan.version,
            self.correlation_id,
            &StrBytes::from_string(self.plan.client_id.clone()),
        )?)
    }

    fn receive(&mut self, lane: &mut Lane) -> Result<()> {
        let version = self.plan.version;
        let mut responses = Vec::new();
        let awaiting = &mut lane.awaiting;
        lane.conn.read_frames(|frame| -> Result<()> {
            let id = awaiting.take().ok_or_else(|| anyhow!("a Fetch response nobody asked for"))?;
            responses.push(frame::decode_response::<FetchResponse>(ApiKey::Fetch, version, id, frame)?);
            Ok(())
        })?;
        for response in responses {
            if response.error_code != 0 {
                self.error(format!("fetch {}", error_name(response.error_code)));
                std::thread::sleep(Duration::from_millis(10));
            }
            let now = Instant::now();
            let now_wall_us = self.times.clock.wall_us(now);
            for topic in &response.responses {
                for p in &topic.partitions {
                    if p.error_code != 0 {
                        self.error(format!("fetch {}", error_name(p.error_code)));
                        continue;
                    }
                    let Some(part) = lane.partitions.iter_mut().find(|x| x.index == p.partition_index) else {
                        continue;
                    };
                    let records = p.records.as_deref().unwrap_or_default();
                    let (messages, next) = count(records, part.position, |stamp_us| {
                        // Stamps from before this run (older data in the topic) say nothing.
                        let this_run =
                            stamp_us >= self.times.clock.origin_wall_us() && stamp_us <= now_wall_us + 1_000_000;
                        if this_run && self.times.measured(now) {
                            record(&mut self.tally.latency_us, now_wall_us.saturating_sub(stamp_us));
                        }
                    });
                    part.position = next;
                    if messages > 0 {
                        lane.first = (lane.first + 1) % lane.partitions.len();
                    }
                    let payload = messages * self.plan.record_payload_bytes;
                    self.tally.messages_total += messages;
                    self.tally.payload_bytes_total += payload;
                    self.tally.batch_bytes_total += records.len() as u64;
                    self.live.add(messages, payload);
                    if messages > 0 && now >= self.times.warmup_end {
                        self.tally.messages_measured += messages;
                        self.tally.payload_bytes_measured += payload;
                        self.tally.last_at = Some(now);
                    }
                }
            }
            self.tally.requests += 1;
        }
        Ok(())
    }

    fn error(&mut self, what: String) {
        self.tally.error(what, 1);
        self.live.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts the records at or after `position` in a Fetch response's records
/// (whole batches; a partial batch at the end is left for the next fetch) and
/// returns (records, next position). `on_stamp` gets each data batch's send
/// stamp in wall-clock microseconds.
fn count(mut records: &[u8], position: i64, mut on_stamp: impl FnMut(u64)) -> (u64, i64) {
    let mut messages = 0u64;
    let mut next = position;
    while records.len() >= HEADER_BYTES {
        let Ok(header) = BatchHeader::parse(records) else { break };
        let total = header.total_bytes();
        if total > records.len() {
            break;
        }
        let last = header.last_offset();
        if last >= next {
            if !header.is_control() {
                let first = header.base_offset.max(next);
                messages += (last - first + 1) as u64;
                let stamp = match header.compression() {
                    Compression::None => batch::first_value_stamp(&records[..total]),
                    _ => None,
                };
                on_stamp(stamp.unwrap_or((header.max_timestamp.max(0) as u64) * 1000));
            }
            next = last + 1;
        }
        records = &records[total..];
    }
    (messages, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build, stamp, Shape};
    use corelog::model::batch::set_base_offset;
    use corelog::model::compression::Codec;

    #[test]
    fn counts_whole_batches_from_position() {
        let shape = Shape { record_bytes: 16, key_bytes: 0, codec: Codec::None };
        let mut buf = Vec::new();
        for (base, n) in [(0i64, 5usize), (5, 3), (8, 4)] {
            let mut b = build(&shape, n, base as u64).unwrap();
            stamp(&mut b.bytes, b.stamp_at, 5_000_000 + base as u64);
            set_base_offset(&mut b.bytes, base);
            buf.extend_from_slice(&b.bytes);
        }
        let mut stamps = Vec::new();
        assert_eq!(count(&buf, 0, |s| stamps.push(s)), (12, 12));
        assert_eq!(stamps, vec![5_000_000, 5_000_005, 5_000_008]);
        // Starting inside the second batch counts only from the position.
        assert_eq!(count(&buf, 6, |_| {}), (6, 12));
        // A torn last batch is left for the next fetch.
        assert_eq!(count(&buf[..buf.len() - 3], 0, |_| {}), (8, 8));
    }
}
