//! Listeners and connections: reads size-prefixed request frames, hands each
//! to the api layer, writes the answers back in request order, splicing file
//! ranges for Fetch.
//!
//! A connection is served as Kafka serves it, one request at a time, with one
//! exception that carries the throughput of a producer: a Produce is begun
//! (its batches appended, in arrival order) as soon as it is read, and the
//! next requests are read and begun while its writes land, up to
//! PIPELINE_DEPTH unanswered. Its answer still goes out in order, once its
//! writes are done. Any other request waits until everything before it is
//! answered, so it sees the effects of all of them.

use std::cell::Cell;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, Notify};

use crate::api::{self, ApiError, Begun, Chunk, Response};
use crate::runtime::splice::Pipe;
use crate::runtime::{self, BoundedBuf, TcpListener, TcpStream};
use crate::shard::Shard;

pub mod limits;

/// Smallest read per connection. The buffer starts this small (most
/// requests but Produce fit), so 10,000 idle connections cost 10 MiB of it
/// (4 KiB cost 30 MiB more, measured), and reads then ask for the largest
/// frame the connection has sent, so a producer's next request arrives in
/// one read.
const READ_BYTES_MIN: usize = 1024;

/// Requests a connection may have read but not answered. Kafka clients keep
/// at most max.in.flight.requests.per.connection (default 5) outstanding.
const PIPELINE_DEPTH: usize = 8;

