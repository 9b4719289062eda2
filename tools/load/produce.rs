//! A producer worker: one thread, one non-blocking connection ("lane") per
//! partition leader it writes to, pipelined Produce requests up to
//! `max_in_flight` per connection, driven by `ppoll`.
//!
//! Requests are templates: each is encoded once with the kafka-protocol codec
//! around pre-built batches, and per send only the correlation id, the batch
//! timestamps and the CRCs are rewritten in place (see `batch`). The frame is
//! written straight from the template; nothing is allocated per message or
//! per request on this path.
//!
//! Latency is measured from each request's *intended* send time: in closed
//! loop that is when it was started, in open loop (`--rate`) the moment the
//! schedule said it was due, even if the producer could only send it later,
//! so a stalled broker shows up in the percentiles (no coordinated omission).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::batch::{self, Shape};
use crate::stats::{record, Clock, Live, Tally};
use corelog_client::{error_name, frame, poll, Pipelined};

/// How long in-flight requests may take to be answered once sending stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Sends started per lane before the loop looks at the clock again.
const BURST_MAX: usize = 64;
/// Broker-side timeout for acks (Produce timeout_ms).
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// Everything one producer needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: usize,
    pub topic: String,
    /// (leader address, partitions it leads that this producer writes); the
    /// address is empty in sink mode.
    pub lanes: Vec<(String, Vec<i32>)>,
    pub version: i16,
    pub acks: i16,
    pub shape: Shape,
    pub records_per_batch: usize,
    /// Partitions (one batch each) per request in closed loop.
    pub partitions_per_request: usize,
    pub max_in_flight: usize,
    /// Messages this producer must send (`--messages`), or None for a timed run.
    pub quota: Option<u64>,
    /// Messages per second for this producer (open loop), or None for closed loop.
    pub rate: Option<f64>,
    pub client_id: String,
    pub sink: bool,
}

/// The run's timeline, shared by all workers.
#[derive(Debug, Clone)]
pub struct Times {
    pub clock: Clock,
    pub start: Instant,
    pub warmup_end: Instant,
    /// End of a timed run; None when the run is bounded by `--messages`.
    pub end: Option<Instant>,
    pub stop: Arc<AtomicBool>,
}

impl Times {
    pub fn measured(&self, at: Instant) -> bool {
        at >= self.warmup_end && self.end.is_none_or(|end| at < end)
    }
}

/// Where one batch sits inside a template frame.
#[derive(Debug)]
struct Slot {
    at: usize,
    len: usize,
    stamp_at: Option<usize>,
}

/// An encoded Produce request ready to be stamped and sent again and again.
struct Template {
    frame: Vec<u8>,
    partitions: Vec<i32>,
    slots: Vec<Slot>,
    messages_per_batch: u64,
    payload_bytes_per_batch: u64,
    batch_bytes: u64,
}

