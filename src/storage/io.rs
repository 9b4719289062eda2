//! The seam between the log and the file operations whose failure it must
//! survive: the writer's io_uring writes and fdatasyncs, recovery's
//! truncating fdatasync and the O_DIRECT open a file system may refuse.
//!
//! Production uses [`UringIo`], or [`SyncJournal`] around it when the
//! environment asks for a sync journal (chosen once, in [`from_environment`]).
//! Storage's tests implement the trait to fail writes, fail fdatasyncs, refuse
//! O_DIRECT and remember what a power failure would leave (redb's
//! crash-consistency tests do the same), so no production module carries a
//! test branch.
//!
//! A log holds a `&'static dyn LogIo`: one virtual call and one boxed future
//! per write job or fdatasync, never per message (a write job carries every
//! batch appended while the previous one was in flight), and the log's type,
//! which the shard and the Kafka handlers name, stays free of a parameter.

use std::fs;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::OnceLock;

use crate::runtime::{AlignedBuf, File};

pub use super::sync_journal::SyncJournal;

/// A future of the log's writer task (single-threaded: not Send).
pub type IoFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The file operations of the write path, as the writer and recovery use them.
pub trait LogIo {
    /// Writes all of `buf` at `position` (one io_uring write, or several
    /// after short writes); gives the buffer back for reuse.
    fn write_all_at<'a>(
        &'a self,
        file: &'a File,
        buf: AlignedBuf,
        position: u64,
    ) -> IoFuture<'a, (io::Result<()>, AlignedBuf)>;

    /// fdatasync through io_uring: on Ok, the file's bytes up to its current
    /// length survive a power failure.
    fn sync_data<'a>(&'a self, file: &'a File) -> IoFuture<'a, io::Result<()>>;

    /// A blocking fdatasync, for recovery at start-up (no runtime ops then).
    fn sync_data_blocking(&self, file: &fs::File) -> io::Result<()>;

    /// Opens `path` for O_DIRECT reads and writes; None where the file system
    /// refuses O_DIRECT (EINVAL: tmpfs before Linux 6.6, some FUSE and
    /// network file systems), and the page cache is used instead.
    fn open_direct(&self, path: &Path) -> io::Result<Option<fs::File>>;
}

/// The real thing: io_uring operations on the runtime's files.
pub struct UringIo;

impl LogIo for UringIo {
    fn write_all_at<'a>(
        &'a self,
        file: &'a File,
        buf: AlignedBuf,
        position: u64,
    ) -> IoFuture<'a, (io::Result<()>, AlignedBuf)> {
        Box::pin(file.write_all_at(buf, position))
    }

    fn sync_data<'a>(&'a self, file: &'a File) -> IoFuture<'a, io::Result<()>> {
        Box::pin(file.sync_data())
    }

    fn sync_data_blocking(&self, file: &fs::File) -> io::Result<()> {
        file.sync_data()
    }

    fn open_direct(&self, path: &Path) -> io::Result<Option<fs::File>> {
        use std::os::unix::fs::OpenOptionsExt;
        match fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(path = %path.display(), "O_DIRECT refused: writing through the page cache");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// The I/O every log of this process uses, read from the environment once:
/// the sync journal (see sync_journal.rs) when asked for, else io_uring.
pub fn from_environment() -> &'static dyn LogIo {
    static CHOSEN: OnceLock<Box<dyn LogIo + Send + Sync>> = OnceLock::new();
    &**CHOSEN.get_or_init(|| match SyncJournal::from_environment() {
        Some(journal) => Box::new(journal),
        None => Box::new(UringIo),
    })
}
