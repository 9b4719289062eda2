//! Whether a broker serves yet: one Metadata request, answered with at least
//! one broker. An open port is not enough: Kafka binds its listener long
//! before it processes requests, so "time to start" is measured to the first
//! answered Metadata request for every broker alike.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Metadata v4: the lowest version Kafka 4 still serves (KIP-896), and served by corelog.
const METADATA_VERSION: i16 = 4;
/// A Metadata answer naming no topics is a few hundred bytes; refuse anything absurd.
const ANSWER_BYTES_MAX: usize = 1 << 20;
const CORRELATION_ID: i32 = 1;

/// Sends Metadata (no topics) to `addr` and returns how many brokers the answer names.
pub fn metadata_brokers(addr: SocketAddr, timeout: Duration) -> Result<usize> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&metadata_request()?)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > ANSWER_BYTES_MAX {
        bail!("Metadata answer of {size} bytes from {addr}");
    }
    let mut frame = vec![0u8; size as usize];
    stream.read_exact(&mut frame)?;
    brokers_in_answer(Bytes::from(frame))
}

fn metadata_request() -> Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(METADATA_VERSION)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str("corelog-bench")));
    let body = MetadataRequest::default().with_topics(Some(Vec::new())).with_allow_auto_topic_creation(false);
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, ApiKey::Metadata.request_header_version(METADATA_VERSION))
        .map_err(|e| anyhow!("encoding a Metadata header: {e}"))?;
    body.encode(&mut buf, METADATA_VERSION).map_err(|e| anyhow!("encoding Metadata: {e}"))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

fn brokers_in_answer(mut frame: Bytes) -> Result<usize> {
    let header = ResponseHeader::decode(&mut frame, ApiKey::Metadata.response_header_version(METADATA_VERSION))
        .map_err(|e| anyhow!("decoding a Metadata answer header: {e}"))?;
    if header.correlation_id != CORRELATION_ID {
        bail!("Metadata answer for correlation id {}", header.correlation_id);
    }
    let answer = MetadataResponse::decode(&mut frame, METADATA_VERSION)
        .map_err(|e| anyhow!("decoding a Metadata answer: {e}"))?;
    if frame.has_remaining() {
        bail!("{} bytes after a Metadata answer", frame.remaining());
    }
    Ok(answer.brokers.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_protocol::messages::{BrokerId, ResponseHeader};

    fn answer(correlation_id: i32, brokers: usize) -> Bytes {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, ApiKey::Metadata.response_header_version(METADATA_VERSION))
            .unwrap();
        let body = MetadataResponse::default().with_brokers(
            (0..brokers)
                .map(|i| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(i as i32))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(9092 + i as i32)
                })
                .collect(),
        );
        body.encode(&mut buf, METADATA_VERSION).unwrap();
        buf.freeze()
    }

    #[test]
    fn request_is_one_sized_frame() {
        let frame = metadata_request().unwrap();
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4);
        // api key 3 (Metadata), version 4, correlation id 1
        assert_eq!(&frame[4..12], &[0, 3, 0, 4, 0, 0, 0, 1]);
    }

    #[test]
    fn answers_count_their_brokers() {
        assert_eq!(brokers_in_answer(answer(CORRELATION_ID, 2)).unwrap(), 2);
        assert_eq!(brokers_in_answer(answer(CORRELATION_ID, 0)).unwrap(), 0);
        assert!(brokers_in_answer(answer(7, 1)).is_err());
        let mut trailing = BytesMut::from(&answer(CORRELATION_ID, 1)[..]);
        trailing.put_u8(0);
        assert!(brokers_in_answer(trailing.freeze()).is_err());
    }
}
