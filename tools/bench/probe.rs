//! Which broker leads a partition (the failover case's victim), and whether a broker serves yet: one Metadata request, answered with at least
//! one broker. An open port is not enough: Kafka binds its listener long
//! before it processes requests, so "time to start" is measured to the first
//! answered Metadata request for every broker alike.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use corelog_client::frame;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
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
    Ok(metadata(addr, timeout, Vec::new())?.brokers.len())
}

/// The broker id leading `topic`'s `partition`, asked of the first of
/// `servers` ("host:port", comma-separated) that answers.
pub fn partition_leader(servers: &str, topic: &str, partition: i32, timeout: Duration) -> Result<i32> {
    let mut last = None;
    for server in servers.split(',') {
        let addr: SocketAddr = match server.parse() {
            Ok(a) => a,
            Err(e) => bail!("{server:?} is not an address: {e}"),
        };
        let name = TopicName(StrBytes::from_string(topic.to_string()));
        match metadata(addr, timeout, vec![MetadataRequestTopic::default().with_name(Some(name))]) {
            Ok(answer) => {
                let t = answer.topics.first().with_context(|| format!("Metadata from {addr} names no topic"))?;
                let p = t
                    .partitions
                    .iter()
                    .find(|p| p.partition_index == partition)
                    .with_context(|| format!("Metadata from {addr} names no {topic}/{partition}"))?;
                if t.error_code != 0 || p.error_code != 0 || p.leader_id.0 < 0 {
                    bail!("{topic}/{partition} has no leader (errors {} / {})", t.error_code, p.error_code);
                }
                return Ok(p.leader_id.0);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no server to ask")))
}

fn metadata(addr: SocketAddr, timeout: Duration, topics: Vec<MetadataRequestTopic>) -> Result<MetadataResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = MetadataRequest::default().with_topics(Some(topics)).with_allow_auto_topic_creation(false);
    stream.write_all(&frame::encode_request(&request, METADATA_VERSION, CORRELATION_ID, &CLIENT_ID)?)?;
    let answer = frame::read_frame(&mut stream, ANSWER_BYTES_MAX)?;
    Ok(frame::decode_response(ApiKey::Metadata, METADATA_VERSION, CORRELATION_ID, answer)?)
}
