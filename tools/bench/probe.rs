//! Whether a broker serves yet: one Metadata request, answered with at least
//! one broker. An open port is not enough: Kafka binds its listener long
//! before it processes requests, so "time to start" is measured to the first
//! answered Metadata request for every broker alike.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Result;
use corelog_client::frame;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;

/// Metadata v4: the lowest version Kafka 4 still serves (KIP-896), and served by corelog.
const METADATA_VERSION: i16 = 4;
/// A Metadata answer naming no topics is a few hundred bytes; refuse anything absurd.
const ANSWER_BYTES_MAX: usize = 1 << 20;
const CORRELATION_ID: i32 = 1;
const CLIENT_ID: StrBytes = StrBytes::from_static_str("corelog-bench");

/// Sends Metadata (no topics) to `addr` and returns how many brokers the answer names.
/// One request at a fixed version, without ApiVersions first: the probe must
/// cost a starting broker as little as possible.
pub fn metadata_brokers(addr: SocketAddr, timeout: Duration) -> Result<usize> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = MetadataRequest::default().with_topics(Some(Vec::new())).with_allow_auto_topic_creation(false);
    stream.write_all(&frame::encode_request(&request, METADATA_VERSION, CORRELATION_ID, &CLIENT_ID)?)?;
    let answer = frame::read_frame(&mut stream, ANSWER_BYTES_MAX)?;
    let answer: MetadataResponse = frame::decode_response(ApiKey::Metadata, METADATA_VERSION, CORRELATION_ID, answer)?;
    Ok(answer.brokers.len())
}
