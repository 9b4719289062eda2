//! A test hook: with `CORELOG_TEST_SYNC_JOURNAL=<file>` in the environment,
//! every completed fdatasync of a segment file appends `<path> <length>` to
//! that file. A crash test can then cut each segment back to its last synced
//! length after SIGKILL, which is what a power failure may leave, and so test
//! the fsync promise itself rather than only process death.
//!
//! Unset (always, outside tests), the cost is one atomic load per fdatasync.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

const VARIABLE: &str = "CORELOG_TEST_SYNC_JOURNAL";

static JOURNAL: OnceLock<Option<File>> = OnceLock::new();

/// Records that `file`'s bytes up to its current length are synced. Call
/// right after the fdatasync returned, before anything is acknowledged, and
/// only where no write to the file can run in between (the writer task).
pub fn note_synced(file: &impl AsRawFd) {
    #[cfg(test)]
    super::writer::fault::note_synced(file.as_raw_fd());
    if let Some(journal) = JOURNAL.get_or_init(open_journal) {
        record(journal, file.as_raw_fd());
    }
}

fn open_journal() -> Option<File> {
    let path = std::env::var_os(VARIABLE)?;
    match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(file) => Some(file),
        Err(error) => {
            tracing::error!(path = ?path, %error, "cannot open the sync journal");
            None
        }
    }
}

#[cold]
fn record(mut journal: &File, fd: i32) {
    let link = format!("/proc/self/fd/{fd}");
    let entry = fs::read_link(&link).and_then(|path| Ok((path, fs::metadata(&link)?.len())));
    match entry {
        // One write of one short line with O_APPEND: shards never interleave.
        Ok((path, length)) => {
            let _ = journal.write_all(format!("{} {length}\n", path.display()).as_bytes());
        }
        Err(error) => tracing::error!(%error, "sync journal: cannot name a synced file"),
    }
}
