//! A test hook for the integration tests, chosen once at start-up (see
//! `io::from_environment`): with `CORELOG_TEST_SYNC_JOURNAL=<file>` in the
//! environment, every completed fdatasync of a segment file appends
//! `<path> <length>` to that file. A crash test can then cut each segment
//! back to its last synced length after SIGKILL, which is what a power
//! failure may leave, and so test the fsync promise itself rather than only
//! process death.
//!
//! Unset (always, outside tests), logs use `UringIo` directly: the write
//! path holds no check for it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::runtime::{AlignedBuf, File as UringFile};

use super::io::{IoFuture, LogIo, UringIo};

const VARIABLE: &str = "CORELOG_TEST_SYNC_JOURNAL";

/// `UringIo` that journals each completed fdatasync.
pub struct SyncJournal {
    journal: File,
}

impl SyncJournal {
    /// The journal the environment names, if any (opened for appending).
    pub fn from_environment() -> Option<SyncJournal> {
        let path = std::env::var_os(VARIABLE)?;
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(journal) => Some(SyncJournal { journal }),
            Err(error) => {
                tracing::error!(path = ?path, %error, "cannot open the sync journal");
                None
            }
        }
    }

    /// Records that `fd`'s bytes up to its current length are synced. Called
    /// right after the fdatasync returned, before anything is acknowledged,
    /// where no write to the file can run in between (the writer task).
    #[cold]
    fn record(&self, fd: i32) {
        let link = format!("/proc/self/fd/{fd}");
        let entry = fs::read_link(&link).and_then(|path| Ok((path, fs::metadata(&link)?.len())));
        match entry {
            // One write of one short line with O_APPEND: shards never interleave.
            Ok((path, length)) => {
                let _ = (&self.journal).write_all(format!("{} {length}\n", path.display()).as_bytes());
            }
            Err(error) => tracing::error!(%error, "sync journal: cannot name a synced file"),
        }
    }
}

impl LogIo for SyncJournal {
    fn write_all_at<'a>(
        &'a self,
        file: &'a UringFile,
        buf: AlignedBuf,
        position: u64,
    ) -> IoFuture<'a, (io::Result<()>, AlignedBuf)> {
        UringIo.write_all_at(file, buf, position)
    }

    fn sync_data<'a>(&'a self, file: &'a UringFile) -> IoFuture<'a, io::Result<()>> {
        Box::pin(async move {
            UringIo.sync_data(file).await?;
            self.record(file.as_raw_fd());
            Ok(())
        })
    }

    fn sync_data_blocking(&self, file: &File) -> io::Result<()> {
        UringIo.sync_data_blocking(file)?;
        self.record(file.as_raw_fd());
        Ok(())
    }

    fn open_direct(&self, path: &Path) -> io::Result<Option<File>> {
        UringIo.open_direct(path)
    }
}