/// Accepts connections until the shard stops.
pub async fn serve(listener: TcpListener, shard: Rc<Shard>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shard.stop.notified() => return,
        };
        if shard.stopping.get() {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                let slot = match shard.connections.admit(peer.ip(), stream.as_raw_fd()) {
                    Ok(slot) => slot,
                    Err(refused) => {
                        // Dropping the stream closes it: the client backs off and retries.
                        if let Some(held_back) = shard.stats.refused_connections.admit(Instant::now()) {
                            tracing::warn!(shard = shard.id, %peer, similar_not_logged = held_back, "connection refused: {refused}");
                        }
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shard = shard.clone();
                runtime::spawn(async move {
                    // Given back however the task ends, a panic included.
                    let _slot = slot;
                    match serve_connection(stream, &shard, format!("/{}", peer.ip())).await {
                        Ok(()) | Err(ConnectionError::Closed) => {}
                        Err(e @ (ConnectionError::TooLarge { .. } | ConnectionError::Rejected(_))) => {
                            // A hostile client can send these in a loop: one line per interval.
                            if let Some(held_back) = shard.stats.rejected_frames.admit(Instant::now()) {
                                tracing::warn!(shard = shard.id, %peer, similar_not_logged = held_back, "closing connection: {e}")
                            }
                        }
                        Err(e @ ConnectionError::Storage(_)) => {
                            // The consumer reconnects and asks again: one line per interval.
                            if let Some(held_back) = shard.stats.fetch_storage_errors.admit(Instant::now()) {
                                tracing::error!(shard = shard.id, %peer, similar_errors_not_logged = held_back, "{e}")
                            }
                        }
                        Err(e) => tracing::debug!(shard = shard.id, %peer, "connection closed: {e}"),
                    }
                });
            }
            Err(e) => {
                // Out of descriptors (EMFILE) or memory: wait for connections to close.
                if let Some(held_back) = shard.stats.refused_connections.admit(Instant::now()) {
                    tracing::warn!(shard = shard.id, error = %e, similar_not_logged = held_back, "accept failed");
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("peer closed the connection")]
    Closed,
    #[error("no request for connections.max.idle.ms ({0} ms)")]
    Idle(u64),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("request of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: u32 },
    #[error("request rejected: {0}")]
    Rejected(#[from] ApiError),
    /// A fetch's file range could not be read whole (a segment cut under the
    /// broker): the response is half sent, so the connection must go.
    #[error("fetch failed: sending a segment's bytes: {0}; closing the connection mid-response")]
    Storage(std::io::Error),
}

/// A begun request's answer, taken in request order by the writing side.
enum Answer<'a> {
    /// Served alone already: no allocation for the common case.
    Ready(Result<Response, ApiError>),
    /// A pipelined Produce still waiting for its writes, and when its frame
    /// was read (for `ShardStats::produce_time`).
    Pending(Pin<Box<dyn Future<Output = Result<Response, ApiError>> + 'a>>, Instant),
}

/// What the reading and the writing side of a connection share.
struct Progress {
    /// Requests read and not yet answered.
    unanswered: Cell<usize>,
    answered: Notify,
}

async fn serve_connection(stream: TcpStream, shard: &Shard, client_host: String) -> Result<(), ConnectionError> {
    let reader =
        Reader { stream: &stream, buffer: BytesMut::with_capacity(READ_BYTES_MIN), read_bytes: READ_BYTES_MIN };
    let writer = Writer { stream: &stream, shard, pipe: None };
    let progress = Progress { unanswered: Cell::new(0), answered: Notify::new() };
    let (answers, queued) = mpsc::channel(PIPELINE_DEPTH);
    let read_side = read_requests(reader, shard, &client_host, &progress, answers);
    let write_side = write_answers(writer, &progress, queued);
    tokio::pin!(read_side, write_side);
    let result = tokio::select! {
        read = &mut read_side => match read {
            // Stopping, or the peer is done sending: answer what was read.
            Ok(()) | Err(ConnectionError::Closed) => write_side.await.and(read),
            Err(e) => Err(e),
        },
        written = &mut write_side => written,
    };
    // A read may still be in flight, and io_uring keeps the socket open
    // until it completes: shut the socket down so the peer sees the close now.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    result
}

/// Reads requests and begins each in arrival order. Returns (dropping
/// `answers`, which ends the writing side once it has answered everything)
/// when the shard stops or the connection fails.
async fn read_requests<'a>(
    mut reader: Reader<'_>,
    shard: &'a Shard,
    client_host: &'a str,
    progress: &Progress,
    answers: mpsc::Sender<Answer<'a>>,
) -> Result<(), ConnectionError> {
    let stats = &shard.stats;
    let idle_ms = shard.config.connections_max_idle_ms;
    while !shard.stopping.get() {
        // The read stays the same future while the timer re-arms: dropping
        // an io_uring read in flight would drop the bytes it receives.
        let read = reader.read_frame(shard.config.socket_request_max_bytes);
        tokio::pin!(read);
        let frame = loop {
            tokio::select! {
                frame = &mut read => break frame?,
                _ = tokio::time::sleep(std::time::Duration::from_millis(idle_ms)) => {
                    // Idle means silent with nothing left to answer (a long poll is not idle).
                    if progress.unanswered.get() == 0 {
                        return Err(ConnectionError::Idle(idle_ms));
                    }
                }
            }
        };
        let read_at = Instant::now();
        stats.requests_in_flight.set(stats.requests_in_flight.get() + 1);
        progress.unanswered.set(progress.unanswered.get() + 1);
        let answer = match api::begin(shard, client_host, frame)? {
            Begun::Answer(answer) => Answer::Pending(answer, read_at),
            Begun::Alone(frame) => {
                while progress.unanswered.get() > 1 {
                    progress.answered.notified().await;
                }
                Answer::Ready(api::handle(shard, client_host, frame).await)
            }
        };
        if answers.send(answer).await.is_err() {
            break; // the writing side failed and is gone
        }
    }
    Ok(())
}

/// Awaits each begun request's answer in order and writes it.
async fn write_answers(
    mut writer: Writer<'_>,
    progress: &Progress,
    mut queued: mpsc::Receiver<Answer<'_>>,
) -> Result<(), ConnectionError> {
    let stats = &writer.shard.stats;
    while let Some(answer) = queued.recv().await {
        let (answered, produce_read_at) = match answer {
            Answer::Ready(answered) => (answered, None),
            Answer::Pending(answer, read_at) => (answer.await, Some(read_at)),
        };
        let written = match answered {
            Ok(response) => writer.write_response(response).await,
            Err(e) => Err(e.into()),
        };
        if let Some(read_at) = produce_read_at {
            stats.produce_time.borrow_mut().record(read_at.elapsed());
        }
        stats.requests_in_flight.set(stats.requests_in_flight.get() - 1);
        progress.unanswered.set(progress.unanswered.get() - 1);
        progress.answered.notify_one();
        written?;
    }
    Ok(())
}

struct Reader<'a> {
    stream: &'a TcpStream,
    buffer: BytesMut,
    /// The largest frame this connection has sent (at least READ_BYTES_MIN).
    read_bytes: usize,
}

impl Reader<'_> {
    /// Reads one whole frame (without its 4-byte size). A size over the limit
    /// closes the connection before any of the body is read.
    async fn read_frame(&mut self, max: u32) -> Result<Bytes, ConnectionError> {
        self.fill(4).await?;
        let size = i32::from_be_bytes(self.buffer[..4].try_into().unwrap()) as i64;
        if size < 0 || size > max as i64 {
            return Err(ConnectionError::TooLarge { size, max });
        }
        self.read_bytes = self.read_bytes.max(4 + size as usize);
        self.fill(4 + size as usize).await?;
        let mut frame = self.buffer.split_to(4 + size as usize);
        let _ = frame.split_to(4);
        Ok(frame.freeze())
    }

    async fn fill(&mut self, wanted: usize) -> Result<(), ConnectionError> {
        while self.buffer.len() < wanted {
            let spare = self.read_bytes.max(wanted - self.buffer.len());
            self.buffer.reserve(spare);
            // Read into the spare capacity after the bytes already buffered.
            let buffer = std::mem::take(&mut self.buffer);
            let (filled, capacity) = (buffer.len(), buffer.capacity());
            let (result, slice) = self.stream.read(buffer.slice(filled..capacity)).await;
            self.buffer = slice.into_inner();
            if result? == 0 {
                return Err(ConnectionError::Closed);
            }
        }
        Ok(())
    }
}

struct Writer<'a> {
    stream: &'a TcpStream,
    shard: &'a Shard,
    /// Created on the first fetch that has record bytes to send.
    pipe: Option<Pipe>,
}

