//! The cleaner's pure part (which records survive, how a batch is rebuilt)
//! and whole rounds over real logs, reopened afterwards.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use tokio::sync::Notify;

use crate::model::batch::{self, BatchHeader, Compression, DELETE_HORIZON_FLAG};
use crate::model::compression::{Codec, Decompressor};
use crate::model::recompress;
use crate::model::records;

use super::filter::{filter_batch, Filtered, Rules};
use super::offset_map::OffsetMap;
use super::{CleanSettings, Cleaner};
use crate::storage::{LogConfig, PartitionLog};

/// (offset, key, value, timestamp) of every record of one batch.
type Contents = Vec<(i64, Option<String>, Option<String>, i64)>;

fn keyed(base_offset: i64, timestamp: i64, pairs: &[(Option<&str>, Option<&str>)]) -> Vec<u8> {
    let kv: Vec<records::KeyValue<'_>> =
        pairs.iter().map(|(k, v)| (k.map(str::as_bytes), v.map(str::as_bytes))).collect();
    let mut out = records::build_keyed(timestamp, &kv);
    batch::set_base_offset(&mut out, base_offset);
    out
}

fn contents(bytes: &[u8]) -> Contents {
    let header = batch::validate_stored(bytes).expect("a valid batch");
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
    let walk = |section: &[u8]| -> Contents {
        records::walk(header, section)
            .map(|r| {
                let r = r.unwrap().record;
                (r.offset, text(r.key), text(r.value), r.timestamp)
            })
            .collect()
    };
    Decompressor::new().with_records(&header, bytes, walk).unwrap()
}

fn map_of(batches: &[&[u8]]) -> OffsetMap {
    let mut map = OffsetMap::with_bytes(1 << 20);
    for bytes in batches {
        for (offset, key, _, _) in contents(bytes) {
            map.put(key.unwrap().as_bytes(), offset);
        }
    }
    map
}

fn rebuilt(outcome: Filtered) -> Vec<u8> {
    match outcome {
        Filtered::Rebuilt(bytes) => bytes,
        other => panic!("expected a rebuilt batch, got {other:?}"),
    }
}

const NOW: i64 = 10_000;

#[test]
fn latest_per_key_survives_with_offsets_and_crc_intact() {
    let original = keyed(100, 5_000, &[(Some("a"), Some("a1")), (Some("b"), Some("b1")), (Some("a"), Some("a2"))]);
    let later = keyed(103, 6_000, &[(Some("b"), Some("b2"))]);
    let map = map_of(&[&original, &later]);
    let rules = Rules { map: &map, map_end: 104, now_ms: NOW, delete_retention_ms: 500 };

    let outcome = filter_batch(&original, &rules, &mut Decompressor::new()).unwrap();
    assert_eq!(outcome.records_removed, 2);
    assert_eq!(outcome.tombstone_horizon_ms, None);
    let cleaned = rebuilt(outcome.batch);
    let header = batch::validate_stored(&cleaned).expect("CRC recomputed");
    assert_eq!((header.base_offset, header.last_offset_delta, header.records_count), (100, 2, 1));
    assert_eq!(contents(&cleaned), vec![(102, Some("a".into()), Some("a2".into()), 5_000)]);
    assert_eq!(
        filter_batch(&later, &rules, &mut Decompressor::new()).unwrap().batch,
        Filtered::Keep,
        "nothing to remove: bytes copied"
    );

    // Past the mapped section everything stays, whatever the map says.
    let rules = Rules { map_end: 101, ..rules };
    let outcome = filter_batch(&original, &rules, &mut Decompressor::new()).unwrap();
    assert_eq!(contents(&rebuilt(outcome.batch)).iter().map(|r| r.0).collect::<Vec<_>>(), vec![101, 102]);
}

