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
//! A lost connection or a leader error sends the producer back to the
//! cluster's metadata for the new leaders (`route`), and it carries on with
//! them; what was in flight on the lost connection counts as errors.
//!
//! Latency is measured from each request's *intended* send time: in closed
//! loop that is when it was started, in open loop (`--rate`) the moment the
//! schedule said it was due, even if the producer could only send it later,
//! so a stalled broker shows up in the percentiles (no coordinated omission).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use kafka_protocol::messages::{ApiKey, ProduceResponse};

use crate::batch::Shape;
use crate::route::{self, Event, EventKind, Route, Router};
use crate::stats::{record, Clock, Live, Tally};
use crate::template::Template;
use corelog_client::{error_name, frame, poll, Connection, Pipelined};

/// How long in-flight requests may take to be answered once sending stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Sends started per lane before the loop looks at the clock again.
const BURST_MAX: usize = 64;
/// Broker-side timeout for acks (Produce timeout_ms).
pub const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// How long a partition may stay without a reachable leader before the
/// producer gives up (a cluster that lost its quorum, or the topic).
const LEADER_WAIT_MAX: Duration = Duration::from_secs(120);

/// Everything one producer needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: usize,
    pub topic: String,
    /// The leaders of this producer's partitions at the start, one lane
    /// (connection) each; in sink mode one route with no address.
    pub routes: Vec<Route>,
    /// Finds the leaders again after a leader change; None in sink mode.
    pub router: Option<Router>,
    /// Record a timeline event per partition per answer (`--timeline`).
    pub timeline: bool,
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
    broker_id: i32,
    addr: String,
    /// None in sink mode, and once the connection is lost.
    conn: Option<Pipelined>,
    /// The connection broke: the lane is dropped at the next `settle`.
    broken: bool,
    /// The partitions this lane is to write; `templates` cover them once
    /// `next_templates` (set by a leader change) is swapped in.
    partitions: Vec<i32>,
    templates: Vec<Template>,
    next_templates: Option<Vec<Template>>,
    next: usize,
    /// A one-off smaller request for the end of a `--messages` run.
    tail: Option<Template>,
    writing: Option<(Which, usize, Sent)>,
    in_flight: VecDeque<Sent>,
}

impl Lane {
    /// The templates of `route`'s partitions and, unless in sink mode, a connection to its leader.
    fn open(plan: &Plan, route: &Route) -> Result<Lane> {
        let templates = templates(plan, &route.partitions)?;
        let conn = if plan.sink {
            None
        } else {
            Some(Pipelined::connect(&route.addr).with_context(|| format!("connecting to broker {}", route.broker_id))?)
        };
        Ok(Lane {
            broker_id: route.broker_id,
            addr: route.addr.clone(),
            conn,
            broken: false,
            partitions: route.partitions.clone(),
            templates,
            next_templates: None,
            next: 0,
            tail: None,
            writing: None,
            in_flight: VecDeque::new(),
        })
    }

    fn idle(&self) -> bool {
        self.writing.is_none() && self.in_flight.is_empty()
    }

