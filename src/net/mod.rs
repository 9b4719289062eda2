//! Listeners and connections: reads size-prefixed request frames, hands each
//! to the api layer, writes the answers back in request order (one request at
//! a time per connection, as Kafka does), splicing file ranges for Fetch.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::api::{self, Chunk, Response};
use crate::runtime::splice::Pipe;
use crate::runtime::{self, BoundedBuf, TcpListener, TcpStream};
use crate::shard::Shard;

/// Smallest read per connection. The buffer starts this small, so 10,000
/// idle connections cost a page each, and reads then ask for the largest
/// frame the connection has sent, so a producer's next request arrives in
/// one read.
const READ_BYTES_MIN: usize = 4 * 1024;

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
                if shard.stats.connections.get() >= shard.config.max_connections_per_shard {
                    tracing::warn!(shard = shard.id, %peer, "connection limit reached; refusing");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let shard = shard.clone();
                runtime::spawn(async move {
                    shard.stats.connections.set(shard.stats.connections.get() + 1);
                    if let Err(e) = Connection::new(stream, &shard, format!("/{}", peer.ip())).run().await {
                        tracing::debug!(shard = shard.id, %peer, "connection closed: {e}");
                    }
                    shard.stats.connections.set(shard.stats.connections.get() - 1);
                });
            }
            Err(e) => {
                tracing::warn!(shard = shard.id, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("peer closed the connection")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("request of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: u32 },
    #[error("request rejected: {0}")]
    Rejected(#[from] api::ApiError),
}

struct Connection<'a> {
    stream: TcpStream,
    shard: &'a Shard,
    buffer: BytesMut,
    /// The largest frame this connection has sent (at least READ_BYTES_MIN).
    read_bytes: usize,
    /// Created on the first fetch that has record bytes to send.
    pipe: Option<Pipe>,
    client_host: String,
}

impl<'a> Connection<'a> {
    fn new(stream: TcpStream, shard: &'a Shard, client_host: String) -> Self {
        Connection {
            stream,
            shard,
            buffer: BytesMut::with_capacity(READ_BYTES_MIN),
            read_bytes: READ_BYTES_MIN,
            pipe: None,
            client_host,
        }
    }

    async fn run(mut self) -> Result<(), ConnectionError> {
        loop {
            let frame = match self.read_frame().await {
                Ok(f) => f,
                Err(e @ ConnectionError::TooLarge { .. }) => {
                    tracing::warn!(shard = self.shard.id, "closing connection: {e}");
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let stats = &self.shard.stats;
            stats.requests_in_flight.set(stats.requests_in_flight.get() + 1);
            let result = api::handle(self.shard, &self.client_host, frame).await;
            let written = match result {
                Ok(response) => self.write_response(response).await,
                Err(e) => {
                    tracing::warn!(shard = self.shard.id, "closing connection: {e}");
                    Err(e.into())
                }
            };
            stats.requests_in_flight.set(stats.requests_in_flight.get() - 1);
            written?;
            if self.shard.stopping.get() {
                return Ok(());
            }
        }
    }

    /// Reads one whole frame (without its 4-byte size). A size over the limit
    /// closes the connection before any of the body is read.
    async fn read_frame(&mut self) -> Result<Bytes, ConnectionError> {
        self.fill(4).await?;
        let size = i32::from_be_bytes(self.buffer[..4].try_into().unwrap()) as i64;
        let max = self.shard.config.socket_request_max_bytes;
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
                Chunk::File { file, position, len } => {
                    if self.pipe.is_none() {
                        self.pipe = Some(Pipe::new()?);
                    }
                    let pipe = self.pipe.as_ref().unwrap();
                    runtime::splice::send_file_range(pipe, file, position, len as u64, self.stream.as_raw_fd()).await?;
                    let spliced = &self.shard.stats.fetch_bytes_spliced;
                    spliced.set(spliced.get() + len as u64);
                }
            }
        }
        Ok(())
    }
}