#[test]
fn tombstones_get_a_delete_horizon_and_go_after_it() {
    let original = keyed(7, 5_000, &[(Some("gone"), Some("v")), (Some("gone"), None), (Some("kept"), Some("k"))]);
    let map = map_of(&[&original]);
    let rules = Rules { map: &map, map_end: 10, now_ms: NOW, delete_retention_ms: 500 };

    let outcome = filter_batch(&original, &rules, &mut Decompressor::new()).unwrap();
    assert_eq!(outcome.tombstone_horizon_ms, Some(NOW + 500));
    let stamped = rebuilt(outcome.batch);
    let header = BatchHeader::parse(&stamped).unwrap();
    assert_ne!(header.attributes & DELETE_HORIZON_FLAG, 0);
    assert_eq!(header.delete_horizon_ms(), Some(NOW + 500));
    assert_eq!(header.max_timestamp, 5_000);
    assert_eq!(
        contents(&stamped),
        vec![(8, Some("gone".into()), None, 5_000), (9, Some("kept".into()), Some("k".into()), 5_000)],
        "record timestamps survive the re-based deltas"
    );

    let before = Rules { now_ms: NOW + 499, ..rules };
    let outcome = filter_batch(&stamped, &before, &mut Decompressor::new()).unwrap();
    assert_eq!(outcome.batch, Filtered::Keep, "already stamped, horizon not reached");
    assert_eq!(outcome.tombstone_horizon_ms, Some(NOW + 500));

    let after = Rules { now_ms: NOW + 500, ..rules };
    let outcome = filter_batch(&stamped, &after, &mut Decompressor::new()).unwrap();
    assert_eq!(outcome.tombstone_horizon_ms, None);
    let cleaned = rebuilt(outcome.batch);
    assert_eq!(contents(&cleaned), vec![(9, Some("kept".into()), Some("k".into()), 5_000)]);
    assert_eq!(BatchHeader::parse(&cleaned).unwrap().last_offset_delta, 2, "the offset range stays");

    let only_tombstone = keyed(20, 5_000, &[(Some("x"), None)]);
    let map = map_of(&[&only_tombstone]);
    let stamped = rebuilt(
        filter_batch(&only_tombstone, &Rules { map: &map, map_end: 21, ..rules }, &mut Decompressor::new())
            .unwrap()
            .batch,
    );
    let outcome = filter_batch(&stamped, &Rules { map: &map, map_end: 21, ..after }, &mut Decompressor::new()).unwrap();
    assert_eq!(outcome.batch, Filtered::Drop);
}

#[test]
fn keyless_records_are_dropped_and_control_batches_kept() {
    let original = keyed(0, 1, &[(None, Some("no key")), (Some("k"), Some("v"))]);
    let map = map_of(&[&keyed(1, 1, &[(Some("k"), Some("v"))])]);
    let rules = Rules { map: &map, map_end: 2, now_ms: NOW, delete_retention_ms: 0 };
    let cleaned = rebuilt(filter_batch(&original, &rules, &mut Decompressor::new()).unwrap().batch);
    assert_eq!(contents(&cleaned), vec![(1, Some("k".into()), Some("v".into()), 1)]);

    let mut control = keyed(0, 1, &[(None, Some("marker"))]);
    batch::put(&mut control, batch::field::ATTRIBUTES, &batch::CONTROL_FLAG.to_be_bytes());
    batch::refresh_crc(&mut control);
    assert_eq!(filter_batch(&control, &rules, &mut Decompressor::new()).unwrap().batch, Filtered::Keep);
}

#[test]
fn compressed_batches_are_recompressed_with_their_codec() {
    let plain = keyed(50, 3_000, &[(Some("a"), Some("1")), (Some("b"), Some("2")), (Some("a"), Some("3"))]);
    let map = map_of(&[&plain]);
    let rules = Rules { map: &map, map_end: 53, now_ms: NOW, delete_retention_ms: 0 };
    let expected = contents(&rebuilt(filter_batch(&plain, &rules, &mut Decompressor::new()).unwrap().batch));
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let compressed = recompress::recompress(&plain, codec, &mut Decompressor::new()).unwrap();
        let cleaned = rebuilt(filter_batch(&compressed, &rules, &mut Decompressor::new()).unwrap().batch);
        let header = batch::validate_stored(&cleaned).unwrap();
        assert_eq!(header.compression(), Compression::from(codec), "{codec}");
        assert_eq!(header.base_offset, 50);
        assert_eq!(contents(&cleaned), expected, "{codec}");
    }
}

