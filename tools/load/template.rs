//! A Produce request encoded once and re-sent many times: per send only the
//! correlation id, the batch timestamps and the CRCs are rewritten in place.

use anyhow::{anyhow, Result};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use corelog_client::frame;

use crate::batch;
use crate::produce::{Plan, PRODUCE_TIMEOUT_MS};

/// Where one batch sits inside a template frame.
#[derive(Debug)]
pub struct Slot {
    at: usize,
    len: usize,
    stamp_at: Option<usize>,
}

/// An encoded Produce request ready to be stamped and sent again and again.
pub struct Template {
    pub frame: Vec<u8>,
    pub partitions: Vec<i32>,
    pub slots: Vec<Slot>,
    pub messages_per_batch: u64,
    pub payload_bytes_per_batch: u64,
    pub batch_bytes: u64,
}

impl Template {
    pub fn build(plan: &Plan, partitions: &[i32], records: usize) -> Result<Template> {
        let mut batches = Vec::with_capacity(partitions.len());
        let mut data = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let seed = ((plan.id as u64) << 32) ^ (p as u64) ^ ((records as u64) << 48);
            let b = batch::build(&plan.shape, records, seed).map_err(|e| anyhow!("building a batch: {e}"))?;
            data.push(PartitionProduceData::default().with_index(p).with_records(Some(Bytes::from(b.bytes.clone()))));
            batches.push(b);
        }
        let request = ProduceRequest::default()
            .with_acks(plan.acks)
            .with_timeout_ms(PRODUCE_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(plan.topic.clone())))
                .with_partition_data(data)]);
        let frame =
            frame::encode_request(&request, plan.version, 0, &StrBytes::from_string(plan.client_id.clone()))?.to_vec();
        // Find each batch in the encoded frame (in order), so it can be stamped in place.
        let mut slots = Vec::with_capacity(batches.len());
        let mut from = 0;
        for b in &batches {
            let at =
                find(&frame[from..], &b.bytes).ok_or_else(|| anyhow!("batch not found in its request frame"))? + from;
            slots.push(Slot { at, len: b.bytes.len(), stamp_at: b.stamp_at });
            from = at + b.bytes.len();
        }
        let record_payload = (plan.shape.record_bytes + plan.shape.key_bytes) as u64;
        Ok(Template {
            frame,
            partitions: partitions.to_vec(),
            slots,
            messages_per_batch: records as u64,
            payload_bytes_per_batch: records as u64 * record_payload,
            batch_bytes: batches.iter().map(|b| b.bytes.len() as u64).sum(),
        })
    }

    pub fn messages(&self) -> u64 {
        self.messages_per_batch * self.slots.len() as u64
    }

    #[inline]
    pub fn stamp(&mut self, correlation_id: i32, wall_us: u64) {
        self.frame[8..12].copy_from_slice(&correlation_id.to_be_bytes());
        for slot in &self.slots {
            batch::stamp(&mut self.frame[slot.at..slot.at + slot.len], slot.stamp_at, wall_us);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let head = &needle[..needle.len().min(32)];
    (0..=haystack.len().checked_sub(needle.len())?)
        .find(|&i| haystack[i..i + head.len()] == *head && haystack[i..i + needle.len()] == *needle)
}
