//! Members' assignments, decoded with kafka-protocol's consumer-protocol
//! types, and how `describe` prints them.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::{Decodable, Message};

use crate::cli::table::NONE;

/// Assigned partitions by topic, as a member's assignment lists them.
pub type Assignment = Vec<(String, Vec<i32>)>;

/// Bytes of a null `user_data`: its length, -1.
const NULL_BYTES: [u8; 4] = (-1i32).to_be_bytes();

/// The partitions of a ConsumerProtocolAssignment (an i16 version, then the
/// message at that version), sorted. Empty bytes (a member between rebalance
/// phases) are an empty assignment. Versions past the highest kafka-protocol
/// knows only add fields, so they are read as that one; some clients leave
/// the trailing `user_data` off, which reads as null. A hostile element count
/// cannot abort the binary: its allocator reserves huge blocks lazily
/// (corelog::runtime::alloc), and decoding stops at the end of the bytes.
pub fn decode_assignment(bytes: &[u8]) -> anyhow::Result<Assignment> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.len() < 2 {
        anyhow::bail!("assignment truncated");
    }
    let mut body = Bytes::copy_from_slice(bytes);
    let version = body.get_i16();
    if version < 0 {
        anyhow::bail!("assignment version {version}");
    }
    let version = version.min(ConsumerProtocolAssignment::VERSIONS.max);
    let decoded = ConsumerProtocolAssignment::decode(&mut body.clone(), version).or_else(|error| {
        // Only a message that ends exactly where user_data would start
        // reads as one without it.
        let mut padded = BytesMut::from(&body[..]);
        padded.put_slice(&NULL_BYTES);
        let mut padded = padded.freeze();
        match ConsumerProtocolAssignment::decode(&mut padded, version) {
            Ok(decoded) if !padded.has_remaining() => Ok(decoded),
            _ => Err(error),
        }
    })?;
    let mut assignment: Assignment = decoded
        .assigned_partitions
        .into_iter()
        .map(|topic| {
            let mut partitions = topic.partitions;
            partitions.sort_unstable();
            (topic.topic.to_string(), partitions)
        })
        .collect();
    assignment.sort();
    Ok(assignment)
}

/// An assignment as `topic(0,1),other(2)`, or `-` when empty.
pub fn assignment_string(assignment: &[(String, Vec<i32>)]) -> String {
    let parts: Vec<String> = assignment
        .iter()
        .map(|(topic, partitions)| {
            let ids: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic}({})", ids.join(","))
        })
        .collect();
    match parts.is_empty() {
        true => NONE.to_string(),
        false => parts.join(","),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A ConsumerProtocolAssignment as Kafka clients write it.
    pub fn assignment(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        buf.put_i32(topics.len() as i32);
        for (topic, partitions) in topics {
            buf.put_i16(topic.len() as i16);
            buf.put_slice(topic.as_bytes());
            buf.put_i32(partitions.len() as i32);
            for p in *partitions {
                buf.put_i32(*p);
            }
        }
        match user_data {
            None => buf.put_i32(-1),
            Some(data) => {
                buf.put_i32(data.len() as i32);
                buf.put_slice(data);
            }
        }
        buf.to_vec()
    }

    pub fn owned(pairs: &[(&str, &[i32])]) -> Vec<(String, Vec<i32>)> {
        pairs.iter().map(|(t, p)| (t.to_string(), p.to_vec())).collect()
    }

    #[test]
    fn assignment_decodes_every_version() {
        for version in 0..=3 {
            let bytes = assignment(version, &[("orders", &[2, 0]), ("audit", &[1])], Some(b"xyz"));
            assert_eq!(decode_assignment(&bytes).unwrap(), owned(&[("audit", &[1]), ("orders", &[0, 2])]));
        }
        let null_user_data = assignment(1, &[("t", &[0])], None);
        assert_eq!(decode_assignment(&null_user_data).unwrap(), owned(&[("t", &[0])]));
        // Some clients leave user_data off entirely; later versions may append fields.
        let mut short = assignment(0, &[("t", &[3])], None);
        short.truncate(short.len() - 4);
        assert_eq!(decode_assignment(&short).unwrap(), owned(&[("t", &[3])]));
        let mut longer = assignment(4, &[("t", &[3])], Some(b""));
        longer.extend_from_slice(&[0, 0, 0, 7]);
        assert_eq!(decode_assignment(&longer).unwrap(), owned(&[("t", &[3])]));
        assert!(decode_assignment(&[]).unwrap().is_empty());
        assert!(decode_assignment(&assignment(0, &[], None)).unwrap().is_empty());
    }

    #[test]
    fn malformed_assignments_are_errors() {
        let good = assignment(0, &[("orders", &[0, 1])], Some(b"abc"));
        for cut in [1, 3, 5, 9, 14, 17, good.len() - 1] {
            assert!(decode_assignment(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_assignment(&[0xff, 0xff, 0, 0, 0, 0]).is_err(), "negative version");
        let mut negative_count = assignment(0, &[], None);
        negative_count[2..6].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_assignment(&negative_count).is_err());
        let mut huge = assignment(0, &[("t", &[])], None);
        huge[9..13].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_assignment(&huge).is_err());
    }

    #[test]
    fn assignments_print_compactly() {
        assert_eq!(assignment_string(&owned(&[("a", &[0, 1]), ("b", &[2])])), "a(0,1),b(2)");
        assert_eq!(assignment_string(&[]), "-");
    }
}