/// A fresh directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corelog-cleaner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &std::path::Path) -> Rc<PartitionLog> {
    let config = LogConfig { segment_bytes: 700, index_interval_bytes: 128, ..LogConfig::default() };
    PartitionLog::open(dir, config, false, Rc::new(Notify::new()), crate::storage::HotTail::new(1 << 20))
        .expect("open")
        .0
}

/// Every record of the log, in order.
async fn read_all(log: &PartitionLog) -> Contents {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read(offset, 1 << 20).await.unwrap() {
        let buf = slice.into_bytes().await.unwrap();
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let header = BatchHeader::parse(rest).unwrap();
            out.extend(contents(&rest[..header.total_bytes()]));
            offset = header.last_offset() + 1;
            rest = &rest[header.total_bytes()..];
        }
    }
    out
}

/// The last value the log holds per key (what a consumer ends up with).
fn latest(records: &Contents) -> BTreeMap<String, Option<String>> {
    records.iter().map(|(_, k, v, _)| (k.clone().unwrap(), v.clone())).collect()
}

const SETTINGS: CleanSettings = CleanSettings {
    min_cleanable_dirty_ratio: 0.0,
    min_compaction_lag_ms: 0,
    max_compaction_lag_ms: i64::MAX,
    delete_retention_ms: 1_000,
};

