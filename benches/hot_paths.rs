//! Micro-benchmarks of the broker's hot paths (issue 4), through the library's
//! public API only. Run with `cargo bench --bench hot_paths` (about two
//! minutes); pass a filter to run a subset, e.g. `cargo bench --bench
//! hot_paths -- storage/`.
//!
//! `allocation_counts` first prints heap allocations per hot operation
//! (counted, not timed). Every other benchmark declares a criterion
//! Throughput, so the report gives a rate beside the time per iteration: bytes (GiB/s, MiB/s) where the work scales
//! with payload size, elements (Kelem/s, Melem/s: requests, responses,
//! partitions or lookups per second) where it scales with a count.
//!
//! Storage benchmarks run on one io_uring runtime (tokio-uring) kept for the
//! whole group; each sample is one `block_on` timed with `iter_custom`, so
//! set-up (building and opening logs) is never measured.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, ProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::sync::Notify;

use corelog::model::batch::{self, BatchHeader};
use corelog::model::compression::{Codec, Decompressor};
use corelog::model::{recompress, records, validate};
use corelog::protocol::fetch::{self, PartitionData, Piece, TopicData};
use corelog::storage::{HotTail, LogConfig, PartitionLog};

/// Counts every heap allocation, so `allocations` can report how many each
/// hot operation makes (the target is none per message). A relaxed atomic
/// increment per allocation; the other benchmarks pay it too, equally.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a
// counter is added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations per call of `op`, averaged over `n` calls after one warm-up call.
fn allocations_per(n: u64, mut op: impl FnMut()) -> f64 {
    op();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..n {
        op();
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / n as f64
}

const KIB: usize = 1024;
const RECORD_BYTES: usize = 100;

/// A batch of `RECORD_BYTES`-byte records as close to `target` bytes as fits
/// (never over), built with the library's batch builder. Values are varied
/// letters so nothing downstream sees a trivially uniform buffer.
fn batch_near(target: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..target / RECORD_BYTES + 1)
        .map(|i| (0..RECORD_BYTES).map(|j| b'A' + ((i * 7 + j) % 26) as u8).collect())
        .collect();
    let mut lo = 1;
    let mut hi = values.len();
    // Largest record count whose batch is at most `target` bytes.
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let refs: Vec<&[u8]> = values[..mid].iter().map(Vec::as_slice).collect();
        if batch::build(1_700_000_000_000, &refs).len() <= target {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let refs: Vec<&[u8]> = values[..lo].iter().map(Vec::as_slice).collect();
    batch::build(1_700_000_000_000, &refs)
}

/// One batch of 1,000 records of `RECORD_BYTES` (varied letters, as
/// `batch_near`), uncompressed or compressed with `codec`.
fn batch_of_1000(codec: Codec) -> Vec<u8> {
    let values: Vec<Vec<u8>> =
        (0..1000).map(|i| (0..RECORD_BYTES).map(|j| b'A' + ((i * 7 + j) % 26) as u8).collect()).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let plain = batch::build(1_700_000_000_000, &refs);
    recompress::recompress(&plain, codec, &mut Decompressor::new()).expect("recompress")
}

/// Small deterministic PRNG (xorshift64) for random offsets without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ---------------------------------------------------------------------------
// 1–2. Batch validation and raw CRC32C
// ---------------------------------------------------------------------------

/// `batch::validate` (header parse, magic, length, CRC32C over the batch,
/// record count) on one uncompressed batch of 100 B records: the header half
/// of what Produce checks of every incoming batch. Unit: bytes of batch
/// validated per second (GiB/s). Sizes: 64 KiB (a typical producer batch) and
/// 1 MiB (the default max.message.bytes).
/// Then `validate::produced_batch`, the whole check (records too), on 1,000
/// records of 100 B, uncompressed and lz4: records per second (elements/s).
/// Also `BatchHeader::parse` + `set_base_offset` alone (no CRC): the
/// per-batch cost of offset assignment, in batches per second (elements/s).
fn bench_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch");
    for (label, size) in [("64KiB", 64 * KIB), ("1MiB", 1024 * KIB)] {
        let bytes = batch_near(size);
        assert!(batch::validate(&bytes).is_ok());
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("validate_crc32c", label), &bytes, |b, bytes| {
            b.iter(|| batch::validate(black_box(bytes)).unwrap())
        });
    }

    // `validate::produced_batch`: everything Produce checks of a batch before
    // appending it (header, CRC32C, then every record's framing, decompressing
    // into the reused buffer when compressed), on a typical producer batch of
    // 1,000 records of 100 B, uncompressed and lz4. Unit: records per second.
    let mut decompressor = Decompressor::new();
    for codec in [Codec::None, Codec::Lz4] {
        let bytes = batch_of_1000(codec);
        group.throughput(Throughput::Elements(1000));
        group.bench_with_input(BenchmarkId::new("produced_batch_100B_x1000", codec.name()), &bytes, |b, bytes| {
            b.iter(|| validate::produced_batch(black_box(bytes), usize::MAX, &mut decompressor).unwrap())
        });
    }

    let mut bytes = batch_near(64 * KIB);
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_header_set_base_offset", |b| {
        let mut offset = 0i64;
        b.iter(|| {
            let header = BatchHeader::parse(black_box(&bytes)).unwrap();
            offset += header.records_count as i64;
            batch::set_base_offset(black_box(&mut bytes), offset);
        })
    });
    group.finish();

    // Raw CRC32C (the crc32c crate, SSE4.2 / ARMv8 CRC when present) over
    // 64 KiB: the floor under validate and under the load generator's
    // per-send re-stamp. Unit: bytes per second (GiB/s).
    let mut group = c.benchmark_group("crc32c");
    let data: Vec<u8> = (0..64 * KIB).map(|i| (i * 31 % 251) as u8).collect();
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("64KiB", |b| b.iter(|| crc32c::crc32c(black_box(&data))));
    group.finish();
}

