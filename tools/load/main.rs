//! corelog-load: a load generator for corelog and any other Kafka-compatible
//! broker. It speaks the Kafka protocol itself (kafka-protocol codecs), runs
//! producers and consumers in one process on pinned worker threads, sends
//! pre-built record batches that are only re-stamped per send, measures
//! latency from each request's intended send time, and reports throughput
//! and HdrHistogram percentiles (one progress line a second on stderr, a
//! summary on stdout, the full result with `--json`).
//!
//! `--sink` runs the producers against nothing: batches are generated,
//! stamped and discarded, which is the generator's own ceiling to read every
//! broker figure against.

mod batch;
mod cluster;
mod consume;
mod group;
#[cfg(test)]
mod leader_change_test;
mod produce;
mod route;
mod stats;
mod template;
mod versions;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use corelog::model::compression::Codec;
use serde::Serialize;
use serde_json::json;

use crate::batch::Shape;
use crate::produce::{StartGate, Times};
use crate::stats::{latency_json, latency_line, si, Clock, Live, Tally};

#[derive(Parser, Debug, Clone, Serialize)]
#[command(name = "corelog-load", version, about = "Load generator for corelog and any Kafka-compatible broker")]
struct Args {
    /// host:port of a broker of the cluster, or several, comma-separated
    /// (the first that answers is asked; leader changes ask any of them).
    #[arg(long, default_value = "localhost:9092")]
    bootstrap_server: String,
    #[arg(long, default_value = "corelog-load")]
    topic: String,
    /// Partitions of the topic when it has to be created (an existing topic keeps its own).
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Replication factor when creating the topic (-1: the broker's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    replication_factor: i16,
    /// A topic config when creating the topic, NAME=VALUE (repeatable), e.g. min.insync.replicas=2.
    #[arg(long, value_parser = parse_config)]
    topic_config: Vec<(String, String)>,
    /// Producer threads; producer i writes the partitions p with p % producers == i
    /// (with more producers than partitions: partition i % partitions, shared).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumer threads, on assigned partitions (p % consumers == i) unless --group is given.
    #[arg(long, default_value_t = 0)]
    consumers: usize,
    /// Consumers join this consumer group: the group assigns partitions (round-robin),
    /// they start at its committed offsets, heartbeat, commit every 5 s and at the end.
    #[arg(long)]
    group: Option<String>,
    /// Where consumers start when there is no committed offset: the end of each
    /// partition instead of its beginning (auto.offset.reset=latest).
    #[arg(long)]
    from_latest: bool,
    /// Value bytes per record.
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,
    /// Key bytes per record; 0 = unkeyed (null keys).
    #[arg(long, default_value_t = 0)]
    key_bytes: usize,
    /// Target size of one record batch, before compression (like batch.size).
    #[arg(long, default_value_t = 64 * 1024)]
    batch_bytes: usize,
    /// Open loop only: a batch closes after this many ms of messages at --rate
    /// (or when full). Closed loop always sends full batches.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// 0, 1 or all (-1).
    #[arg(long, default_value = "1", value_parser = ["0", "1", "all", "-1"], allow_hyphen_values = true)]
    acks: String,
    /// Produce requests in flight per connection (pipelined, answered in order).
    #[arg(long, default_value_t = 5)]
    max_in_flight: usize,
    /// Closed loop: a Produce request carries one batch for each of as many of
    /// a leader's partitions as fit in this many bytes (at least one).
    #[arg(long, default_value_t = 1024 * 1024)]
    request_bytes: usize,
    /// Seconds to run after the warm-up (default 10 unless --messages is given).
    #[arg(long, conflicts_with = "messages")]
    duration: Option<f64>,
    /// Produce exactly this many messages in total (or, with --producers 0, consume this many).
    #[arg(long)]
    messages: Option<u64>,
    /// Seconds at the start that count towards totals but not towards rates or latency.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Open loop: messages per second over all producers, on a fixed schedule.
    #[arg(long)]
    rate: Option<f64>,
    /// Write the full result (config, counts, rates, percentiles) to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write every produce acknowledgement and error to this file, one line
    /// each: wall-clock µs, partition, the broker id that answered, "ack" or
    /// the error (a failover's gap is read from it).
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// Pin worker threads to cores: auto (when there are no more workers than cores), on, off.
    #[arg(long, default_value = "auto", num_args = 0..=1, default_missing_value = "on", value_parser = ["auto", "on", "off"])]
    pin: String,
    /// Self-test: generate and discard batches without a broker (the generator's ceiling).
    #[arg(long)]
    sink: bool,
    /// Fetch: maximum bytes per partition per response.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    fetch_bytes: i32,
    /// Fetch: maximum bytes per response.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    fetch_max_bytes: i32,
    /// Fetch: how long the broker may wait for data (max_wait_ms).
    #[arg(long, default_value_t = 100)]
    fetch_wait_ms: i32,
    /// Seconds consumers may take to reach the end offsets once producers are done.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    #[arg(long, default_value = "corelog-load")]
    client_id: String,
    /// Open this many extra connections (one ApiVersions each, spread over the
    /// brokers) and hold them idle for the whole run: the cost of idle clients.
    #[arg(long, default_value_t = 0)]
    idle_connections: usize,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn main() {
    let args = Args::parse();
    match run(args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("corelog-load: {e:#}");
            std::process::exit(1);
        }
    }
}

fn parse_config(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

fn codec(name: &str) -> Codec {
    match name {
        "gzip" => Codec::Gzip,
        "snappy" => Codec::Snappy,
        "lz4" => Codec::Lz4,
        "zstd" => Codec::Zstd,
        _ => Codec::None,
    }
}

fn acks(value: &str) -> i16 {
    match value {
        "0" => 0,
        "1" => 1,
        _ => -1,
    }
}

/// Worker i of n's partitions: p with p % n == i, or, for producers when
/// there are more of them than partitions, partition i % partitions (several
/// producers on one partition).
fn partitions_of(partitions: i32, n: usize, i: usize, shared: bool) -> Vec<i32> {
    if shared && n > partitions as usize {
        return vec![(i % partitions as usize) as i32];
    }
    (0..partitions).filter(|p| *p as usize % n == i).collect()
}

/// `mine`, grouped by leader address.
fn assign<T>(mine: Vec<i32>, leader: impl Fn(i32) -> String, item: impl Fn(i32) -> T) -> Vec<(String, Vec<T>)> {
    let mut lanes: Vec<(String, Vec<T>)> = Vec::new();
    for p in mine {
        let addr = leader(p);
        match lanes.iter_mut().find(|(a, _)| *a == addr) {
            Some((_, items)) => items.push(item(p)),
            None => lanes.push((addr, vec![item(p)])),
        }
    }
    lanes
}

fn run(args: Args) -> Result<bool> {
    if args.producers + args.consumers == 0 {
        bail!("nothing to do: --producers and --consumers are both 0");
    }
    if args.partitions < 1 || args.max_in_flight < 1 || args.batch_bytes < 1 {
        bail!("--partitions, --max-in-flight and --batch-bytes must be at least 1");
    }
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be positive");
    }
    if args.sink && args.producers == 0 {
        bail!("--sink needs at least one producer");
    }
    if args.sink && args.consumers > 0 {
        eprintln!("corelog-load: --sink has no broker to consume from: consumers are ignored");
    }
    let consumers = if args.sink { 0 } else { args.consumers };
    let duration = match (args.duration, args.messages) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(10.0),
    };
    // SAFETY: `on_sigint` only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };

    let shape = Shape { record_bytes: args.record_bytes, key_bytes: args.key_bytes, codec: codec(&args.compression) };
    let acks = acks(&args.acks);

    // The cluster: brokers, the topic and its leaders.
    let cluster = if args.sink {
        None
    } else {
        let new = cluster::NewTopic {
            partitions: args.partitions,
            replication_factor: args.replication_factor,
            configs: args.topic_config.clone(),
        };
        Some(cluster::discover(&args.bootstrap_server, &args.client_id, &args.topic, &new)?)
    };
    let (partitions, leader_of, versions): (i32, Vec<String>, Option<versions::Versions>) = match &cluster {
        None => (args.partitions, vec![String::new(); args.partitions as usize], None),
        Some(t) => {
            let leaders = (0..t.leaders.len() as i32).map(|p| t.leader_addr(p).to_string()).collect();
            (t.leaders.len() as i32, leaders, Some(t.versions))
        }
    };
    let topology = |p: i32| leader_of[p as usize].clone();
    let idle = match &cluster {
        Some(t) if args.idle_connections > 0 => {
            let brokers: Vec<&str> = t.brokers.values().map(String::as_str).collect();
            let idle = versions::open_idle(&brokers, args.idle_connections, &args.client_id)?;
            if !args.quiet {
                eprintln!("corelog-load: holding {} idle connections", idle.len());
            }
            idle
        }
        _ => Vec::new(),
    };

