//! The cleaner's files in a partition directory, and how they survive a crash.
//!
//! ```text
//! cleaner-offset-checkpoint   "0\n<offset>\n": every offset below <offset> was
//!                             in a cleaning's mapped section. Written whole
//!                             (temp file, fsync, rename, directory fsync).
//! <base:020>.log.cleaned      a cleaned copy being written; discarded at start-up.
//! <base:020>.log.swap         a finished, fsynced copy that replaces <base>.log;
//!                             start-up completes the replacement.
//! ```
//!
//! A swap: `.cleaned` is fsynced, renamed to `.swap` (from here on the swap
//! happens even after a crash), the old segment's index files are removed
//! (they describe the old file), `.swap` is renamed over `.log`, the directory
//! is fsynced and the new index files are written. Readers that opened the
//! old `.log` keep reading it: the rename only unlinks its name.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::runtime::file_from_std;

use super::super::error::{IoContext, StorageError};
use super::super::segment;

const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
const CHECKPOINT_VERSION: &str = "0";

pub fn cleaned_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log.cleaned"))
}

fn swap_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log.swap"))
}

/// The cleaner checkpoint of the log in `dir`; 0 when there is none (never
/// cleaned) or it cannot be read, which only costs cleaning more again.
pub fn read_checkpoint(dir: &Path) -> i64 {
    let Ok(text) = fs::read_to_string(dir.join(CHECKPOINT_FILE)) else { return 0 };
    let mut lines = text.lines();
    match (lines.next(), lines.next().map(str::parse::<i64>)) {
        (Some(CHECKPOINT_VERSION), Some(Ok(offset))) if offset >= 0 => offset,
        _ => {
            tracing::warn!(dir = %dir.display(), "ignoring an unreadable cleaner checkpoint");
            0
        }
    }
}

/// Replaces the checkpoint crash-safely: a crash leaves the old or the new one.
pub async fn write_checkpoint(dir: &Path, offset: i64) -> Result<(), StorageError> {
    let temp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let file = file_from_std(fs::File::create(&temp).context(|| format!("creating {}", temp.display()))?);
    let (result, _) = file.write_all_at(format!("{CHECKPOINT_VERSION}\n{offset}\n").into_bytes(), 0).await;
    result.context(|| format!("writing {}", temp.display()))?;
    file.sync_all().await.context(|| format!("syncing {}", temp.display()))?;
    file.close().await.context(|| format!("closing {}", temp.display()))?;
    fs::rename(&temp, dir.join(CHECKPOINT_FILE)).context(|| format!("renaming {}", temp.display()))?;
    sync_dir(dir).await
}

/// Makes renames and unlinks in `dir` durable.
pub async fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let handle = file_from_std(fs::File::open(dir).context(|| format!("opening {}", dir.display()))?);
    handle.sync_all().await.context(|| format!("syncing directory {}", dir.display()))?;
    handle.close().await.context(|| format!("closing {}", dir.display()))
}

/// Replaces segment `base_offset` by its fsynced `.cleaned` copy. Renames
/// and unlinks only, no data I/O: the caller runs it in one step with its
/// check that the segment is still in the log, then fsyncs the directory.
pub fn commit_swap(dir: &Path, base_offset: i64) -> io::Result<()> {
    let swap = swap_path(dir, base_offset);
    fs::rename(cleaned_path(dir, base_offset), &swap)?;
    replace_with_swap(dir, base_offset, &swap)
}

fn replace_with_swap(dir: &Path, base_offset: i64, swap: &Path) -> io::Result<()> {
    for stale in [segment::index_path(dir, base_offset), segment::time_index_path(dir, base_offset)] {
        match fs::remove_file(&stale) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    fs::rename(swap, segment::log_path(dir, base_offset))
}

/// Start-up: completes swaps a crash interrupted and discards unfinished
/// cleaned copies, before the segments are listed.
pub fn finish_interrupted(dir: &Path) -> Result<(), StorageError> {
    let entries = fs::read_dir(dir).context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let name = entry.context(|| format!("listing {}", dir.display()))?.file_name();
        let Some(name) = name.to_str() else { continue };
        let base = |suffix| name.strip_suffix(suffix).and_then(|stem| stem.parse::<i64>().ok());
        if let Some(base_offset) = base(".log.swap") {
            tracing::warn!(dir = %dir.display(), base_offset, "completing a cleaned segment swap cut short by a crash");
            let swap = dir.join(name);
            replace_with_swap(dir, base_offset, &swap).context(|| format!("completing swap {}", swap.display()))?;
        } else if base(".log.cleaned").is_some() || name == format!("{CHECKPOINT_FILE}.tmp") {
            let path = dir.join(name);
            fs::remove_file(&path).context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: PathBuf, bytes: &[u8]) {
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn recovery_completes_swaps_and_discards_cleaned_copies() {
        let dir = std::env::temp_dir().join(format!("corelog-swap-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        write(segment::log_path(&dir, 0), b"old zero");
        write(segment::index_path(&dir, 0), b"stale index");
        write(segment::time_index_path(&dir, 0), b"stale time");
        write(swap_path(&dir, 0), b"new zero");
        write(segment::log_path(&dir, 10), b"old ten");
        write(cleaned_path(&dir, 10), b"half written");
        write(dir.join("cleaner-offset-checkpoint.tmp"), b"0\n");

        finish_interrupted(&dir).unwrap();

        assert_eq!(fs::read(segment::log_path(&dir, 0)).unwrap(), b"new zero");
        assert!(!segment::index_path(&dir, 0).exists(), "the old index must not describe the new file");
        assert!(!segment::time_index_path(&dir, 0).exists());
        assert!(!swap_path(&dir, 0).exists());
        assert_eq!(fs::read(segment::log_path(&dir, 10)).unwrap(), b"old ten");
        assert!(!cleaned_path(&dir, 10).exists());
        assert!(!dir.join("cleaner-offset-checkpoint.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checkpoint_round_trips_and_tolerates_garbage() {
        let dir = std::env::temp_dir().join(format!("corelog-checkpoint-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_checkpoint(&dir), 0);
        tokio_uring::start(write_checkpoint(&dir, 1234)).unwrap();
        assert_eq!(read_checkpoint(&dir), 1234);
        write(dir.join(CHECKPOINT_FILE), b"7\nnot a number\n");
        assert_eq!(read_checkpoint(&dir), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