// ---------------------------------------------------------------------------
// 7. The load generator's batch builder
// ---------------------------------------------------------------------------

/// The load generator (tools/load/batch.rs) is a binary, not part of the
/// library, so its builder cannot be called from here. It builds each batch
/// once and then only re-stamps it per send. Two benchmarks stand in:
/// - `build_100B_records`: `corelog::model::batch::build` of a ~64 KiB batch of
///   100 B records (the one-off cost; also what tests and tools use). Unit:
///   records built per second (elements/s).
/// - `restamp_64KiB`: the per-send cost, the same operation as the loadgen's
///   `stamp()`: patch base/max timestamps (ms) and the first value's µs stamp,
///   then recompute the CRC32C over the batch. Unit: bytes per second (GiB/s).
fn bench_loadgen(c: &mut Criterion) {
    let mut group = c.benchmark_group("loadgen_batch");
    let probe = batch_near(64 * KIB);
    let count = BatchHeader::parse(&probe).unwrap().records_count as usize;
    let values: Vec<Vec<u8>> = (0..count).map(|i| vec![b'A' + (i % 26) as u8; RECORD_BYTES]).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function("build_100B_records", |b| {
        b.iter(|| batch::build(black_box(1_700_000_000_000), black_box(&refs)))
    });

    // Offsets in a RecordBatch v2 header (see corelog::model::batch).
    const CRC_AT: usize = 17;
    const CRC_START: usize = 21;
    const BASE_TIMESTAMP_AT: usize = 27;
    const MAX_TIMESTAMP_AT: usize = 35;
    let mut bytes = probe;
    // First value's bytes: header, then length varint (2 bytes for a ~106 B
    // record body), attributes, ts delta, offset delta, key len (-1), value len.
    let stamp_at = batch::HEADER_BYTES + 2 + 1 + 1 + 1 + 1 + 2;
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("restamp_64KiB", |b| {
        let mut wall_us = 1_700_000_000_000_000u64;
        b.iter(|| {
            wall_us += 1;
            let ms = (wall_us / 1000) as i64;
            let batch = black_box(&mut bytes[..]);
            batch[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&ms.to_be_bytes());
            batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&ms.to_be_bytes());
            batch[stamp_at..stamp_at + 8].copy_from_slice(&wall_us.to_be_bytes());
            let crc = crc32c::crc32c(&batch[CRC_START..]);
            batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        })
    });
    group.finish();
    assert!(batch::validate(&bytes).is_ok(), "re-stamped batch stays valid");
    // Walking records back (the broker's own internal topics, not the hot path)
    // is checked here only to keep the builder honest.
    assert_eq!(records::records(&bytes).unwrap().len(), count);
}

