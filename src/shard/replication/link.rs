//! One connection from a follower shard to a leader shard: Kafka frames over
//! the shard's own io_uring TCP, one request at a time (a fetcher sends
//! its next fetch once the last one is answered, as Kafka's does), encoded
//! and decoded with corelog-client's codec.

use bytes::{Bytes, BytesMut};
use corelog_client::frame;
use kafka_protocol::protocol::{Request, StrBytes};

use super::ReplicationError;
use crate::runtime::{BoundedBuf, TcpStream};

/// The client id followers send: Kafka's fetcher threads name themselves so.
const FOLLOWER_CLIENT_ID: &str = "corelog-replica-fetcher";

pub struct LeaderLink {
    stream: TcpStream,
    addr: std::net::SocketAddr,
    correlation_id: i32,
    /// The largest answer accepted: past it the leader is out of step.
    response_bytes_max: usize,
    buffer: BytesMut,
}

impl LeaderLink {
    pub async fn connect(
        addr: std::net::SocketAddr,
        response_bytes_max: usize,
    ) -> Result<LeaderLink, ReplicationError> {
        let stream = TcpStream::connect(addr).await.map_err(|source| ReplicationError::Io { addr, source })?;
        let _ = stream.set_nodelay(true);
        Ok(LeaderLink { stream, addr, correlation_id: 0, response_bytes_max, buffer: BytesMut::new() })
    }

    /// Sends `request` at `version` and waits for its answer.
    pub async fn send<Req: Request>(&mut self, request: &Req, version: i16) -> Result<Req::Response, ReplicationError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let client_id = StrBytes::from_static_str(FOLLOWER_CLIENT_ID);
        let encoded = frame::encode_request(request, version, self.correlation_id, &client_id)?;
        let (written, _) = self.stream.write_all(encoded.freeze()).await;
        written.map_err(|source| ReplicationError::Io { addr: self.peer(), source })?;
        let answer = self.read_frame().await?;
        let key = frame::api_key::<Req>()?;
        Ok(frame::decode_response(key, version, self.correlation_id, answer)?)
    }

    fn peer(&self) -> std::net::SocketAddr {
        self.addr
    }

    async fn read_frame(&mut self) -> Result<Bytes, ReplicationError> {
        self.fill(frame::SIZE_PREFIX_BYTES).await?;
        let prefix: [u8; frame::SIZE_PREFIX_BYTES] =
            self.buffer[..frame::SIZE_PREFIX_BYTES].try_into().expect("filled");
        let size = frame::checked_size(prefix, self.response_bytes_max)?;
        self.fill(frame::SIZE_PREFIX_BYTES + size).await?;
        let mut whole = self.buffer.split_to(frame::SIZE_PREFIX_BYTES + size);
        let _ = whole.split_to(frame::SIZE_PREFIX_BYTES);
        Ok(whole.freeze())
    }

    async fn fill(&mut self, wanted: usize) -> Result<(), ReplicationError> {
        while self.buffer.len() < wanted {
            self.buffer.reserve(wanted - self.buffer.len());
            let buffer = std::mem::take(&mut self.buffer);
            let (filled, capacity) = (buffer.len(), buffer.capacity());
            let (read, slice) = self.stream.read(buffer.slice(filled..capacity)).await;
            self.buffer = slice.into_inner();
            match read {
                Ok(0) => return Err(ReplicationError::Closed { addr: self.peer() }),
                Ok(_) => {}
                Err(source) => return Err(ReplicationError::Io { addr: self.peer(), source }),
            }
        }
        Ok(())
    }
}
