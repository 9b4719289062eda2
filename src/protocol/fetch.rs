//! Hand-written Fetch response framing (v4–v16) so record bytes can follow the
//! header straight from segment files: the encoder lays out everything but
//! the records and leaves a gap of known length where each partition's
//! records go. The caller fills each gap by splice.
//!
//! Layout (v12+ is "flexible": compact lengths and tagged fields):
//! ```text
//! size i32 | correlation_id i32 [tags v12+]
//! throttle_time_ms i32 | error_code i16, session_id i32 (v7+)
//! [ topic: name string (<v13) | topic_id uuid (v13+)
//!   [ partition i32, error_code i16, high_watermark i64, last_stable_offset i64,
//!     log_start_offset i64 (v5+), aborted_transactions null, preferred_read_replica i32 (v11+),
//!     records bytes [tags v12+: 0 = diverging_epoch (KIP-320), 1 = current_leader (KIP-951)] ] [tags v12+] ]
//! [tags v12+: 0 = node_endpoints (v16+, KIP-951)]
//! ```

use bytes::{BufMut, Bytes, BytesMut};

pub const VERSION_MIN: i16 = 4;
pub const VERSION_MAX: i16 = 16;

pub struct PartitionData<R> {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Records and their length in bytes; `None` sends an empty record set.
    pub records: Option<(R, u32)>,
    /// The partition's leader, told to a client sent elsewhere (KIP-951).
    pub current_leader: Option<CurrentLeader>,
    /// Where the fetcher's log parts from the leader's (KIP-320).
    pub diverging_epoch: Option<EpochEndOffset>,
}

/// KIP-320's EpochEndOffset: the leader's largest epoch at most the
/// fetcher's last fetched one, and where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: i32,
    pub end_offset: i64,
}

/// KIP-951's LeaderIdAndEpoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentLeader {
    pub leader_id: i32,
    pub leader_epoch: i32,
}

/// Where a broker named in a `CurrentLeader` listens (v16+, KIP-951).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeEndpoint<'a> {
    pub node_id: i32,
    pub host: &'a str,
    pub port: i32,
}

/// The tag numbers of the tagged fields in the Fetch response: at the top
/// level KIP-951's node endpoints; per partition KIP-320's diverging epoch
/// and KIP-951's current leader (written in tag order, as the format wants).
const TAG_NODE_ENDPOINTS: u64 = 0;
const TAG_DIVERGING_EPOCH: u64 = 0;
const TAG_CURRENT_LEADER: u64 = 1;

pub struct TopicData<'a, R> {
    pub name: &'a str,
    pub id: [u8; 16],
    pub partitions: Vec<PartitionData<R>>,
}

/// A piece of the response: bytes built here, or a gap for records.
pub enum Piece<R> {
    Inline(Bytes),
    Records(R, u32),
}

struct Writer<R> {
    version: i16,
    current: BytesMut,
    pieces: Vec<(BytesMut, Option<(R, u32)>)>,
    records_bytes: u64,
}

impl<R> Writer<R> {
    fn flexible(&self) -> bool {
        self.version >= 12
    }

    fn array_len(&mut self, len: usize) {
        if self.flexible() {
            put_uvarint(&mut self.current, len as u64 + 1);
        } else {
            self.current.put_i32(len as i32);
        }
    }

    fn null_array(&mut self) {
        if self.flexible() {
            put_uvarint(&mut self.current, 0);
        } else {
            self.current.put_i32(-1);
        }
    }

    fn string(&mut self, s: &str) {
        if self.flexible() {
            put_uvarint(&mut self.current, s.len() as u64 + 1);
        } else {
            // Before v12 the name came in the request with an i16 length.
            debug_assert!(s.len() <= i16::MAX as usize);
            self.current.put_i16(s.len() as i16);
        }
        self.current.put_slice(s.as_bytes());
    }

    fn no_tags(&mut self) {
        if self.flexible() {
            self.current.put_u8(0);
        }
    }

