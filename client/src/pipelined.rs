//! A non-blocking connection for a data path that keeps many requests in
//! flight (the load generator's Produce and Fetch, driven by `poll`): frames
//! go out from the caller's buffers, whole response frames come in without
//! being copied (they are split off the read buffer as `Bytes`).

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::connection::open_stream;
use crate::error::ClientError;
use crate::frame::{checked_size, SIZE_PREFIX_BYTES};

/// A response frame larger than this is refused rather than allocated.
pub const RESPONSE_BYTES_MAX: usize = 1 << 30;

/// Bytes read per `read` call at least (a whole fetch response at most).
const READ_CHUNK_BYTES: usize = 256 * 1024;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One non-blocking connection; the caller matches responses to requests
/// (Kafka answers a connection's requests in order).
pub struct Pipelined {
    addr: String,
    stream: TcpStream,
    read_buffer: BytesMut,
}

impl Pipelined {
    pub fn connect(addr: &str) -> Result<Pipelined, ClientError> {
        let stream = open_stream(addr, CONNECT_TIMEOUT)?;
        stream.set_nonblocking(true).map_err(|source| ClientError::Io {
            action: "configuring the socket to",
            addr: addr.to_string(),
            source,
        })?;
        Ok(Pipelined { addr: addr.to_string(), stream, read_buffer: BytesMut::with_capacity(READ_CHUNK_BYTES) })
    }

    /// The socket, for `poll`.
    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Writes what the socket takes now; 0 if it would block.
    pub fn write_some(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.stream.write(data) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::WriteZero, "connection closed")),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Reads what is available and hands each complete frame (size prefix
    /// removed) to `on_frame`. Returns an error on EOF or a bad frame.
    pub fn read_frames<E: From<ClientError>>(
        &mut self,
        mut on_frame: impl FnMut(Bytes) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            // Deliver every complete frame already buffered.
            while self.read_buffer.len() >= SIZE_PREFIX_BYTES {
                let prefix = self.read_buffer[..SIZE_PREFIX_BYTES].try_into().expect("a 4-byte slice");
                let total = SIZE_PREFIX_BYTES + checked_size(prefix, RESPONSE_BYTES_MAX)?;
                if self.read_buffer.len() < total {
                    // Room for the whole frame in one allocation.
                    self.read_buffer.reserve(total - self.read_buffer.len());
                    break;
                }
                let mut frame = self.read_buffer.split_to(total);
                let _ = frame.split_to(SIZE_PREFIX_BYTES);
                on_frame(frame.freeze())?;
            }
            if self.read_buffer.capacity() - self.read_buffer.len() < READ_CHUNK_BYTES / 4 {
                self.read_buffer.reserve(READ_CHUNK_BYTES);
            }
            let spare = self.read_buffer.spare_capacity_mut();
            // SAFETY: read(2) writes at most spare.len() bytes into the
            // uninitialised tail, and set_len below covers exactly what it wrote.
            let n =
                unsafe { libc::read(self.stream.as_raw_fd(), spare.as_mut_ptr() as *mut libc::c_void, spare.len()) };
            if n < 0 {
                let source = io::Error::last_os_error();
                match source.kind() {
                    io::ErrorKind::WouldBlock => return Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(ClientError::Io { action: "reading from", addr: self.addr.clone(), source }.into()),
                }
            }
            if n == 0 {
                return Err(ClientError::Closed { addr: self.addr.clone() }.into());
            }
            let len = self.read_buffer.len();
            // SAFETY: read(2) initialised the n bytes after len (see above).
            unsafe { self.read_buffer.set_len(len + n as usize) };
        }
    }
}

/// Waits for readiness on `fds` for at most `timeout` (None = forever).
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ts = timeout.map(|t| libc::timespec { tv_sec: t.as_secs() as libc::time_t, tv_nsec: t.subsec_nanos() as _ });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid slice for its length, and `ts_ptr` is null or
    // points at `ts`, which outlives the call.
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ts_ptr, std::ptr::null()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}
