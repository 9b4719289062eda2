//! Shard threads and their io_uring event loops. Knows nothing of Kafka.
//!
//! tokio-uring has had no active maintainer since 2025, so every use of it in
//! the crate goes through this module: moving to compio or to the io-uring
//! crate alone should be this module's change only.

mod aligned;
pub mod alloc;
pub mod durable;
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

/// How long a panicked task waits before `supervise` starts it again, so a
/// task that panics at once every time costs a log line a second, not a core.
const RESTART_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs a shard's background task until it returns, starting it again
/// (after `RESTART_DELAY`) whenever it panics: a panic is a bug, but one
/// task's bug must not silently stop what the task drives for the whole
/// shard. The panic hook has printed the panic; the restart is logged here.
pub async fn supervise<F, Fut>(name: &'static str, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    loop {
        match spawn(start()).await {
            Err(e) if e.is_panic() => {
                tracing::error!(task = name, "BUG: the task panicked; starting it again");
                tokio::time::sleep(RESTART_DELAY).await;
            }
            // Returned, or cancelled because the shard's loop is ending.
            _ => return,
        }
    }
}

/// Gives the shard's other tasks a turn once every `steps` calls to
/// [`YieldEvery::step`], so a loop over a large request does not hold up
/// every other connection of the shard until it ends.
pub struct YieldEvery {
    steps: usize,
    taken: usize,
}

impl YieldEvery {
    pub fn new(steps: usize) -> YieldEvery {
        assert!(steps > 0);
        YieldEvery { steps, taken: 0 }
    }

    pub async fn step(&mut self) {
        self.taken += 1;
        if self.taken % self.steps == 0 {
            tokio::task::yield_now().await;
        }
    }
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn a_supervised_task_that_panics_is_started_again() {
        tokio_uring::start(async {
            let runs = Rc::new(Cell::new(0));
            let counted = runs.clone();
            super::supervise("test", move || {
                let runs = counted.clone();
                async move {
                    runs.set(runs.get() + 1);
                    assert!(runs.get() > 1, "the first run panics");
                }
            })
            .await;
            assert_eq!(runs.get(), 2);
        });
    }
}