// ---------------------------------------------------------------------------
// 4. Produce request decode / response encode (kafka-protocol codecs)
// ---------------------------------------------------------------------------

/// - `request_decode_v9_64KiB`: `ProduceRequest::decode` at v9 (flexible) of a
///   request for one topic-partition carrying one 64 KiB batch, from `Bytes`
///   as the connection hands it over. The records field is a zero-copy slice
///   of the frame, so the cost does not scale with the batch size and the
///   unit is requests decoded per second (elements/s).
/// - `response_encode_v9`: header + `ProduceResponse` encode at v9 for one
///   topic-partition, as the broker frames it. Unit: responses per second.
fn bench_produce(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce");
    let batch = Bytes::from(batch_near(64 * KIB));
    let request = ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench-topic")))
            .with_partition_data(vec![PartitionProduceData::default().with_index(3).with_records(Some(batch.clone()))]),
    ]);
    let mut buf = BytesMut::new();
    request.encode(&mut buf, 9).unwrap();
    let wire = buf.freeze();
    assert_eq!(ProduceRequest::decode(&mut wire.clone(), 9).unwrap(), request);
    group.throughput(Throughput::Elements(1));
    group.bench_function("request_decode_v9_64KiB", |b| {
        b.iter(|| {
            let mut frame = black_box(&wire).clone();
            ProduceRequest::decode(&mut frame, 9).unwrap()
        })
    });

    let response = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
        .with_name(TopicName(StrBytes::from_static_str("bench-topic")))
        .with_partition_responses(vec![PartitionProduceResponse::default()
            .with_index(3)
            .with_base_offset(123_456_789)
            .with_log_start_offset(0)])]);
    let header = ResponseHeader::default().with_correlation_id(42);
    let header_version = ApiKey::Produce.response_header_version(9);
    group.throughput(Throughput::Elements(1));
    group.bench_function("response_encode_v9", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(128);
            out.extend_from_slice(&[0; 4]); // size, patched as the broker does
            header.encode(&mut out, header_version).unwrap();
            black_box(&response).encode(&mut out, 9).unwrap();
            let size = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&size.to_be_bytes());
            out.freeze()
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// 5. Fetch response encode (hand-written, zero-copy) / request decode
// ---------------------------------------------------------------------------