    // Producers: batch size, open-loop batching, quotas.
    // More producers than partitions share them (producer i writes i % partitions).
    let producers = args.producers;
    let full_batch = batch::records_per_batch(&shape, args.batch_bytes);
    let rate_per_producer = args.rate.map(|r| r / producers.max(1) as f64);
    let records_per_batch = match rate_per_producer {
        // Open loop: a batch holds what arrives in linger_ms at the producer's rate.
        Some(r) => ((r * args.linger_ms as f64 / 1000.0).round() as usize).clamp(1, full_batch),
        None => full_batch,
    };
    let sample = batch::build(&shape, records_per_batch, 0).map_err(|e| anyhow::anyhow!("building a batch: {e}"))?;
    let batch_wire_bytes = sample.bytes.len();
    drop(sample);
    let partitions_per_request = (args.request_bytes / batch_wire_bytes.max(1)).max(1);

    let clock = Clock::new();
    let stop = Arc::new(AtomicBool::new(false));
    let start_offsets = match &cluster {
        Some(t) if consumers > 0 => {
            let at = if args.from_latest { cluster::LATEST } else { cluster::EARLIEST };
            Some((t, cluster::list_offsets(t, &args.client_id, &args.topic, at)?))
        }
        _ => None,
    };

    let workers = producers + consumers;
    let gate = StartGate::new(workers);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let pin = match args.pin.as_str() {
        "on" => !cores.is_empty(),
        "off" => false,
        _ => !cores.is_empty() && workers <= cores.len(),
    };
    // Highest cores first: corelog pins its shard 0 to CPU 0.
    let core_for = |w: usize| pin.then(|| cores[cores.len() - 1 - w % cores.len()]);
    let mut pinned = Vec::new();

