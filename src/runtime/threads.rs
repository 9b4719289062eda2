//! One OS thread per shard, pinned to its own core, each running its own
//! single-threaded io_uring loop.

use std::future::Future;
use std::io;
use std::thread::JoinHandle;

/// Submission queue depth per shard. Large enough that a loop turn's writes,
/// reads and splices never wait for queue space.
const RING_ENTRIES: u32 = 1024;

pub struct ShardThread {
    pub id: usize,
    pub handle: JoinHandle<()>,
}

/// Starts `count` shard threads. Shard `s` is pinned to the `s`-th core the
/// process may run on (wrapping when there are more shards than cores) and
/// runs `body(s)` to completion on its own io_uring runtime.
pub fn spawn_shards<F, Fut>(count: usize, body: F) -> io::Result<Vec<ShardThread>>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    (0..count)
        .map(|id| {
            let body = body.clone();
            let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
            let handle = std::thread::Builder::new().name(format!("shard-{id}")).spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        tracing::warn!(shard = id, "could not pin shard thread to its core");
                    }
                }
                tokio_uring::builder().entries(RING_ENTRIES).start(body(id));
            })?;
            Ok(ShardThread { id, handle })
        })
        .collect()
}

/// Raises the soft open-file limit to the hard one: every client connection
/// and every segment is a descriptor, and the usual soft limit of 1024 would
/// refuse clients long before memory runs short. Returns the limit in force.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Checks that this process can create an io_uring, and turns the usual
/// refusals into a message naming the cause and the fix.
pub fn check_io_uring() -> Result<(), String> {
    match io_uring::IoUring::new(8) {
        Ok(_) => Ok(()),
        Err(e) => Err(explain_io_uring_error(&e)),
    }
}

fn explain_io_uring_error(e: &io::Error) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").unwrap_or_default();
    match e.raw_os_error() {
        Some(libc::ENOSYS) => "io_uring is not available: this kernel does not implement io_uring_setup (ENOSYS). \
             corelog needs Linux 5.11 or newer built with CONFIG_IO_URING."
            .into(),
        Some(libc::EPERM) | Some(libc::EACCES) if disabled.trim() != "0" && !disabled.is_empty() => format!(
            "io_uring is disabled by the kernel (kernel.io_uring_disabled = {}). \
             Fix: `sysctl -w kernel.io_uring_disabled=0` (or 1 and run corelog in the io_uring group).",
            disabled.trim()
        ),
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "io_uring_setup was refused (EPERM): a seccomp profile is blocking io_uring, \
             as container runtimes do by default. Fix: run the container with a seccomp profile that allows \
             io_uring_setup/io_uring_enter/io_uring_register (e.g. docker --security-opt seccomp=unconfined)."
                .into()
        }
        Some(libc::ENOMEM) => {
            "io_uring_setup failed with ENOMEM: the locked-memory limit (RLIMIT_MEMLOCK) is too small \
             for the ring. Fix: `ulimit -l unlimited` (or raise memlock in limits.conf / the container's ulimits)."
                .into()
        }
        _ => format!("io_uring_setup failed: {e}"),
    }
}