    fn records(&mut self, records: Option<(R, u32)>) {
        let len = records.as_ref().map_or(0, |r| r.1);
        if self.flexible() {
            put_uvarint(&mut self.current, len as u64 + 1);
        } else {
            self.current.put_i32(len as i32);
        }
        if let Some(records) = records.filter(|r| r.1 > 0) {
            self.records_bytes += records.1 as u64;
            let done = std::mem::take(&mut self.current);
            self.pieces.push((done, Some(records)));
        }
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Encodes a whole Fetch response, size prefix included.
pub fn encode<R>(
    version: i16,
    correlation_id: i32,
    error_code: i16,
    session_id: i32,
    topics: Vec<TopicData<'_, R>>,
    node_endpoints: &[NodeEndpoint<'_>],
) -> Vec<Piece<R>> {
    debug_assert!((VERSION_MIN..=VERSION_MAX).contains(&version));
    let mut w = Writer { version, current: BytesMut::with_capacity(256), pieces: Vec::new(), records_bytes: 0 };
    w.current.put_i32(0); // size, patched below
    w.current.put_i32(correlation_id);
    w.no_tags();
    w.current.put_i32(0); // throttle_time_ms
    if version >= 7 {
        w.current.put_i16(error_code);
        w.current.put_i32(session_id);
    }
    w.array_len(topics.len());
    for topic in topics {
        if version >= 13 {
            w.current.put_slice(&topic.id);
        } else {
            w.string(topic.name);
        }
        w.array_len(topic.partitions.len());
        for p in topic.partitions {
            w.current.put_i32(p.partition);
            w.current.put_i16(p.error_code);
            w.current.put_i64(p.high_watermark);
            w.current.put_i64(p.last_stable_offset);
            if version >= 5 {
                w.current.put_i64(p.log_start_offset);
            }
            w.null_array(); // aborted transactions: none without transactions
            if version >= 11 {
                w.current.put_i32(-1); // preferred read replica
            }
            w.records(p.records);
            if w.flexible() {
                let tags = u64::from(p.diverging_epoch.is_some()) + u64::from(p.current_leader.is_some());
                put_uvarint(&mut w.current, tags);
                if let Some(diverging) = p.diverging_epoch {
                    put_uvarint(&mut w.current, TAG_DIVERGING_EPOCH);
                    put_uvarint(&mut w.current, 13); // i32 + i64 + empty tags
                    w.current.put_i32(diverging.epoch);
                    w.current.put_i64(diverging.end_offset);
                    w.current.put_u8(0);
                }
                if let Some(leader) = p.current_leader {
                    put_uvarint(&mut w.current, TAG_CURRENT_LEADER);
                    put_uvarint(&mut w.current, 9); // i32 + i32 + empty tags
                    w.current.put_i32(leader.leader_id);
                    w.current.put_i32(leader.leader_epoch);
                    w.current.put_u8(0);
                }
            }
        }
        w.no_tags();
    }
    if version >= 16 && !node_endpoints.is_empty() {
        let mut field = BytesMut::new();
        put_uvarint(&mut field, node_endpoints.len() as u64 + 1);
        for node in node_endpoints {
            field.put_i32(node.node_id);
            put_uvarint(&mut field, node.host.len() as u64 + 1);
            field.put_slice(node.host.as_bytes());
            field.put_i32(node.port);
            put_uvarint(&mut field, 0); // rack: null
            field.put_u8(0);
        }
        put_uvarint(&mut w.current, 1);
        put_uvarint(&mut w.current, TAG_NODE_ENDPOINTS);
        put_uvarint(&mut w.current, field.len() as u64);
        w.current.put_slice(&field);
    } else {
        w.no_tags();
    }
    finish(w)
}

fn finish<R>(mut w: Writer<R>) -> Vec<Piece<R>> {
    let tail = std::mem::take(&mut w.current);
    w.pieces.push((tail, None));
    let inline: usize = w.pieces.iter().map(|(b, _)| b.len()).sum();
    let size = inline as u64 + w.records_bytes - 4;
    // Records are bounded by fetch.max.bytes (at most 1 GiB) and the rest by
    // the request's size (socket.request.max.bytes): together under 2 GiB.
    debug_assert!(size <= i32::MAX as u64);
    w.pieces[0].0[..4].copy_from_slice(&(size as i32).to_be_bytes());
    let mut out = Vec::with_capacity(w.pieces.len() * 2);
    for (bytes, records) in w.pieces {
        if !bytes.is_empty() {
            out.push(Piece::Inline(bytes.freeze()));
        }
        if let Some((r, len)) = records {
            out.push(Piece::Records(r, len));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use kafka_protocol::messages::{FetchResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    /// Encodes with records filled in, then decodes with kafka-protocol: the
    /// hand-written layout must agree with the generated codec at every version.
    #[test]
    fn matches_generated_codec_at_every_version() {
        let batch = crate::model::batch::build(7, &[b"hello", b"world"]);
        for version in VERSION_MIN..=VERSION_MAX {
            let topics = vec![TopicData {
                name: "clicks",
                id: [7; 16],
                partitions: vec![
                    PartitionData {
                        partition: 2,
                        error_code: 0,
                        high_watermark: 10,
                        last_stable_offset: 10,
                        log_start_offset: 3,
                        records: Some((batch.clone(), batch.len() as u32)),
                        current_leader: None,
                        diverging_epoch: None,
                    },
                    PartitionData {
                        partition: 5,
                        error_code: 1,
                        high_watermark: 4,
                        last_stable_offset: 4,
                        log_start_offset: 0,
                        records: None,
                        current_leader: Some(CurrentLeader { leader_id: 2003, leader_epoch: 4 }),
                        diverging_epoch: Some(EpochEndOffset { epoch: 3, end_offset: 17 }),
                    },
                ],
            }];
            let mut wire = Vec::new();
            let endpoints = [NodeEndpoint { node_id: 2003, host: "127.0.0.2", port: 9095 }];
            for piece in encode(version, 99, 0, 0, topics, &endpoints) {
                match piece {
                    Piece::Inline(b) => wire.extend_from_slice(&b),
                    Piece::Records(r, _) => wire.extend_from_slice(&r),
                }
            }
            let mut buf = Bytes::from(wire);
            assert_eq!(buf.get_i32() as usize, buf.len(), "v{version} size prefix");
            let header_version = if version >= 12 { 1 } else { 0 };
            let header = ResponseHeader::decode(&mut buf, header_version).unwrap();
            assert_eq!(header.correlation_id, 99);
            let response = FetchResponse::decode(&mut buf, version).unwrap();
            assert!(buf.is_empty(), "v{version}: trailing bytes");
            let topic = &response.responses[0];
            if version >= 13 {
                assert_eq!(topic.topic_id.as_bytes(), &[7; 16]);
            } else {
                assert_eq!(topic.topic.0.as_str(), "clicks");
            }
            let p = &topic.partitions;
            assert_eq!(p[0].records.as_deref(), Some(&batch[..]), "v{version}");
            assert_eq!((p[0].partition_index, p[0].high_watermark), (2, 10));
            assert_eq!((p[1].partition_index, p[1].error_code), (5, 1));
            if version >= 5 {
                assert_eq!(p[0].log_start_offset, 3);
            }
            if version >= 12 {
                assert_eq!((p[1].current_leader.leader_id.0, p[1].current_leader.leader_epoch), (2003, 4));
                assert_eq!(p[0].current_leader.leader_id.0, -1, "v{version}: no leader told where none was set");
                assert_eq!((p[1].diverging_epoch.epoch, p[1].diverging_epoch.end_offset), (3, 17));
                assert_eq!(p[0].diverging_epoch.epoch, -1, "v{version}: no divergence told where none was set");
            }
            if version >= 16 {
                let node = &response.node_endpoints[0];
                assert_eq!((node.node_id.0, node.host.as_str(), node.port), (2003, "127.0.0.2", 9095));
            }
        }
    }
}
