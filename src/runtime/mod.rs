//! Shard threads and their io_uring event loops. Knows nothing of Kafka.
//!
//! tokio-uring has had no active maintainer since 2025, so every use of it in
//! the crate goes through this module: moving to compio or to the io-uring
//! crate alone should be this module's change only.

mod aligned;
pub mod alloc;
pub mod splice;
mod threads;

pub use aligned::{align_down, AlignedBuf, DIRECT_IO_ALIGN};
pub use threads::{check_io_uring, raise_open_file_limit, spawn_shards, ShardThread};
pub use tokio_uring::buf::{BoundedBuf, BoundedBufMut};
pub use tokio_uring::fs::{remove_file, rename, File};
pub use tokio_uring::net::{TcpListener, TcpStream};

/// Spawns a task on the current shard's loop. Tasks never leave their shard.
pub fn spawn<F: std::future::Future + 'static>(task: F) -> tokio::task::JoinHandle<F::Output> {
    tokio_uring::spawn(task)
}

/// Wraps a std file so its reads and writes go through the shard's io_uring.
pub fn file_from_std(file: std::fs::File) -> File {
    File::from_std(file)
}

/// Sets a file's length (ftruncate) without going through the ring: a cold
/// path (segment seals, a clean close).
pub fn set_len(file: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: ftruncate on a descriptor the File owns and keeps open.
    if unsafe { libc::ftruncate(file.as_raw_fd(), len) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs a shard's background loop (retention, the cleaner) as a task, and
/// starts it again when it panics: a bug met on one partition must not stop
/// that work for every partition of the shard until a restart. The panic
/// itself is reported by the panic hook; this logs the restart. A loop that
/// returns is done.
pub fn supervise<F, Fut>(name: &'static str, shard: usize, mut start: F)
where
    F: FnMut() -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    /// Pause before a restart, so a loop that panics at once does not spin.
    const RESTART_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
    spawn(async move {
        loop {
            match spawn(start()).await {
                Ok(()) => return,
                Err(error) if error.is_panic() => {
                    tracing::error!(shard, task = name, "background task panicked: restarting it");
                    tokio::time::sleep(RESTART_PAUSE).await;
                }
                Err(_) => return, // cancelled: the runtime is stopping
            }
        }
    });
}
