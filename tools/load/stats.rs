//! Clocks, live counters (read by the progress line) and per-worker results
//! (merged at the end).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::route::Event;

/// One clock for the whole run: monotonic instants, mapped to wall-clock
/// microseconds for the stamps that travel inside batches (so a consumer in
/// another process on the same host can read them too).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub origin: Instant,
    wall_origin_us: u64,
}

impl Clock {
    pub fn new() -> Clock {
        let origin = Instant::now();
        let wall_origin_us = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
        Clock { origin, wall_origin_us }
    }

    pub fn wall_us(&self, at: Instant) -> u64 {
        self.wall_origin_us + at.saturating_duration_since(self.origin).as_micros() as u64
    }

    pub fn origin_wall_us(&self) -> u64 {
        self.wall_origin_us
    }
}

/// Latencies in microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap()
}

pub fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

/// Counters one worker bumps and the progress line reads; one cache line each
/// so two workers never share one.
#[repr(align(128))]
#[derive(Default)]
pub struct Live {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

impl Live {
    pub fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

pub fn sum(live: &[std::sync::Arc<Live>]) -> (u64, u64, u64) {
    live.iter().fold((0, 0, 0), |(m, b, e), l| {
        (
            m + l.messages.load(Ordering::Relaxed),
            b + l.bytes.load(Ordering::Relaxed),
            e + l.errors.load(Ordering::Relaxed),
        )
    })
}

/// What one producer or consumer did, returned when its thread ends.
pub struct Tally {
    /// Every message acknowledged (produce) or read (consume), warm-up included.
    pub messages_total: u64,
    pub payload_bytes_total: u64,
    /// Bytes as they went over the wire in batches (after compression).
    pub batch_bytes_total: u64,
    /// Messages and payload inside the measurement window.
    pub messages_measured: u64,
    pub payload_bytes_measured: u64,
    pub requests: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency_us: Histogram<u64>,
    /// When the last message of the window was acknowledged or read.
    pub last_at: Option<Instant>,
    /// Set when the worker stopped early (connection lost, timed out, ...).
    pub failure: Option<String>,
    /// Every acknowledgement and error per partition (`--timeline` only).
    pub timeline: Vec<Event>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            messages_total: 0,
            payload_bytes_total: 0,
            batch_bytes_total: 0,
            messages_measured: 0,
            payload_bytes_measured: 0,
            requests: 0,
            errors: BTreeMap::new(),
            latency_us: latency_histogram(),
            last_at: None,
            failure: None,
            timeline: Vec::new(),
        }
    }

    pub fn error(&mut self, what: String, n: u64) {
        *self.errors.entry(what).or_default() += n;
    }

    pub fn merge(&mut self, other: &Tally) {
        self.messages_total += other.messages_total;
        self.payload_bytes_total += other.payload_bytes_total;
        self.batch_bytes_total += other.batch_bytes_total;
        self.messages_measured += other.messages_measured;
        self.payload_bytes_measured += other.payload_bytes_measured;
        self.requests += other.requests;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.latency_us.add(&other.latency_us).unwrap();
        self.last_at = match (self.last_at, other.last_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if self.failure.is_none() {
            self.failure = other.failure.clone();
        }
        self.timeline.extend_from_slice(&other.timeline);
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

pub const PERCENTILES: &[(&str, f64)] =
    &[("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9), ("p99.99", 99.99)];

/// Percentiles in microseconds as JSON (null when nothing was recorded).
pub fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let mut m = serde_json::Map::new();
    m.insert("count".into(), json!(h.len()));
    m.insert("min".into(), json!(h.min()));
    m.insert("mean".into(), json!((h.mean() * 10.0).round() / 10.0));
    for (name, q) in PERCENTILES {
        m.insert((*name).into(), json!(h.value_at_percentile(*q)));
    }
    m.insert("max".into(), json!(h.max()));
    Value::Object(m)
}

/// One line: "p50 0.41 ms  p90 ... max 12.3 ms".
pub fn latency_line(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
    let mut s = String::new();
    for (name, q) in PERCENTILES {
        s += &format!("{name} {}  ", ms(h.value_at_percentile(*q)));
    }
    s + &format!("max {} ms  ({} samples)", ms(h.max()), h.len())
}

/// "1.23M" style counts for the human-readable lines.
pub fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}