#[test]
fn a_round_keeps_the_latest_per_key_and_survives_a_restart() {
    let dir = temp_dir("round");
    tokio_uring::start(async {
        let log = open(&dir);
        // 10 users x 20 updates, one record per batch; users 0 and 1 deleted.
        for update in 0..20 {
            for user in 0..10 {
                let value = format!("user{user}-v{update}");
                let value = (update < 19 || user > 1).then_some(value.as_str());
                let key = format!("user{user}");
                let batch = records::build_keyed(1_000 + update, &[(Some(key.as_bytes()), value.map(str::as_bytes))]);
                let info = log.append(&batch, 0, 0).unwrap();
                log.wait_appended(&info).await.unwrap();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await; // seals land
        let before = read_all(&log).await;
        assert_eq!(before.len(), 200);
        let segments_before = log.segments().all().len();
        assert!(segments_before > 5, "small segments roll: {segments_before}");

        let mut cleaner = Cleaner::new(1 << 20);
        let stats = cleaner.clean(&log, &SETTINGS, NOW).await.unwrap().expect("due: ratio 0");
        assert!(stats.records_removed > 150, "{stats:?}");
        assert!(stats.bytes_after < stats.bytes_before / 3, "{stats:?}");
        let after = read_all(&log).await;
        assert_eq!(latest(&after), latest(&before), "a consumer ends with the same values");
        assert!(after.windows(2).all(|w| w[0].0 < w[1].0), "offsets only grow");
        assert!(after.iter().all(|r| before.contains(r)), "records are kept as they were");
        let active_base = log.segments().all().last().unwrap().base_offset;
        let closed: Vec<_> = after.iter().filter(|r| r.0 < active_base).map(|r| r.1.clone()).collect();
        let mut unique = closed.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(closed.len(), unique.len(), "one record per key in closed segments");
        assert!(log.segments().all().len() < segments_before, "emptied segments are removed");
        assert_eq!(cleaner.clean(&log, &SETTINGS, NOW).await.unwrap(), None, "nothing dirty, no horizon due");

        // Once the delete horizon has passed, the tombstones go too.
        let stats = cleaner.clean(&log, &SETTINGS, NOW + 1_000).await.unwrap().expect("horizon due");
        assert!(stats.records_removed >= 1, "{stats:?}");
        let cleaned = read_all(&log).await;
        let closed_keys: Vec<_> = cleaned.iter().filter(|r| r.0 < active_base).map(|r| r.1.clone().unwrap()).collect();
        assert!(!closed_keys.contains(&"user0".to_string()) && !closed_keys.contains(&"user1".to_string()));
        log.close().await.unwrap();
        drop(log);

        // Recovery after a crash (unclean) takes the gaps as compaction's.
        let log = open(&dir);
        assert_eq!(read_all(&log).await, cleaned);
        assert_eq!(log.log_end_offset(), 200);
        assert_eq!(super::read_checkpoint(&dir), active_base);
        let info = log.append(&records::build_keyed(1, &[(Some(b"new"), Some(b"v"))]), 0, 0).unwrap();
        assert_eq!(info.base_offset, 200);
        log.wait_appended(&info).await.unwrap();
        log.close().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_segment_removed_meanwhile_aborts_the_swap() {
    let dir = temp_dir("abort");
    tokio_uring::start(async {
        let log = open(&dir);
        for update in 0..40 {
            let batch = records::build_keyed(1, &[(Some(b"k"), Some(format!("v{update}").as_bytes()))]);
            let info = log.append(&batch, 0, 0).unwrap();
            log.wait_appended(&info).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let round = tokio_uring::spawn({
            let log = log.clone();
            async move { Cleaner::new(1 << 20).clean(&log, &SETTINGS, NOW).await }
        });
        // The round has planned and awaits its first read: now retention
        // removes the log's first segment, which the round means to replace.
        tokio::task::yield_now().await;
        let removed = log.segments_mut().remove_oldest(1).pop().expect("one segment");
        let stats = round.await.unwrap().unwrap().expect("the round ran");
        assert_eq!((stats.segments_rewritten, stats.segments_removed), (0, 0), "{stats:?}");
        assert_eq!(std::fs::metadata(super::super::segment::log_path(&dir, 0)).unwrap().len(), removed.size);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        log.close().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compaction_lags_hold_back_young_records_and_force_old_ones() {
    let dir = temp_dir("lags");
    tokio_uring::start(async {
        let log = open(&dir);
        let append_all = |timestamp: i64| {
            let log = log.clone();
            async move {
                for update in 0..30 {
                    let value = format!("v{update}");
                    let batch = records::build_keyed(timestamp, &[(Some(b"k"), Some(value.as_bytes()))]);
                    let info = log.append(&batch, 0, 0).unwrap();
                    log.wait_appended(&info).await.unwrap();
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        append_all(1_000).await;
        let mut cleaner = Cleaner::new(1 << 20);
        assert!(cleaner.clean(&log, &SETTINGS, NOW).await.unwrap().is_some());
        append_all(2_000).await;

        let strict = CleanSettings { min_cleanable_dirty_ratio: 1.0, ..SETTINGS };
        assert_eq!(cleaner.clean(&log, &strict, NOW).await.unwrap(), None, "some bytes are clean: ratio < 1");
        let young = CleanSettings { min_compaction_lag_ms: NOW - 1_500, ..SETTINGS };
        assert_eq!(cleaner.clean(&log, &young, NOW).await.unwrap(), None, "the dirty records are too young");
        let overdue = CleanSettings { max_compaction_lag_ms: NOW - 2_000 - 1, ..strict };
        let stats = cleaner.clean(&log, &overdue, NOW).await.unwrap().expect("older than max.compaction.lag.ms");
        assert!(stats.records_removed >= 20, "{stats:?}");
        log.close().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_small_key_map_cleans_over_several_rounds() {
    let dir = temp_dir("small-map");
    tokio_uring::start(async {
        let log = open(&dir);
        for round in 0..3 {
            for key in 0..10 {
                let (key, value) = (format!("k{key}"), format!("v{round}"));
                let batch = records::build_keyed(1, &[(Some(key.as_bytes()), Some(value.as_bytes()))]);
                let info = log.append(&batch, 0, 0).unwrap();
                log.wait_appended(&info).await.unwrap();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let before = read_all(&log).await;
        let mut cleaner = Cleaner::new(4 * super::offset_map::ENTRY_BYTES);
        let mut checkpoints = Vec::new();
        while let Some(stats) = cleaner.clean(&log, &SETTINGS, NOW).await.unwrap() {
            checkpoints.push(stats.map_end);
            assert!(checkpoints.len() < 20, "no progress: {checkpoints:?}");
        }
        assert!(checkpoints.len() > 2 && checkpoints.windows(2).all(|w| w[0] < w[1]), "{checkpoints:?}");
        let after = read_all(&log).await;
        assert_eq!(latest(&after), latest(&before));
        let active_base = log.segments().all().last().unwrap().base_offset;
        let closed = after.iter().filter(|r| r.0 < active_base).count();
        assert!(closed <= 10, "one record per key below the active segment: {closed}");
        log.close().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every batch of the log, as stored.
async fn raw_batches(log: &PartitionLog) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read(offset, 1 << 20).await.unwrap() {
        let buf = slice.into_bytes().await.unwrap();
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let header = BatchHeader::parse(rest).unwrap();
            out.push(rest[..header.total_bytes()].to_vec());
            offset = header.last_offset() + 1;
            rest = &rest[header.total_bytes()..];
        }
    }
    out
}

/// The records of every batch that can be read.
fn readable(batches: &[Vec<u8>]) -> Contents {
    let mut decompressor = Decompressor::new();
    let mut out = Contents::new();
    for bytes in batches {
        let Ok(header) = batch::validate_stored(bytes) else { continue };
        let _ = decompressor.with_records(&header, bytes, |section| {
            if records::check(&header, section).is_ok() {
                out.extend(contents(bytes));
            }
        });
    }
    out
}

/// Issue 13: a batch the cleaner cannot read (random records with a valid
/// CRC, a decompression bomb, a CRC that fails on disk) used to fail every
/// round, retried forever. Now each is kept as it is (the segment with the
/// failing CRC whole), counted, and the round compacts everything around it.
#[test]
fn unreadable_batches_are_kept_as_they_are_and_the_round_goes_on() {
    use crate::model::fixtures::{noise_batch, with_codec, with_payload, zstd_rle_bomb};
    let dir = temp_dir("unreadable");
    let bomb = with_codec(with_payload(&batch::build(1, &[b"x"]), &zstd_rle_bomb(300)), Codec::Zstd);
    let noise = noise_batch(2, 120, 7);
    let crc_victim = keyed(0, 1, &[(Some("k1"), Some("crc-victim"))]);
    tokio_uring::start(async {
        let log = open(&dir);
        for update in 0..12 {
            for key in 0..3 {
                let value = format!("v{update}");
                let batch = keyed(0, 1, &[(Some(&format!("k{key}")), Some(&value))]);
                let info = log.append(&batch, 0, 0).unwrap();
                log.wait_appended(&info).await.unwrap();
            }
            let odd = match update {
                2 => &noise,
                5 => &bomb,
                8 => &crc_victim,
                _ => continue,
            };
            let info = log.append(odd, 0, 0).unwrap();
            log.wait_appended(&info).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        log.close().await.unwrap();
    });
    // Disk corruption: one byte of the CRC victim's value flipped in its closed segment.
    let mut flipped = None;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap_or_default();
        if let Some(at) = bytes.windows(10).position(|w| w == b"crc-victim") {
            bytes[at] ^= 0x20;
            std::fs::write(&path, &bytes).unwrap();
            flipped = Some(path);
        }
    }
    let flipped = flipped.expect("the victim is in a segment file");
    let flipped_bytes = std::fs::read(&flipped).unwrap();
    tokio_uring::start(async {
        let log = open(&dir);
        let before = raw_batches(&log).await;
        let odd: Vec<Vec<u8>> = before.iter().filter(|b| readable(&[b.to_vec()]).is_empty()).cloned().collect();
        assert_eq!(odd.len(), 3, "noise, bomb and CRC victim");

        let mut cleaner = Cleaner::new(1 << 20);
        let stats = cleaner.clean(&log, &SETTINGS, NOW).await.expect("the round does not fail").expect("due");
        assert_eq!(stats.batches_unreadable, 3, "{stats:?}");
        assert!(stats.unreadable_reason.as_deref().unwrap_or_default().contains(".log at "), "{stats:?}");
        assert!(stats.records_removed >= 20, "{stats:?}");
        let after = raw_batches(&log).await;
        for bad in &odd {
            assert!(after.contains(bad), "an unreadable batch is kept byte for byte");
        }
        assert_eq!(latest(&readable(&after)), latest(&readable(&before)));
        assert_eq!(std::fs::read(&flipped).unwrap(), flipped_bytes, "the CRC victim's segment is kept whole");
        assert!(after.len() < before.len() / 2, "{} batches of {}", after.len(), before.len());
        // Nothing is left dirty below the active segment: the next round has nothing to do.
        assert_eq!(cleaner.clean(&log, &SETTINGS, NOW).await.unwrap(), None);
        log.close().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Appends `updates` rounds of one record per key for `keys` keys, one
/// batch each, and waits for them (and the seals of rolled segments).
async fn append_updates(log: &PartitionLog, keys: usize, updates: usize, tag: &str) {
    for update in 0..updates {
        for key in 0..keys {
            let (key, value) = (format!("key{key}"), format!("{tag}-{update}"));
            let batch = records::build_keyed(1_000, &[(Some(key.as_bytes()), Some(value.as_bytes()))]);
            let info = log.append(&batch, 0, 0).unwrap();
            log.wait_appended(&info).await.unwrap();
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await; // seals land
}

/// Offsets of the records in closed segments that a later record in closed
/// segments supersedes (what a round over them leaves none of).
fn superseded_in_closed(log: &PartitionLog, records: &Contents) -> Vec<i64> {
    let active_base = log.segments().all().last().unwrap().base_offset;
    let closed: Vec<_> = records.iter().filter(|r| r.0 < active_base).collect();
    let last: BTreeMap<&str, i64> = closed.iter().map(|(o, k, _, _)| (k.as_deref().unwrap(), *o)).collect();
    closed.iter().filter(|(o, k, _, _)| last[k.as_deref().unwrap()] != *o).map(|r| r.0).collect()
}

#[test]
fn a_truncation_lowers_the_cleaner_checkpoint_durably_and_later_records_are_cleaned() {
    let dir = temp_dir("truncated-checkpoint");
    tokio_uring::start(async {
        let log = open(&dir);
        append_updates(&log, 10, 10, "a").await;
        let mut cleaner = Cleaner::new(1 << 20);
        let first = cleaner.clean(&log, &SETTINGS, NOW).await.unwrap().expect("due: ratio 0");
        let cleaned_to = super::read_checkpoint(&dir);
        assert!(cleaned_to == first.map_end && cleaned_to > 50, "{first:?}");

        // A follower's truncation below the checkpoint: the checkpoint follows it down, on disk.
        let planned = log.truncations();
        log.truncate_to(30).await.unwrap();
        let end = log.log_end_offset();
        assert!(end <= 30);
        assert_eq!(super::read_checkpoint(&dir), end, "lowered to the new log end");
        // A round that mapped before the truncation does not record it.
        assert!(!log.advance_cleaned_to(cleaned_to, planned).await.unwrap());
        assert_eq!(super::read_checkpoint(&dir), end);

        // New records take the truncated offsets again, and past the old
        // checkpoint: they are dirty, and the next round cleans them.
        append_updates(&log, 10, 10, "b").await;
        assert!(log.log_end_offset() > cleaned_to);
        cleaner.clean(&log, &SETTINGS, NOW).await.unwrap().expect("the new records are dirty");
        let after = read_all(&log).await;
        assert_eq!(
            superseded_in_closed(&log, &after),
            Vec::<i64>::new(),
            "no superseded record left in closed segments"
        );

        // A full truncation lowers it to where the log starts afresh.
        log.truncate_fully_and_start_at(5).await.unwrap();
        assert_eq!(super::read_checkpoint(&dir), 5);
        // A crash right after it (no close): recovery finds it as it was answered.
        drop(log);
        let log = open(&dir);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
        assert_eq!(log.cleaned_to(), 5);
        log.close().await.unwrap();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
