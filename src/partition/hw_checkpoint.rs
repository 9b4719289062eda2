//! The high watermarks of a shard's replicas, checkpointed (Kafka's
//! `replication-offset-checkpoint`): written every
//! replica.high.watermark.checkpoint.interval.ms and at clean shutdown, read
//! when the shard opens its replicas, so that a restarted replica starts
//! from the high watermark it had (bounded by its log end) rather than
//! from 0. Without it a restarted leader would hide every record until each
//! in-sync follower has fetched again (or left the ISR after
//! replica.lag.time.max.ms). What a crash leaves may be older than what was
//! answered: ListOffsets is refused until it has caught up again
//! (`Replica::check_high_watermark_settled`).
//!
//! One file per shard in the data directory (`replication-offset-checkpoint-<shard>`):
//! the shards share nothing, so each writes its own, as Kafka writes one per
//! log directory. It holds the shard's replicated partitions (a single
//! replica's high watermark is its log end). Kafka's text format:
//!
//! ```text
//! 0                  version
//! 2                  number of entries
//! orders 0 1500      topic partition high_watermark
//! orders 3 20
//! ```
//!
//! Replaced whole (temporary file, fsync, rename, directory fsync), so a
//! crash leaves the old file or the new one. A checkpointed high watermark
//! is one every in-sync replica held when it was written: starting from it
//! exposes nothing a later truncation can remove. A file that does not
//! parse is refused with the line at fault; the shard then starts its
//! replicas from 0, as before the file existed, which is safe.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::model::TopicPartition;

/// The only version of the format Kafka has written.
const CHECKPOINT_VERSION: u32 = 0;
/// Entries a checkpoint may hold: bounds what a damaged count line can make
/// us allocate (a shard hosts far fewer partitions).
const CHECKPOINT_ENTRIES_MAX: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum HighWatermarkCheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: line {line}: {why}: refusing a high watermark checkpoint that is not Kafka's format")]
    Corrupt { path: PathBuf, line: usize, why: String },
}

/// The checkpoint file of shard `shard` in `data_dir`.
pub fn path(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("replication-offset-checkpoint-{shard}"))
}

/// Reads a checkpoint; an absent file has no entries.
pub fn read(path: &Path) -> Result<HashMap<TopicPartition, i64>, HighWatermarkCheckpointError> {
    match fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(source) => Err(HighWatermarkCheckpointError::Io { path: path.to_path_buf(), source }),
    }
}

/// The file's text for `entries` (sorted, so that an unchanged set of high
/// watermarks gives the same text and need not be written again).
pub fn format(entries: &mut [(TopicPartition, i64)]) -> String {
    entries.sort_by(|a, b| (&a.0.topic, a.0.partition).cmp(&(&b.0.topic, b.0.partition)));
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for (id, hw) in entries.iter() {
        text.push_str(&format!("{} {} {hw}\n", id.topic, id.partition));
    }
    text
}

/// Replaces the checkpoint with `text` (from [`format`]), crash-safely.
pub fn write(path: &Path, text: &str) -> Result<(), HighWatermarkCheckpointError> {
    crate::runtime::durable::replace(path, text.as_bytes())
        .map_err(|source| HighWatermarkCheckpointError::Io { path: path.to_path_buf(), source })
}

fn parse(path: &Path, text: &str) -> Result<HashMap<TopicPartition, i64>, HighWatermarkCheckpointError> {
    let corrupt =
        |line: usize, why: String| HighWatermarkCheckpointError::Corrupt { path: path.to_path_buf(), line, why };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut next = |what: &str| lines.next().ok_or_else(|| corrupt(0, format!("ends before its {what}")));
    let (n, version) = next("version line")?;
    if version.trim().parse::<u32>().ok() != Some(CHECKPOINT_VERSION) {
        return Err(corrupt(n, format!("version {version:?}, expected {CHECKPOINT_VERSION}")));
    }
    let (n, count) = next("count line")?;
    let count: usize = count.trim().parse().map_err(|_| corrupt(n, format!("count {count:?} is not a number")))?;
    if count > CHECKPOINT_ENTRIES_MAX {
        return Err(corrupt(n, format!("count {count} exceeds {CHECKPOINT_ENTRIES_MAX}")));
    }
    let mut entries = HashMap::with_capacity(count);
    for _ in 0..count {
        let (n, line) = next("entries")?;
        // Topic names hold no spaces (Kafka's legal characters): split from the right all the same.
        let mut fields = line.trim().rsplitn(3, ' ');
        let (hw, partition, topic) = (fields.next(), fields.next(), fields.next());
        let (Some(hw), Some(partition), Some(topic)) = (hw, partition, topic) else {
            return Err(corrupt(n, format!("{line:?} is not `topic partition high_watermark`")));
        };
        let partition: i32 = partition.parse().map_err(|_| corrupt(n, format!("partition {partition:?}")))?;
        let hw: i64 = hw.parse().map_err(|_| corrupt(n, format!("high watermark {hw:?}")))?;
        if hw < 0 || partition < 0 {
            return Err(corrupt(n, format!("{line:?}: negative")));
        }
        entries.insert(TopicPartition::new(topic, partition), hw);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), 1);
        assert!(read(&path).unwrap().is_empty(), "no file: no entries");
        let mut entries = vec![(TopicPartition::new("orders", 3), 20), (TopicPartition::new("orders", 0), 1500)];
        let text = format(&mut entries);
        assert_eq!(text, "0\n2\norders 0 1500\norders 3 20\n", "Kafka's format, sorted");
        write(&path, &text).unwrap();
        let read = read(&path).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[&TopicPartition::new("orders", 0)], 1500);
        assert_eq!(read[&TopicPartition::new("orders", 3)], 20);
    }

    #[test]
    fn a_damaged_checkpoint_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), 0);
        for (text, line) in [
            ("1\n0\n", 1),
            ("0\nmany\n", 2),
            ("0\n2\nt 0 5\n", 0),
            ("0\n1\nt x 5\n", 3),
            ("0\n1\nt 0 -5\n", 3),
            ("0\n1\nt5\n", 3),
            ("0\n99999999999\n", 2),
        ] {
            std::fs::write(&path, text).unwrap();
            match read(&path) {
                Err(HighWatermarkCheckpointError::Corrupt { line: at, .. }) => assert_eq!(at, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