/// - `response_encode_v12/{1,100}`: `corelog::protocol::fetch::encode` of a
///   response with one topic and N partitions, each with a 64 KiB records gap
///   (the records themselves are spliced from segment files later, so only
///   the framing is built). Unit: partitions framed per second (elements/s).
/// - `request_decode_v12/{1,100}`: `FetchRequest::decode` at v12 (the last
///   version naming topics; flexible) of a request for N partitions of one
///   topic. Unit: partitions decoded per second (elements/s).
fn bench_fetch(c: &mut Criterion) {
    let mut group = c.benchmark_group("fetch");
    const VERSION: i16 = 12;
    for partitions in [1usize, 100] {
        group.throughput(Throughput::Elements(partitions as u64));
        group.bench_with_input(BenchmarkId::new("response_encode_v12", partitions), &partitions, |b, &n| {
            b.iter(|| {
                let topics = vec![TopicData {
                    name: "bench-topic",
                    id: [7; 16],
                    partitions: (0..n as i32)
                        .map(|p| PartitionData {
                            partition: p,
                            error_code: 0,
                            high_watermark: 1_000_000,
                            last_stable_offset: 1_000_000,
                            log_start_offset: 0,
                            records: Some((p as u32, 64 * KIB as u32)),
                            current_leader: None,
                            diverging_epoch: None,
                        })
                        .collect(),
                }];
                let pieces: Vec<Piece<u32>> = fetch::encode(VERSION, 42, 0, 0, black_box(topics), &[]);
                pieces
            })
        });

        let request =
            FetchRequest::default().with_max_wait_ms(500).with_min_bytes(1).with_max_bytes(50 << 20).with_topics(vec![
                FetchTopic::default().with_topic(TopicName(StrBytes::from_static_str("bench-topic"))).with_partitions(
                    (0..partitions as i32)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(123_456 + p as i64)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
            ]);
        let mut buf = BytesMut::new();
        request.encode(&mut buf, VERSION).unwrap();
        let wire = buf.freeze();
        assert_eq!(FetchRequest::decode(&mut wire.clone(), VERSION).unwrap(), request);
        group.bench_with_input(BenchmarkId::new("request_decode_v12", partitions), &wire, |b, wire| {
            b.iter(|| {
                let mut frame = black_box(wire).clone();
                FetchRequest::decode(&mut frame, VERSION).unwrap()
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// 3 and 6. Storage: offset-index lookup, segment append
// ---------------------------------------------------------------------------

fn open_log(rt: &tokio_uring::Runtime, dir: &Path, config: LogConfig) -> Rc<PartitionLog> {
    rt.block_on(async {
        PartitionLog::open(dir, config, true, Rc::new(Notify::new()), HotTail::new(0)).expect("open log").0
    })
}

/// - `read_lookup/{1B,1MiB}`: `PartitionLog::read(offset, max_bytes)` at
///   uniformly random offsets of a log holding 100,000 offsets in 10,000
///   batches of 10 × 100 B records (one segment, default 4 KiB index
///   interval, files in the page cache). Each read finds the batch holding
///   the offset through the sparse offset index, then walks batch headers
///   (io_uring reads) to it; with max_bytes = 1 MiB it also finds the last
///   batch boundary within 1 MiB. Unit: lookups per second (elements/s).
/// - `append_64KiB`: `PartitionLog::append` of one 64 KiB batch followed by
///   `wait_written` (the writer task's io_uring write into the segment; no
///   fsync: flush.messages is left at its default, never), one at a time, as
///   Produce with acks=1 does. A fresh log in a temp dir for each sample;
///   256 MiB segments so long samples roll. Unit: bytes appended per second
///   (MiB/s or GiB/s).
fn bench_storage(c: &mut Criterion) {
    let rt = tokio_uring::Runtime::new(&tokio_uring::builder()).expect("io_uring runtime");
    let mut group = c.benchmark_group("storage");

    // --- offset-index lookup ---
    const OFFSETS: i64 = 100_000;
    const PER_BATCH: usize = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(&rt, dir.path(), LogConfig::default());
    let value = [b'v'; RECORD_BYTES];
    let one = batch::build(1_700_000_000_000, &[&value[..]; PER_BATCH]);
    let chunk: Vec<u8> = one.iter().copied().cycle().take(one.len() * 50).collect();
    rt.block_on(async {
        while log.log_end_offset() < OFFSETS {
            let info = log.append(&chunk, 0, 1_700_000_000_000).expect("append");
            log.wait_appended(&info).await.expect("written");
        }
    });
    let end = log.written_end_offset();
    assert!(end >= OFFSETS);
    for (label, max_bytes) in [("1B", 1u32), ("1MiB", 1 << 20)] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("read_lookup", label), |b| {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
            b.iter_custom(|iters| {
                let offsets: Vec<i64> = (0..iters).map(|_| (rng.next() % end as u64) as i64).collect();
                rt.block_on(async {
                    let start = Instant::now();
                    for &offset in &offsets {
                        let slice = log.read(offset, max_bytes).await.expect("read").expect("below hwm");
                        black_box(slice.len());
                    }
                    start.elapsed()
                })
            })
        });
    }
    rt.block_on(log.close()).expect("close");
    drop(log);
    drop(dir);

    // --- segment append ---
    let batch = batch_near(64 * KIB);
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("append_64KiB", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = LogConfig { segment_bytes: 256 << 20, ..LogConfig::default() };
            let log = open_log(&rt, dir.path(), config);
            let elapsed = rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let info = log.append(black_box(&batch), 0, 1_700_000_000_000).expect("append");
                    log.wait_appended(&info).await.expect("written");
                }
                start.elapsed()
            });
            rt.block_on(log.close()).expect("close");
            elapsed
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------
// 7. Allocations per operation (not timed)
// ---------------------------------------------------------------------------

/// Prints how many heap allocations each hot operation makes, counted by the
/// counting allocator above: per 64 KiB batch validated, per produced batch of
/// 1,000 records checked (uncompressed, lz4), per Produce request
/// decoded (one partition), per storage append of a 64 KiB batch including the
/// wait for its write, and per Fetch response framed (one partition). Counts,
/// not times, so they do not depend on the machine's noise. Nothing is timed
/// by criterion here.
fn allocation_counts(_: &mut Criterion) {
    let batch = batch_near(64 * KIB);
    let validate = allocations_per(1000, || {
        black_box(batch::validate(black_box(&batch)).unwrap());
    });
    let mut decompressor = Decompressor::new();
    let [produced_plain, produced_lz4] = [Codec::None, Codec::Lz4].map(|codec| {
        let bytes = batch_of_1000(codec);
        allocations_per(1000, || {
            black_box(validate::produced_batch(black_box(&bytes), usize::MAX, &mut decompressor).unwrap());
        })
    });
    let request = ProduceRequest::default().with_acks(1).with_topic_data(vec![TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("bench-topic")))
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(Bytes::from(batch.clone())))])]);
    let mut buf = BytesMut::new();
    request.encode(&mut buf, 9).unwrap();
    let wire = buf.freeze();
    let decode = allocations_per(1000, || {
        black_box(ProduceRequest::decode(&mut wire.clone(), 9).unwrap());
    });
    let rt = tokio_uring::Runtime::new(&tokio_uring::builder()).expect("io_uring runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(&rt, dir.path(), LogConfig { segment_bytes: 1 << 30, ..LogConfig::default() });
    let append = allocations_per(1000, || {
        rt.block_on(async {
            let info = log.append(&batch, 0, 1_700_000_000_000).expect("append");
            log.wait_appended(&info).await.expect("written");
        })
    });
    rt.block_on(log.close()).expect("close");
    let encode = allocations_per(1000, || {
        let topics = vec![TopicData {
            name: "bench-topic",
            id: [7; 16],
            partitions: vec![PartitionData {
                partition: 0,
                error_code: 0,
                high_watermark: 1_000_000,
                last_stable_offset: 1_000_000,
                log_start_offset: 0,
                records: Some((0u32, 64 * KIB as u32)),
                current_leader: None,
                diverging_epoch: None,
            }],
        }];
        black_box(fetch::encode(12, 42, 0, 0, topics, &[]));
    });
    println!("allocations/validate_64KiB_batch          {validate:.2}");
    println!("allocations/produced_batch_100Bx1000      {produced_plain:.2}  (uncompressed: records walked in place)");
    println!("allocations/produced_batch_100Bx1000_lz4  {produced_lz4:.2}  (the lz4 crate's 32 KiB input buffer; liblz4 mallocs its frame context outside this count)");
    println!("allocations/produce_request_decode_v9     {decode:.2}  (the request's vectors and names)");
    println!("allocations/storage_append_64KiB_written  {append:.2}  (incl. the io_uring runtime's own)");
    println!("allocations/fetch_response_encode_v12_1p  {encode:.2}  (incl. building its input: 2)");
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = allocation_counts, bench_batch, bench_loadgen, bench_produce, bench_fetch, bench_storage
}
criterion_main!(benches);
