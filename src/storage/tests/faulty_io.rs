//! A `LogIo` that fails on demand and remembers what a power failure would
//! leave: the storage tests' backend. Each test runs on its own thread with
//! its own runtime, so one instance per thread keeps tests apart.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::runtime::{align_down, AlignedBuf, BoundedBuf, File};

use super::super::io::{IoFuture, LogIo, UringIo};

#[derive(Default)]
pub struct FaultyIo {
    /// Each segment file's length at its last completed fdatasync: what a
    /// power failure would leave of it.
    synced: RefCell<HashMap<PathBuf, u64>>,
    /// Writes to fail: each writes half of its bytes, then reports ENOSPC.
    failing_writes: Cell<u32>,
    /// fdatasyncs to fail with EIO.
    failing_syncs: Cell<u32>,
    /// Act as a file system without O_DIRECT.
    refuse_o_direct: Cell<bool>,
    writes: Cell<u32>,
    syncs: Cell<u32>,
}

thread_local! {
    static THIS_THREAD: &'static FaultyIo = Box::leak(Box::default());
}

/// This test's (this thread's) instance.
pub fn io() -> &'static FaultyIo {
    THIS_THREAD.with(|io| *io)
}

impl FaultyIo {
    pub fn fail_writes(&self, count: u32) {
        self.failing_writes.set(count);
    }

    pub fn fail_syncs(&self, count: u32) {
        self.failing_syncs.set(count);
    }

    /// fdatasyncs still to fail.
    pub fn failing_syncs(&self) -> u32 {
        self.failing_syncs.get()
    }

    pub fn refuse_o_direct(&self) {
        self.refuse_o_direct.set(true);
    }

    /// Writes tried so far.
    pub fn writes(&self) -> u32 {
        self.writes.get()
    }

    /// fdatasyncs tried so far (through io_uring).
    pub fn syncs(&self) -> u32 {
        self.syncs.get()
    }

    /// The length `path` had at its last completed fdatasync; 0 if never synced.
    pub fn synced_length(&self, path: &Path) -> u64 {
        let path = path.canonicalize().expect("a segment file");
        self.synced.borrow().get(&path).copied().unwrap_or(0)
    }

    fn note_synced(&self, fd: i32) {
        let link = format!("/proc/self/fd/{fd}");
        let path = fs::read_link(&link).expect("a synced file has a name");
        let length = fs::metadata(&link).expect("a synced file has a length").len();
        self.synced.borrow_mut().insert(path, length);
    }
}

/// Takes one from a countdown of failures: true if this operation fails.
fn take_one(failing: &Cell<u32>) -> bool {
    let left = failing.get();
    failing.set(left.saturating_sub(1));
    left > 0
}

impl LogIo for FaultyIo {
    fn write_all_at<'a>(
        &'a self,
        file: &'a File,
        buf: AlignedBuf,
        position: u64,
    ) -> IoFuture<'a, (io::Result<()>, AlignedBuf)> {
        self.writes.set(self.writes.get() + 1);
        if !take_one(&self.failing_writes) {
            return UringIo.write_all_at(file, buf, position);
        }
        Box::pin(async move {
            // The torn half: whole blocks, as O_DIRECT writes them.
            let half = align_down(buf.len() as u64 / 2) as usize;
            if half == 0 {
                return (Err(io::Error::from_raw_os_error(libc::ENOSPC)), buf);
            }
            let (result, buf) = file.write_all_at(buf.slice(..half), position).await;
            result.expect("writing the torn half");
            (Err(io::Error::from_raw_os_error(libc::ENOSPC)), buf.into_inner())
        })
    }

    fn sync_data<'a>(&'a self, file: &'a File) -> IoFuture<'a, io::Result<()>> {
        self.syncs.set(self.syncs.get() + 1);
        let fail = take_one(&self.failing_syncs);
        Box::pin(async move {
            if fail {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            file.sync_data().await?;
            self.note_synced(file.as_raw_fd());
            Ok(())
        })
    }

    fn sync_data_blocking(&self, file: &fs::File) -> io::Result<()> {
        file.sync_data()?;
        self.note_synced(file.as_raw_fd());
        Ok(())
    }

    fn open_direct(&self, path: &Path) -> io::Result<Option<fs::File>> {
        match self.refuse_o_direct.get() {
            true => Ok(None),
            false => UringIo.open_direct(path),
        }
    }
}