    fn can_start(&self, max_in_flight: usize) -> bool {
        !self.broken && !self.templates.is_empty() && self.writing.is_none() && self.in_flight.len() < max_in_flight
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
    /// Every partition this producer writes.
    mine: Vec<i32>,
    /// Open loop: (lane, template) in round-robin order; rebuilt when lanes change.
    order: Vec<(usize, usize)>,
    next_in_order: usize,
    remaining: Option<u64>,
    correlation_id: i32,
    /// The connection metadata refreshes go over.
    router_conn: Option<Connection>,
    /// When the leaders are to be looked up again (None: all routed).
    reroute_at: Option<Instant>,
    last_refresh: Option<Instant>,
    /// Since when some partition has had no reachable leader.
    leaderless_since: Option<Instant>,
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
            let mine = plan.routes.iter().flat_map(|r| r.partitions.iter().copied()).collect();
            let mut p = Producer {
                plan,
                times,
                live,
                tally,
                lanes,
                mine,
                order: Vec::new(),
                next_in_order: 0,
                remaining,
                correlation_id: 0,
                router_conn: None,
                reroute_at: None,
                last_refresh: None,
                leaderless_since: None,
            };
            p.rebuild_order();
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
    plan.routes.iter().map(|r| Lane::open(plan, r)).collect()
}

/// The request templates for `partitions`: one partition each in open loop,
/// as many as a request takes in closed loop.
fn templates(plan: &Plan, partitions: &[i32]) -> Result<Vec<Template>> {
    let per_request = if plan.rate.is_some() { 1 } else { plan.partitions_per_request.max(1) };
    partitions.chunks(per_request).map(|group| Template::build(plan, group, plan.records_per_batch)).collect()
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
        let interval = self.plan.rate.map(|r| Duration::from_secs_f64(self.plan.records_per_batch as f64 / r));
        let mut next_due = self.times.start;
        let mut drain_deadline: Option<Instant> = None;
        let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(self.lanes.len());
        let mut polled: Vec<usize> = Vec::with_capacity(self.lanes.len());

        loop {
            let now = Instant::now();
            let over = self.sending_over(now);
            if !over && self.reroute_at.is_some_and(|at| now >= at) {
                self.reroute(now)?;
            }
            self.settle();
            if !over {
                if let Some(interval) = interval {
                    while next_due <= now && self.remaining != Some(0) {
                        if self.order.is_empty() {
                            // No partition has a reachable leader: the
                            // schedule goes on, and what was due is not sent.
                            self.tally.error("produce batch not sent: no reachable leader".into(), 1);
                            self.live.errors.fetch_add(1, Ordering::Relaxed);
                            next_due += interval;
                            continue;
                        }
                        self.next_in_order %= self.order.len();
                        let (l, t) = self.order[self.next_in_order];
                        if !self.lanes[l].can_start(self.plan.max_in_flight) {
                            break; // late: the latency it adds is measured from next_due
                        }
                        self.start(l, t, next_due);
                        self.flush(l)?;
                        self.next_in_order = (self.next_in_order + 1) % self.order.len();
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
            if let (Some(at), false) = (self.reroute_at, over) {
                timeout = timeout.min(at.saturating_duration_since(now));
            }
            if !over && interval.is_none() && self.lanes.iter().any(|l| l.can_start(self.plan.max_in_flight)) {
                timeout = Duration::ZERO;
            }
            pollfds.clear();
            polled.clear();
            for (l, lane) in self.lanes.iter().enumerate() {
                let Some(conn) = lane.conn.as_ref() else { continue };
                let mut events = libc::POLLIN;
                if lane.writing.is_some() {
                    events |= libc::POLLOUT;
                }
                pollfds.push(libc::pollfd { fd: conn.fd(), events, revents: 0 });
                polled.push(l);
            }
            poll(&mut pollfds, Some(timeout))?;
            for (fd, &l) in pollfds.iter().zip(&polled) {
                if fd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
                    self.receive(l)?;
                }
            }
        }
    }

    /// Open loop's round-robin order over every lane's templates.
    fn rebuild_order(&mut self) {
        self.order.clear();
        for (l, lane) in self.lanes.iter().enumerate() {
            if !lane.broken {
                self.order.extend((0..lane.templates.len()).map(|t| (l, t)));
            }
        }
    }

    /// Applies what leader changes decided, where no write is half done:
    /// new templates swapped in, broken lanes and drained lanes that lead
    /// none of this producer's partitions any more dropped.
    fn settle(&mut self) {
        let lanes = self.lanes.len();
        let mut changed = false;
        for lane in &mut self.lanes {
            if lane.writing.is_none() {
                if let Some(t) = lane.next_templates.take() {
                    lane.templates = t;
                    lane.next = 0;
                    lane.tail = None;
                    changed = true;
                }
            }
        }
        let drained = |l: &Lane| l.templates.is_empty() && l.next_templates.is_none() && l.idle();
        self.lanes.retain(|l| !l.broken && !drained(l));
        if changed || self.lanes.len() != lanes {
            self.rebuild_order();
        }
    }

    /// Asks the cluster for the leaders again and points the lanes at them:
    /// a lane to a leader that keeps its connection (and what is in flight on
    /// it) and changes only its partitions; a new leader gets a new lane.
    fn reroute(&mut self, now: Instant) -> Result<()> {
        let Some(router) = self.plan.router.as_mut() else {
            self.reroute_at = None;
            return Ok(());
        };
        self.last_refresh = Some(now);
        let wall_us = self.times.clock.wall_us(now);
        let (routes, leaderless) = match router.refresh(&mut self.router_conn) {
            Ok(topology) => route::routes(&topology, &self.mine),
            Err(_) => {
                // Nothing learnt: the lanes stay as they are until an answer comes.
                self.tally.error("metadata refresh: no broker answered".into(), 1);
                return self.retry_reroute(now, &self.mine.clone());
            }
        };
        let mut unreachable = leaderless.clone();
        for lane in &mut self.lanes {
            if !routes.iter().any(|r| r.broker_id == lane.broker_id && r.addr == lane.addr) {
                lane.partitions.clear();
                lane.next_templates = Some(Vec::new());
            }
        }
        for r in &routes {
            let kept = self.lanes.iter().position(|l| !l.broken && l.broker_id == r.broker_id && l.addr == r.addr);
            match kept {
                Some(i) if self.lanes[i].partitions == r.partitions => {}
                Some(i) => {
                    self.lanes[i].next_templates = Some(templates(&self.plan, &r.partitions)?);
                    self.lanes[i].partitions = r.partitions.clone();
                }
                None => match Lane::open(&self.plan, r) {
                    Ok(lane) => self.lanes.push(lane),
                    Err(_) => {
                        self.tally.error(format!("produce: connecting to broker {} failed", r.broker_id), 1);
                        for &partition in &r.partitions {
                            self.event(wall_us, partition, r.broker_id, EventKind::Disconnected);
                        }
                        unreachable.extend(&r.partitions);
                    }
                },
            }
        }
        for &partition in &leaderless {
            self.event(wall_us, partition, -1, EventKind::NoLeader);
        }
        self.rebuild_order();
        if unreachable.is_empty() {
            self.reroute_at = None;
            self.leaderless_since = None;
            return Ok(());
        }
        self.retry_reroute(now, &unreachable)
    }

    /// Some partitions have no reachable leader yet: look again after
    /// RETRY_BACKOFF, and give up once that has lasted LEADER_WAIT_MAX.
    fn retry_reroute(&mut self, now: Instant, unreachable: &[i32]) -> Result<()> {
        self.reroute_at = Some(now + route::RETRY_BACKOFF);
        let since = *self.leaderless_since.get_or_insert(now);
        if now.duration_since(since) > LEADER_WAIT_MAX {
            bail!("partitions {unreachable:?} without a reachable leader for {} s", LEADER_WAIT_MAX.as_secs());
        }
        Ok(())
    }

    /// Looks the leaders up again soon: at once, unless the last refresh
    /// was less than RETRY_BACKOFF ago.
    fn want_reroute(&mut self, now: Instant) {
        let at = self.last_refresh.map_or(now, |last| (last + route::RETRY_BACKOFF).max(now));
        self.reroute_at = Some(self.reroute_at.map_or(at, |t| t.min(at)));
    }

    fn event(&mut self, unix_us: u64, partition: i32, broker_id: i32, kind: EventKind) {
        if self.plan.timeline {
            self.tally.timeline.push(Event { unix_us, partition, broker_id, kind });
        }
    }

    /// Lane `l`'s connection broke: what was on it is lost (counted as
    /// errors), the lane goes, and the leaders are looked up again.
    fn lose(&mut self, l: usize, now: Instant) {
        let lane = &mut self.lanes[l];
        let unanswered = lane.in_flight.len() as u64 + u64::from(lane.writing.is_some());
        lane.conn = None;
        lane.broken = true;
        lane.in_flight.clear();
        lane.writing = None;
        let (broker_id, partitions) = (lane.broker_id, lane.partitions.clone());
        if unanswered > 0 {
            self.tally.error("produce requests unanswered: connection lost".into(), unanswered);
            self.live.errors.fetch_add(unanswered, Ordering::Relaxed);
        }
        let wall_us = self.times.clock.wall_us(now);
        for partition in partitions {
            self.event(wall_us, partition, broker_id, EventKind::Disconnected);
        }
        self.want_reroute(now);
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
                let partition = lane.templates[t].partitions[0];
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
        if lane.broken {
            return Ok(());
        }
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
                    let n = match lane.conn.as_mut().unwrap().write_some(&frame[pos..]) {
                        Ok(n) => n,
                        Err(_) => {
                            self.lose(l, Instant::now());
                            return Ok(());
                        }
                    };
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

    /// Reads the Produce responses that have arrived on lane `l`. A broken
    /// connection loses the lane; an answer that makes no sense ends the run.
    fn receive(&mut self, l: usize) -> Result<()> {
        let version = self.plan.version;
        let timeline = self.plan.timeline;
        let lane = &mut self.lanes[l];
        let broker_id = lane.broker_id;
        let Some(conn) = lane.conn.as_mut() else { return Ok(()) };
        let in_flight = &mut lane.in_flight;
        let mut answered: Vec<(Sent, u32)> = Vec::new();
        // (partition, error code) of every partition answered, errors always, acks with --timeline.
        let mut outcomes: Vec<(i32, i16)> = Vec::new();
        let mut nonsense = false;
        let read = conn.read_frames(|frame| -> Result<()> {
            nonsense = true;
            let sent = in_flight.pop_front().ok_or_else(|| anyhow!("a Produce response nobody asked for"))?;
            if frame::correlation_id(&frame) != Some(sent.correlation_id) {
                bail!("Produce responses out of order (expected correlation id {})", sent.correlation_id);
            }
            let response: ProduceResponse =
                frame::decode_response(ApiKey::Produce, version, sent.correlation_id, frame)?;
            nonsense = false;
            let mut ok = 0;
            for topic in &response.responses {
                for p in &topic.partition_responses {
                    if p.error_code == 0 {
                        ok += 1;
                    }
                    if p.error_code != 0 || timeline {
                        outcomes.push((p.index, p.error_code));
                    }
                }
            }
            answered.push((sent, ok));
            Ok(())
        });
        let now = Instant::now();
        for (sent, ok) in answered {
            self.account(&sent, ok, now, true);
        }
        let wall_us = self.times.clock.wall_us(now);
        for (partition, code) in outcomes {
            if code == 0 {
                self.event(wall_us, partition, broker_id, EventKind::Ack);
                continue;
            }
            self.event(wall_us, partition, broker_id, EventKind::Error(code));
            self.tally.error(format!("produce {}", error_name(code)), 1);
            self.live.errors.fetch_add(1, Ordering::Relaxed);
            if route::is_stale_leader(code) {
                self.want_reroute(now);
            }
        }
        match read {
            Err(e) if nonsense => Err(e),
            Err(_) => {
                self.lose(l, now);
                Ok(())
            }
            Ok(()) => Ok(()),
        }
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