impl Writer<'_> {
    async fn write_response(&mut self, response: Response) -> Result<(), ConnectionError> {
        match response {
            Response::None => Ok(()),
            Response::Frame(bytes) => {
                let (result, _) = self.stream.write_all(bytes).await;
                Ok(result?)
            }
            Response::Chunks(chunks) => self.write_chunks(chunks).await,
        }
    }

    async fn write_chunks(&mut self, chunks: Vec<Chunk>) -> Result<(), ConnectionError> {
        for chunk in chunks {
            match chunk {
                Chunk::Inline(bytes) => {
                    let (result, _) = self.stream.write_all(bytes).await;
                    result?;
                }
                Chunk::Records(bytes) => {
                    let len = bytes.len() as u64;
                    let (result, _) = self.stream.write_all(bytes).await;
                    result?;
                    let sent = &self.shard.stats.fetch_bytes_from_memory;
                    sent.set(sent.get() + len);
                }
                Chunk::File { file, position, len } => {
                    if self.pipe.is_none() {
                        self.pipe = Some(Pipe::new()?);
                    }
                    let pipe = self.pipe.as_ref().unwrap();
                    runtime::splice::send_file_range(pipe, file, position, len as u64, self.stream.as_raw_fd())
                        .await
                        // send_file_range reports a short file as UnexpectedEof; the rest is the socket's.
                        .map_err(|e| match e.kind() {
                            std::io::ErrorKind::UnexpectedEof => ConnectionError::Storage(e),
                            _ => ConnectionError::Io(e),
                        })?;
                    let spliced = &self.shard.stats.fetch_bytes_spliced;
                    spliced.set(spliced.get() + len as u64);
                }
            }
        }
        Ok(())
    }
}
