//! Zero-copy transfer of file bytes to a socket: splice file → pipe → socket
//! through io_uring, so record bytes never enter user space.

use std::any::Any;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{cqueue, opcode, types};
use tokio_uring::{OneshotOutputTransform, UnsubmittedOneshot};

/// Pipe size asked for; Linux caps it at /proc/sys/fs/pipe-max-size (1 MiB by default).
const PIPE_BYTES: i32 = 1 << 20;

/// A pipe owned by one connection, used as the splice intermediary.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: u32,
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid two-element array for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and ours.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on a descriptor we own; failure just leaves the default size.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
        let capacity = if size > 0 { size as u32 } else { 64 * 1024 };
        Ok(Pipe { read, write, capacity })
    }
}

struct SpliceDone;

impl OneshotOutputTransform for SpliceDone {
    type Output = io::Result<u32>;
    type StoredData = Box<dyn Any>;

    fn transform_oneshot_output(self, _keepalive: Box<dyn Any>, cqe: cqueue::Entry) -> io::Result<u32> {
        let result = cqe.result();
        if result < 0 {
            Err(io::Error::from_raw_os_error(-result))
        } else {
            Ok(result as u32)
        }
    }
}

/// One splice(2) through the ring. `keepalive` holds whatever owns the
/// descriptors until the kernel is done, even if the caller goes away.
async fn splice(fd_in: RawFd, off_in: i64, fd_out: RawFd, len: u32, keepalive: Box<dyn Any>) -> io::Result<u32> {
    let sqe = opcode::Splice::new(types::Fd(fd_in), off_in, types::Fd(fd_out), -1, len).build();
    UnsubmittedOneshot::new(keepalive, SpliceDone, sqe).submit().await
}

/// Sends `len` bytes of `file` starting at `position` to `socket`, by way of
/// `pipe`. The file is kept open by `file_owner` until the transfer ends.
pub async fn send_file_range<F: AsRawFd + 'static>(
    pipe: &Pipe,
    file_owner: std::rc::Rc<F>,
    position: u64,
    len: u64,
    socket: RawFd,
) -> io::Result<()> {
    let file = file_owner.as_raw_fd();
    let mut sent = 0u64;
    while sent < len {
        let chunk = (len - sent).min(pipe.capacity as u64) as u32;
        let filled =
            splice(file, (position + sent) as i64, pipe.write.as_raw_fd(), chunk, Box::new(file_owner.clone())).await?;
        if filled == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "segment file shorter than its index says"));
        }
        let mut drained = 0;
        while drained < filled {
            let n = splice(pipe.read.as_raw_fd(), -1, socket, filled - drained, Box::new(())).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "peer closed during fetch"));
            }
            drained += n;
        }
        sent += filled as u64;
    }
    Ok(())
}