impl Template {
    fn build(plan: &Plan, partitions: &[i32], records: usize) -> Result<Template> {
        let mut batches = Vec::with_capacity(partitions.len());
        let mut data = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let seed = ((plan.id as u64) << 32) ^ (p as u64) ^ ((records as u64) << 48);
            let b = batch::build(&plan.shape, records, seed).map_err(|e| anyhow!("building a batch: {e}"))?;
            data.push(PartitionProduceData::default().with_index(p).with_records(Some(Bytes::from(b.bytes.clone()))));
            batches.push(b);
        }
        let request = ProduceRequest::default()
            .with_acks(plan.acks)
            .with_timeout_ms(PRODUCE_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(plan.topic.clone())))
                .with_partition_data(data)]);
        let frame =
            frame::encode_request(&request, plan.version, 0, &StrBytes::from_string(plan.client_id.clone()))?.to_vec();
        // Find each batch in the encoded frame (in order), so it can be stamped in place.
        let mut slots = Vec::with_capacity(batches.len());
        let mut from = 0;
        for b in &batches {
            let at =
                find(&frame[from..], &b.bytes).ok_or_else(|| anyhow!("batch not found in its request frame"))? + from;
            slots.push(Slot { at, len: b.bytes.len(), stamp_at: b.stamp_at });
            from = at + b.bytes.len();
        }
        let record_payload = (plan.shape.record_bytes + plan.shape.key_bytes) as u64;
        Ok(Template {
            frame,
            partitions: partitions.to_vec(),
            slots,
            messages_per_batch: records as u64,
            payload_bytes_per_batch: records as u64 * record_payload,
            batch_bytes: batches.iter().map(|b| b.bytes.len() as u64).sum(),
        })
    }

    fn messages(&self) -> u64 {
        self.messages_per_batch * self.slots.len() as u64
    }

    #[inline]
    fn stamp(&mut self, correlation_id: i32, wall_us: u64) {
        self.frame[8..12].copy_from_slice(&correlation_id.to_be_bytes());
        for slot in &self.slots {
            batch::stamp(&mut self.frame[slot.at..slot.at + slot.len], slot.stamp_at, wall_us);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let head = &needle[..needle.len().min(32)];
    (0..=haystack.len().checked_sub(needle.len())?)
        .find(|&i| haystack[i..i + head.len()] == *head && haystack[i..i + needle.len()] == *needle)
}

/// A request on its way: what it carries and when it was meant to leave.
#[derive(Debug, Clone, Copy)]
struct Sent {
    correlation_id: i32,
    intended: Instant,
    batches: u32,
    messages_per_batch: u64,
    payload_bytes_per_batch: u64,
    batch_bytes: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Template(usize),
    Tail,
}

/// One connection to one partition leader.
struct Lane {
    conn: Option<Pipelined>,
    templates: Vec<Template>,
    next: usize,
    /// A one-off smaller request for the end of a `--messages` run.
    tail: Option<Template>,
    writing: Option<(Which, usize, Sent)>,
    in_flight: VecDeque<Sent>,
}

impl Lane {
    fn idle(&self) -> bool {
        self.writing.is_none() && self.in_flight.is_empty()
    }

    fn can_start(&self, max_in_flight: usize) -> bool {
        self.writing.is_none() && self.in_flight.len() < max_in_flight
    }

    fn frame(&self, which: Which) -> &[u8] {
        match which {
            Which::Template(i) => &self.templates[i].frame,
            Which::Tail => &self.tail.as_ref().unwrap().frame,
        }
    }
}

struct Producer {
    plan: Plan,
    times: Times,
    live: Arc<Live>,
    tally: Tally,
    lanes: Vec<Lane>,
    remaining: Option<u64>,
    correlation_id: i32,
}

/// Lets every worker finish its set-up (connections, pre-built batches)
/// before the clock starts, so set-up time is never charged to the run.
pub struct StartGate {
    barrier: Barrier,
    times: Mutex<Option<Times>>,
}

impl StartGate {
    /// A gate for `workers` threads plus the main thread.
    pub fn new(workers: usize) -> Arc<StartGate> {
        Arc::new(StartGate { barrier: Barrier::new(workers + 1), times: Mutex::new(None) })
    }

    /// Worker side: set-up is done; returns the run's timeline once it starts.
    pub fn ready(&self) -> Times {
        self.barrier.wait();
        self.barrier.wait();
        self.times.lock().unwrap().clone().expect("the main thread sets the times between the barriers")
    }

    /// Main side: waits for every worker's set-up, then starts the clock with `start_times`.
    pub fn open(&self, start_times: impl FnOnce() -> Times) -> Times {
        self.barrier.wait();
        let times = start_times();
        *self.times.lock().unwrap() = Some(times.clone());
        self.barrier.wait();
        times
    }
}

pub fn run(plan: Plan, gate: Arc<StartGate>, live: Arc<Live>) -> Tally {
    let lanes = build_lanes(&plan);
    let times = gate.ready();
    let mut tally = Tally::new();
    match lanes {
        Ok(lanes) => {
            let remaining = plan.quota;
            let mut p = Producer { plan, times, live, tally, lanes, remaining, correlation_id: 0 };
            if let Err(e) = p.run() {
                let unanswered: u64 = p.lanes.iter().map(|l| l.in_flight.len() as u64).sum();
                p.tally.failure = Some(format!("{e:#} ({unanswered} requests unanswered)"));
            }
            tally = p.tally;
        }
        Err(e) => tally.failure = Some(format!("{e:#}")),
    }
    tally
}

fn build_lanes(plan: &Plan) -> Result<Vec<Lane>> {
    let per_request = if plan.rate.is_some() { 1 } else { plan.partitions_per_request.max(1) };
    let mut lanes = Vec::new();
    for (addr, partitions) in &plan.lanes {
        let templates = partitions
            .chunks(per_request)
            .map(|group| Template::build(plan, group, plan.records_per_batch))
            .collect::<Result<Vec<_>>>()?;
        let conn = if plan.sink { None } else { Some(Pipelined::connect(addr)?) };
        lanes.push(Lane { conn, templates, next: 0, tail: None, writing: None, in_flight: VecDeque::new() });
    }
    Ok(lanes)
}

impl Producer {
    fn sending_over(&self, now: Instant) -> bool {
        self.remaining == Some(0)
            || self.times.stop.load(Ordering::Relaxed)
            || self.times.end.is_some_and(|end| now >= end)
    }

    fn run(&mut self) -> Result<()> {
        if self.lanes.is_empty() {
            return Ok(());
        }
        // Open loop: (lane, template) in round-robin order, one batch every `interval`.
        let order: Vec<(usize, usize)> = self
            .lanes
            .iter()
            .enumerate()
            .flat_map(|(l, lane)| (0..lane.templates.len()).map(move |t| (l, t)))
            .collect();
        let mut next_in_order = 0;
        let interval = self.plan.rate.map(|r| Duration::from_secs_f64(self.plan.records_per_batch as f64 / r));
        let mut next_due = self.times.start;
        let mut drain_deadline: Option<Instant> = None;
        let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(self.lanes.len());

        loop {
            let now = Instant::now();
            let over = self.sending_over(now);
            if !over {
                if let Some(interval) = interval {
                    while next_due <= now && self.remaining != Some(0) {
                        let (l, t) = order[next_in_order];
                        if !self.lanes[l].can_start(self.plan.max_in_flight) {
                            break; // late: the latency it adds is measured from next_due
                        }
                        self.start(l, t, next_due);
                        self.flush(l)?;
                        next_in_order = (next_in_order + 1) % order.len();
                        next_due += interval;
                    }
                } else {
                    for l in 0..self.lanes.len() {
                        for _ in 0..BURST_MAX {
                            if !self.lanes[l].can_start(self.plan.max_in_flight) || self.remaining == Some(0) {
                                break;
                            }
                            let lane = &mut self.lanes[l];
                            let t = lane.next;
                            lane.next = (lane.next + 1) % lane.templates.len();
                            self.start(l, t, Instant::now());
                            self.flush(l)?;
                        }
                    }
                }
            }
            for l in 0..self.lanes.len() {
                self.flush(l)?;
            }
            if self.sending_over(now) {
                if self.lanes.iter().all(Lane::idle) {
                    return Ok(());
                }
                let deadline = *drain_deadline.get_or_insert(now + DRAIN_TIMEOUT);
                if now > deadline {
                    bail!("requests still unanswered {} s after sending stopped", DRAIN_TIMEOUT.as_secs());
                }
            }
            if self.plan.sink {
                if let (Some(_), false) = (interval, over) {
                    let wait = next_due.saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        std::thread::sleep(wait.min(Duration::from_millis(100)));
                    }
                }
                continue;
            }

            // Wait for responses, writability, the next due send or the end of the run.
            let now = Instant::now();
            let mut timeout = Duration::from_millis(100);
            if let (Some(_), false) = (interval, over) {
                timeout = timeout.min(next_due.saturating_duration_since(now));
            }
            if let Some(end) = self.times.end {
                if now < end {
                    timeout = timeout.min(end - now);
                }
            }
            if !over && interval.is_none() && self.lanes.iter().any(|l| l.can_start(self.plan.max_in_flight)) {
                timeout = Duration::ZERO;
            }
            pollfds.clear();
            for lane in &self.lanes {
                let conn = lane.conn.as_ref().unwrap();
                let mut events = libc::POLLIN;
                if lane.writing.is_some() {
                    events |= libc::POLLOUT;
                }
                pollfds.push(libc::pollfd { fd: conn.fd(), events, revents: 0 });
            }
            poll(&mut pollfds, Some(timeout))?;
            for (l, fd) in pollfds.iter().enumerate() {
                if fd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
                    self.receive(l)?;
                }
            }
        }
    }

    /// Stamps the next request of lane `l` (template `t`, or a smaller tail
    /// when the `--messages` quota ends inside it) and makes it the lane's write.
    fn start(&mut self, l: usize, t: usize, intended: Instant) {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let wall_us = self.times.clock.wall_us(intended);
        let lane = &mut self.lanes[l];
        let mut which = Which::Template(t);
        if let Some(remaining) = self.remaining {
            if remaining < lane.templates[t].messages() {
                // Cold path, once per run: a single-partition request with what is left.
                let partition = first_partition(&lane.templates[t]);
                let records = remaining.min(self.plan.records_per_batch as u64) as usize;
                match Template::build(&self.plan, &[partition], records) {
                    Ok(tail) => lane.tail = Some(tail),
                    Err(e) => {
                        self.tally.failure = Some(format!("{e:#}"));
                        self.remaining = Some(0);
                        return;
                    }
                }
                which = Which::Tail;
            }
        }
        let template = match which {
            Which::Template(i) => &mut lane.templates[i],
            Which::Tail => lane.tail.as_mut().unwrap(),
        };
        template.stamp(self.correlation_id, wall_us);
        let sent = Sent {
            correlation_id: self.correlation_id,
            intended,
            batches: template.slots.len() as u32,
            messages_per_batch: template.messages_per_batch,
            payload_bytes_per_batch: template.payload_bytes_per_batch,
            batch_bytes: template.batch_bytes,
        };
        if let Some(r) = self.remaining.as_mut() {
            *r -= template.messages_per_batch * template.slots.len() as u64;
        }
        lane.writing = Some((which, 0, sent));
    }

    /// Writes as much of lane `l`'s current request as the socket takes.
    fn flush(&mut self, l: usize) -> Result<()> {
        let lane = &mut self.lanes[l];
        let Some((which, mut pos, sent)) = lane.writing else { return Ok(()) };
        let len = lane.frame(which).len();
        match lane.conn.as_mut() {
            None => {
                // Sink: the generated request is discarded unread.
                std::hint::black_box(lane.frame(which));
                pos = len;
            }
            Some(_) => {
                while pos < len {
                    let frame = match which {
                        Which::Template(i) => &lane.templates[i].frame,
                        Which::Tail => &lane.tail.as_ref().unwrap().frame,
                    };
                    let n = lane.conn.as_mut().unwrap().write_some(&frame[pos..])?;
                    if n == 0 {
                        break;
                    }
                    pos += n;
                }
            }
        }
        if pos < len {
            lane.writing = Some((which, pos, sent));
            return Ok(());
        }
        lane.writing = None;
        if self.plan.sink || self.plan.acks == 0 {
            // Nothing will answer: the write is the acknowledgement. A sink
            // records how long generating took; acks=0 has no latency to show.
            self.account(&sent, sent.batches, Instant::now(), self.plan.sink);
        } else {
            lane.in_flight.push_back(sent);
        }
        Ok(())
    }

    /// Reads the Produce responses that have arrived on lane `l`.
    fn receive(&mut self, l: usize) -> Result<()> {
        let version = self.plan.version;
        let lane = &mut self.lanes[l];
        let conn = lane.conn.as_mut().unwrap();
        let in_flight = &mut lane.in_flight;
        let mut answered: Vec<(Sent, u32)> = Vec::new();
        let mut errors: Vec<String> = Vec::new();
        conn.read_frames(|frame| -> Result<()> {
            let sent = in_flight.pop_front().ok_or_else(|| anyhow!("a Produce response nobody asked for"))?;
            if frame::correlation_id(&frame) != Some(sent.correlation_id) {
                bail!("Produce responses out of order (expected correlation id {})", sent.correlation_id);
            }
            let response: ProduceResponse =
                frame::decode_response(ApiKey::Produce, version, sent.correlation_id, frame)?;
            let mut ok = 0;
            for topic in &response.responses {
                for p in &topic.partition_responses {
                    if p.error_code == 0 {
                        ok += 1;
                    } else {
                        errors.push(format!("produce {}", error_name(p.error_code)));
                    }
                }
            }
            answered.push((sent, ok));
            Ok(())
        })?;
        let now = Instant::now();
        for (sent, ok) in answered {
            self.account(&sent, ok, now, true);
        }
        for e in errors {
            self.tally.error(e, 1);
            self.live.errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn account(&mut self, sent: &Sent, ok_batches: u32, now: Instant, latency: bool) {
        let ok = ok_batches.min(sent.batches) as u64;
        let messages = ok * sent.messages_per_batch;
        let payload = ok * sent.payload_bytes_per_batch;
        let t = &mut self.tally;
        t.requests += 1;
        t.messages_total += messages;
        t.payload_bytes_total += payload;
        t.batch_bytes_total += sent.batch_bytes * ok / sent.batches.max(1) as u64;
        self.live.add(messages, payload);
        if ok > 0 && self.times.measured(sent.intended) {
            t.messages_measured += messages;
            t.payload_bytes_measured += payload;
            t.last_at = Some(now);
            if latency {
                record(&mut t.latency_us, now.saturating_duration_since(sent.intended).as_micros() as u64);
            }
        }
    }
}

fn first_partition(template: &Template) -> i32 {
    template.partitions[0]
}