    let mut producer_live = Vec::new();
    let mut producer_threads: Vec<JoinHandle<Tally>> = Vec::new();
    for i in 0..producers {
        let quota = args.messages.filter(|_| args.producers > 0).map(|n| {
            let n_p = producers as u64;
            n / n_p + u64::from((i as u64) < n % n_p)
        });
        let mine = partitions_of(partitions, producers, i, true);
        let (routes, router) = match &cluster {
            Some(t) => {
                let (routes, leaderless) = route::routes(t, &mine);
                debug_assert!(leaderless.is_empty(), "discover waits for every partition's leader");
                let router = route::Router {
                    bootstrap: args.bootstrap_server.clone(),
                    client_id: args.client_id.clone(),
                    topic: args.topic.clone(),
                    versions: t.versions,
                    known: t.brokers.clone(),
                };
                (routes, Some(router))
            }
            None => (vec![route::Route { broker_id: -1, addr: String::new(), partitions: mine }], None),
        };
        let plan = produce::Plan {
            id: i,
            topic: args.topic.clone(),
            routes,
            router,
            timeline: args.timeline.is_some(),
            version: versions.map_or(9, |v| v.produce),
            acks,
            shape,
            records_per_batch,
            partitions_per_request,
            max_in_flight: args.max_in_flight,
            quota,
            rate: rate_per_producer,
            client_id: args.client_id.clone(),
            sink: args.sink,
        };
        let live = Arc::new(Live::default());
        producer_live.push(live.clone());
        let gate = gate.clone();
        let core = core_for(producer_threads.len());
        pinned.extend(core.map(|c| c.id));
        producer_threads.push(
            std::thread::Builder::new()
                .name(format!("producer-{i}"))
                .spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    produce::run(plan, gate, live)
                })
                .context("spawning a producer")?,
        );
    }

    let targets: consume::Targets = Arc::new(Mutex::new(None));
    let mut consumer_live = Vec::new();
    let mut consumer_threads: Vec<JoinHandle<Tally>> = Vec::new();
    if let Some((_, offsets)) = &start_offsets {
        for i in 0..consumers {
            let group = args.group.as_ref().map(|group| consume::GroupPlan {
                bootstrap: args.bootstrap_server.clone(),
                group: group.clone(),
                leaders: leader_of.clone(),
                reset_to: offsets.clone(),
            });
            let lanes = match group {
                Some(_) => Vec::new(),
                None => assign(partitions_of(partitions, consumers, i, false), topology, |p| (p, offsets[p as usize])),
            };
            let plan = consume::Plan {
                topic: args.topic.clone(),
                lanes,
                group,
                version: versions.map_or(12, |v| v.fetch),
                fetch_max_bytes: args.fetch_max_bytes,
                partition_max_bytes: args.fetch_bytes,
                fetch_wait_ms: args.fetch_wait_ms,
                client_id: args.client_id.clone(),
                record_payload_bytes: (args.record_bytes + args.key_bytes) as u64,
            };
            let live = Arc::new(Live::default());
            consumer_live.push(live.clone());
            let (gate, targets) = (gate.clone(), targets.clone());
            let core = core_for(producers + i);
            pinned.extend(core.map(|c| c.id));
            consumer_threads.push(
                std::thread::Builder::new()
                    .name(format!("consumer-{i}"))
                    .spawn(move || {
                        if let Some(c) = core {
                            core_affinity::set_for_current(c);
                        }
                        consume::run(plan, gate, live, targets)
                    })
                    .context("spawning a consumer")?,
            );
        }
    }

    let warmup = Duration::from_secs_f64(args.warmup.max(0.0));
    let times = gate.open(|| {
        let start = Instant::now();
        Times {
            clock,
            start,
            warmup_end: start + warmup,
            end: duration.map(|d| start + warmup + Duration::from_secs_f64(d.max(0.0))),
            stop: stop.clone(),
        }
    });
    if !args.quiet {
        let mode = match args.rate {
            Some(r) => format!("open loop at {} msg/s", si(r)),
            None => format!("closed loop, {} in flight per connection", args.max_in_flight),
        };
        eprintln!(
            "corelog-load: {} producers, {} consumers, {} partitions, {} B records, {} records/batch ({} B), {}, acks {}{}",
            producers,
            consumers,
            partitions,
            args.record_bytes,
            records_per_batch,
            batch_wire_bytes,
            mode,
            args.acks,
            if args.sink { ", SINK (no broker)" } else { "" }
        );
    }

    // Progress once a second until everyone is done.
    let started_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut last = (Instant::now(), 0u64, 0u64, 0u64, 0u64);
    let mut next_report = times.start + Duration::from_secs(1);
    let mut producers_done_at: Option<Instant> = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut target_error: Option<String> = None;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if INTERRUPTED.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
            eprintln!("corelog-load: interrupted: stopping");
            stop.store(true, Ordering::Relaxed);
        }
        let producers_done = producer_threads.iter().all(|t| t.is_finished());
        let consumers_done = consumer_threads.iter().all(|t| t.is_finished());
        if producers_done && producers_done_at.is_none() {
            producers_done_at = Some(now);
            if let Some((t, _)) = &start_offsets {
                if producers > 0 {
                    // Consumers read up to where the producers left the log.
                    match cluster::list_offsets(t, &args.client_id, &args.topic, cluster::LATEST) {
                        Ok(ends) => *targets.lock().unwrap() = Some(ends),
                        Err(e) => {
                            target_error = Some(format!("end offsets: {e:#}"));
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    drain_deadline = Some(now + Duration::from_secs_f64(args.drain_timeout));
                }
            }
        }
        if producers == 0 {
            // Consume-only: bounded by --messages or the duration.
            let (consumed, _, _) = stats::sum(&consumer_live);
            let enough = args.messages.is_some_and(|n| consumed >= n);
            if enough || times.end.is_some_and(|e| now >= e) {
                stop.store(true, Ordering::Relaxed);
            }
        }
        if drain_deadline.is_some_and(|d| now >= d) && !consumers_done {
            stop.store(true, Ordering::Relaxed);
        }
        if !args.quiet && now >= next_report {
            let (pm, pb, pe) = stats::sum(&producer_live);
            let (cm, cb, ce) = stats::sum(&consumer_live);
            let secs = now.duration_since(last.0).as_secs_f64();
            let rate = |a: u64, b: u64| (a - b) as f64 / secs;
            let mut line = format!("[{:6.1}s] ", now.duration_since(times.start).as_secs_f64());
            if producers > 0 {
                line += &format!(
                    "produce {} msg/s {:.1} MB/s (total {}) ",
                    si(rate(pm, last.1)),
                    rate(pb, last.2) / 1e6,
                    si(pm as f64)
                );
            }
            if consumers > 0 {
                line += &format!(
                    "| consume {} msg/s {:.1} MB/s (total {}) ",
                    si(rate(cm, last.3)),
                    rate(cb, last.4) / 1e6,
                    si(cm as f64)
                );
            }
            if pe + ce > 0 {
                line += &format!("| errors {}", pe + ce);
            }
            if now < times.warmup_end {
                line += " (warm-up)";
            }
            eprintln!("{line}");
            last = (now, pm, pb, cm, cb);
            next_report += Duration::from_secs(1);
            if next_report < now {
                next_report = now + Duration::from_secs(1);
            }
        }
        if producers_done && consumers_done {
            break;
        }
    }

    let mut produced = Tally::new();
    for t in producer_threads {
        produced.merge(&t.join().expect("a producer thread panicked"));
    }
    let timeline_events = produced.timeline.len();
    if let Some(path) = &args.timeline {
        std::fs::write(path, route::timeline_text(&mut produced.timeline))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut consumed = Tally::new();
    for t in consumer_threads {
        consumed.merge(&t.join().expect("a consumer thread panicked"));
    }

    // Measurement windows.
    let produce_end = match times.end {
        Some(end) => end,
        None => produced.last_at.unwrap_or(times.warmup_end),
    };
    let produce_secs = produce_end.saturating_duration_since(times.warmup_end).as_secs_f64();
    let consume_secs = consumed.last_at.map_or(0.0, |at| at.saturating_duration_since(times.warmup_end).as_secs_f64());
    let per_s = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };

    let mut failures: Vec<String> = Vec::new();
    if let Some(f) = &produced.failure {
        failures.push(format!("producer: {f}"));
    }
    if let Some(f) = &consumed.failure {
        failures.push(format!("consumer: {f}"));
    }
    if let Some(e) = target_error {
        failures.push(e);
    }
    let complete_consume =
        producers == 0 || consumers == 0 || args.from_latest || consumed.messages_total >= produced.messages_total;
    let ok = failures.is_empty() && produced.error_count() == 0 && consumed.error_count() == 0;

    // Summary on stdout.
    println!(
        "corelog-load {} -> {}: topic {} ({} partitions), {} producers, {} consumers, {} B records{}, {} records/batch ({} B on the wire), compression {}, acks {}",
        env!("CARGO_PKG_VERSION"),
        if args.sink { "SINK (no broker)".to_string() } else { args.bootstrap_server.clone() },
        args.topic,
        partitions,
        producers,
        consumers,
        args.record_bytes,
        if args.key_bytes > 0 { format!(" + {} B keys", args.key_bytes) } else { String::new() },
        records_per_batch,
        batch_wire_bytes,
        args.compression,
        args.acks
    );
    if producers > 0 {
        let latency = if args.sink { "generate latency" } else { "ack latency" };
        print_side("produce", "msgs total incl. warm-up", "requests", &produced, produce_secs, latency);
    }
    if consumers > 0 {
        print_side("consume", "msgs total", "fetches", &consumed, consume_secs, "end-to-end latency");
    }
    for (what, n) in produced.errors.iter().chain(consumed.errors.iter()) {
        println!("error: {what} x{n}");
    }
    for f in &failures {
        println!("failure: {f}");
    }
    if !complete_consume {
        println!(
            "warning: consumers read {} messages, producers wrote {}",
            consumed.messages_total, produced.messages_total
        );
    }

    if let Some(path) = &args.json {
        let side = |t: &Tally, secs: f64, latency_key: &str| {
            json!({
                "messages": t.messages_total,
                "payload_bytes": t.payload_bytes_total,
                "batch_bytes": t.batch_bytes_total,
                "requests": t.requests,
                "measured": {
                    "messages": t.messages_measured,
                    "payload_bytes": t.payload_bytes_measured,
                    "seconds": secs,
                    "msgs_per_s": per_s(t.messages_measured, secs),
                    "mb_per_s": per_s(t.payload_bytes_measured, secs) / 1e6,
                },
                "errors": t.errors,
                "failure": t.failure,
                latency_key: latency_json(&t.latency_us),
            })
        };
        let result = json!({
            "tool": "corelog-load",
            "version": env!("CARGO_PKG_VERSION"),
            "started_unix_ms": started_unix_ms,
            "config": args,
            "effective": {
                "partitions": partitions,
                "producers": producers,
                "consumers": consumers,
                "records_per_batch": records_per_batch,
                "batch_wire_bytes": batch_wire_bytes,
                "partitions_per_request": if args.rate.is_some() { 1 } else { partitions_per_request },
                "loop": if args.rate.is_some() { "open" } else { "closed" },
                "duration_s": duration,
                "warmup_s": args.warmup,
                "versions": versions.map(|v| json!({
                    "produce": v.produce, "fetch": v.fetch, "list_offsets": v.list_offsets,
                    "metadata": v.metadata, "create_topics": v.create_topics,
                })),
                "pinned_cores": pinned,
                "idle_connections": idle.len(),
                "timeline_events": args.timeline.as_ref().map(|_| timeline_events),
                "cores": cores.len(),
            },
            "produce": side(&produced, produce_secs, if args.sink { "generate_latency_us" } else { "ack_latency_us" }),
            "consume": if consumers > 0 { side(&consumed, consume_secs, "e2e_latency_us") } else { serde_json::Value::Null },
            "failures": failures,
            "ok": ok,
        });
        std::fs::write(path, serde_json::to_string_pretty(&result)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ok)
}

/// One side's summary: counts, rates over the measured window, latency percentiles.
fn print_side(side: &str, total_label: &str, requests_label: &str, tally: &Tally, secs: f64, latency: &str) {
    let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    println!(
        "{side}: {} msgs in {secs:.2} s = {} msg/s, {:.1} MB/s payload ({} {total_label}, {} {requests_label}, {} errors)",
        tally.messages_measured,
        si(per_s(tally.messages_measured)),
        per_s(tally.payload_bytes_measured) / 1e6,
        tally.messages_total,
        tally.requests,
        tally.error_count()
    );
    println!("  {latency} (ms): {}", latency_line(&tally.latency_us));
}

#[cfg(test)]
mod tests {
    use super::partitions_of;

    #[test]
    fn producers_share_partitions_only_when_there_are_more_of_them() {
        assert_eq!(partitions_of(4, 2, 1, true), vec![1, 3]);
        assert_eq!(partitions_of(2, 3, 2, true), vec![0], "a third producer shares partition 0");
        assert_eq!(partitions_of(2, 3, 2, false), Vec::<i32>::new(), "a third consumer has nothing to read");
    }
}
