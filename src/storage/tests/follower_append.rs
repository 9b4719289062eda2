//! A follower's appends (`append_replicated`): the leader's bytes stored as
//! they are, overlaps and disorder refused with nothing written.

use super::*;

/// Every byte below the written end, as reads give them.
async fn log_bytes(log: &PartitionLog) -> Vec<u8> {
    let mut all = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read(offset, 1 << 20).await.expect("read") {
        let bytes = slice_bytes(&slice);
        offset = headers(&bytes).last().unwrap().last_offset() + 1;
        all.extend(bytes);
    }
    all
}

/// A leader's log of `batches` batches of 1 to 3 records, stamped with
/// epochs that change on the way, and its bytes.
async fn leader_bytes(dir: &Path, batches: i64) -> Vec<u8> {
    let (leader, _) = open(dir, LogConfig::default(), true);
    for i in 0..batches {
        let info = leader.append(&batch_of(i, 1 + (i % 3) as usize, 40), (i / 4) as i32, 1000).unwrap();
        leader.wait_appended(&info).await.unwrap();
    }
    log_bytes(&leader).await
}

/// The batches of `bytes`, each as its own byte range.
fn split(bytes: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut at = 0;
    for header in headers(bytes) {
        parts.push(&bytes[at..at + header.total_bytes()]);
        at += header.total_bytes();
    }
    parts
}

#[test]
fn a_followers_appends_read_back_byte_for_byte_across_rolls_and_a_restart() {
    for direct_io in [false, true] {
        run(async {
            let (leader_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let leader = leader_bytes(leader_dir.path(), 30).await;
            let config = LogConfig { direct_io, ..small_segments(700) };
            let (log, _) = open(dir.path(), config, true);
            // Fetch answers of one, two and three batches.
            let batches = split(&leader);
            let mut at = 0;
            for (i, count) in [1, 2, 3].iter().cycle().enumerate() {
                if at >= batches.len() {
                    break;
                }
                let fetched = batches[at..(at + count).min(batches.len())].concat();
                let first = BatchHeader::parse(&fetched).unwrap().base_offset;
                let info = log.append_replicated(&fetched, 1000 + i as i64).unwrap();
                assert_eq!(info.base_offset, first, "the leader's offsets, not reassigned");
                log.wait_appended(&info).await.unwrap();
                assert_eq!(log.log_end_offset(), info.last_offset + 1);
                at += count;
            }
            assert!(log_files(dir.path()).len() > 3, "the follower rolled its segments");
            assert_eq!(log_bytes(&log).await, leader, "the leader's bytes, epochs and offsets included");
            drop(log);
            let (log, _) = open(dir.path(), config, false);
            assert_eq!(log_bytes(&log).await, leader, "and after a crash and recovery");
        });
    }
}

#[test]
fn an_overlap_or_a_disordered_fetch_is_refused_and_writes_nothing() {
    run(async {
        let (leader_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = leader_bytes(leader_dir.path(), 6).await;
        let batches = split(&leader);
        let (log, _) = open(dir.path(), LogConfig::default(), true);
        let info = log.append_replicated(&batches[..3].concat(), 1000).unwrap();
        log.wait_appended(&info).await.unwrap();
        let (end, bytes) = (log.log_end_offset(), log_bytes(&log).await);
        // The last batch again (a refetch below the log end), or with the next ones.
        for overlap in [batches[2].to_vec(), batches[2..5].concat()] {
            assert!(matches!(
                log.append_replicated(&overlap, 1000),
                Err(StorageError::ReplicaOverlap { log_end_offset, .. }) if log_end_offset == end
            ));
        }
        let disordered = [batches[3], batches[5], batches[4]].concat();
        assert!(matches!(log.append_replicated(&disordered, 1000), Err(StorageError::ReplicaOffsetsOutOfOrder { .. })));
        let mut corrupt = batches[3].to_vec();
        *corrupt.last_mut().unwrap() ^= 0xff;
        assert!(matches!(log.append_replicated(&corrupt, 1000), Err(StorageError::InvalidBatch(_))));
        let torn = &batches[3][..batches[3].len() - 1];
        assert!(matches!(log.append_replicated(torn, 1000), Err(StorageError::InvalidBatch(_))));
        // Refused before anything was queued: there is no write to wait for.
        assert_eq!((log.log_end_offset(), log.written_end_offset()), (end, end), "nothing was appended");
        assert_eq!(log_bytes(&log).await, bytes);
        assert_padded(&std::fs::read(segment::log_path(dir.path(), 0)).unwrap(), &bytes);
        // The right fetch still goes on.
        let info = log.append_replicated(&batches[3..].concat(), 1000).unwrap();
        log.wait_appended(&info).await.unwrap();
        assert_eq!(log_bytes(&log).await, leader);
    });
}

#[test]
fn a_gap_that_compaction_left_in_the_leaders_log_is_kept() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path(), LogConfig::default(), true);
        let mut first = batch_of(1, 2, 10);
        batch::set_base_offset(&mut first, 0);
        let mut after_gap = batch_of(2, 1, 10);
        batch::set_base_offset(&mut after_gap, 7);
        let info = log.append_replicated(&[first.clone(), after_gap.clone()].concat(), 1000).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 7));
        log.wait_appended(&info).await.unwrap();
        assert_eq!(log.log_end_offset(), 8);
        let read = headers(&slice_bytes(&log.read(3, 1 << 20).await.unwrap().unwrap()));
        assert_eq!(read[0].base_offset, 7, "a read in the gap answers the next batch");
        drop(log);
        let (log, _) = open(dir.path(), LogConfig::default(), false);
        assert_eq!(log.log_end_offset(), 8);
    });
}
