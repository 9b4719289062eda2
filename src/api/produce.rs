//! Produce: validate every batch, append to the partition's log (offsets are
//! assigned by the log), then answer once the writes have landed as the
//! topic's flush policy requires.

use std::rc::Rc;

use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::auto_create;
use super::{local_log, ApiError, Context, ErrorCode, Response};
use crate::metadata::{self, Snapshot, TopicMeta};
use crate::model::batch::{self, BatchHeader};
use crate::model::compression::{Codec, Decompressor};
use crate::model::now_ms;
use crate::model::{recompress, validate};
use crate::shard::{SequenceCheck, Shard};
use crate::storage::{AppendInfo, PartitionLog};

struct Refusal(ErrorCode, String);

/// Validates the partition's record batches (`model::validate`: framing,
/// CRC, size against max.message.bytes, every record, decompressing with a
/// bound) and, in a compacted topic, that every record has a key (Kafka's
/// INVALID_RECORD). Returns the first batch's header (idempotent producers
/// send one batch per partition).
fn validate_records(
    records: &[u8],
    rules: &TopicRules,
    decompressor: &mut Decompressor,
) -> Result<BatchHeader, Refusal> {
    let mut first = None;
    let mut rest = records;
    while !rest.is_empty() {
        let batch = validate::produced_batch(rest, rules.max_message_bytes as usize, decompressor)
            .map_err(|e| Refusal((&e).into(), e.to_string()))?;
        rules.check_timestamps(&batch.header, now_ms())?;
        if rules.compacted && batch.keyless {
            let why = "compacted topic cannot accept a record without a key".to_string();
            return Err(Refusal(ErrorCode::InvalidRecord, why));
        }
        rest = &rest[batch.header.total_bytes()..];
        first.get_or_insert(batch.header);
    }
    first.ok_or_else(|| Refusal(ErrorCode::CorruptMessage, "no record batch".into()))
}

/// What a topic's configs ask of each produced batch.
struct TopicRules {
    max_message_bytes: u32,
    /// `compression.type` when it names a codec (not "producer").
    codec: Option<Codec>,
    /// cleanup.policy includes compact: every record needs a key.
    compacted: bool,
    /// message.timestamp.after.max.ms / before.max.ms.
    timestamp_after_max_ms: i64,
    timestamp_before_max_ms: i64,
}

impl TopicRules {
    fn of(shard: &Shard, topic: Option<&TopicMeta>) -> TopicRules {
        let setting = |key: &str| topic.and_then(|t| t.configs.get(key));
        TopicRules {
            max_message_bytes: setting("max.message.bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(shard.config.message_max_bytes),
            codec: setting("compression.type").and_then(|v| recompress::target_codec(v)),
            compacted: setting("cleanup.policy").is_some_and(|v| v.split(',').any(|p| p.trim() == "compact")),
            timestamp_after_max_ms: setting("message.timestamp.after.max.ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(shard.config.log_message_timestamp_after_max_ms),
            timestamp_before_max_ms: setting("message.timestamp.before.max.ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(shard.config.log_message_timestamp_before_max_ms),
        }
    }

    /// Kafka's LogValidator: a batch stamped too far from the broker's clock
    /// is refused with INVALID_TIMESTAMP. Retention goes by the largest
    /// timestamp of a segment, so one batch from the far future would keep
    /// its segment, and every later one, for ever. Batches without a
    /// timestamp (-1) pass.
    fn check_timestamps(&self, header: &BatchHeader, now_ms: i64) -> Result<(), Refusal> {
        let latest = now_ms.saturating_add(self.timestamp_after_max_ms);
        let earliest = now_ms.saturating_sub(self.timestamp_before_max_ms);
        let stamped = |t: i64| t >= 0;
        if stamped(header.max_timestamp) && header.max_timestamp > latest {
            let why = format!(
                "timestamp {} is more than message.timestamp.after.max.ms ({}) after the broker's clock ({now_ms})",
                header.max_timestamp, self.timestamp_after_max_ms
            );
            return Err(Refusal(ErrorCode::InvalidTimestamp, why));
        }
        if stamped(header.base_timestamp) && header.base_timestamp < earliest {
            let why = format!(
                "timestamp {} is more than message.timestamp.before.max.ms ({}) before the broker's clock ({now_ms})",
                header.base_timestamp, self.timestamp_before_max_ms
            );
            return Err(Refusal(ErrorCode::InvalidTimestamp, why));
        }
        Ok(())
    }
}

/// Re-encodes every batch whose codec is not the topic's. Cold path: only
/// topics that set compression.type to a codec get here.
fn recompressed(records: &[u8], codec: Codec, decompressor: &mut Decompressor) -> Result<Option<Vec<u8>>, Refusal> {
    let mut out: Option<Vec<u8>> = None;
    let mut rest = records;
    while !rest.is_empty() {
        let header = batch::BatchHeader::parse(rest).map_err(|e| Refusal((&e).into(), e.to_string()))?;
        let (one, tail) = rest.split_at(header.total_bytes());
        if Codec::try_from(header.compression()).ok() != Some(codec) {
            let again =
                recompress::recompress(one, codec, decompressor).map_err(|e| Refusal((&e).into(), e.to_string()))?;
            out.get_or_insert_with(|| records[..records.len() - rest.len()].to_vec()).extend_from_slice(&again);
        } else if let Some(out) = out.as_mut() {
            out.extend_from_slice(one);
        }
        rest = tail;
    }
    Ok(out)
}

/// One topic of a Produce request: what every partition's append needs,
/// looked up once per topic rather than once per partition.
struct TopicAppend<'a> {
    shard: &'a Shard,
    snapshot: &'a Snapshot,
    name: &'a str,
    rules: TopicRules,
}

impl TopicAppend<'_> {
    fn append(&self, data: &PartitionProduceData) -> Result<(Rc<PartitionLog>, AppendInfo), Refusal> {
        let (shard, topic) = (self.shard, self.name);
        // Kafka's ReplicaManager refuses appends to internal topics from clients.
        if metadata::is_internal(topic) {
            return Err(Refusal(ErrorCode::InvalidTopicException, format!("cannot append to internal topic {topic}")));
        }
        let log = local_log(shard, self.snapshot, topic, data.index).map_err(|code| Refusal(code, String::new()))?;
        let records = data.records.as_deref().unwrap_or_default();
        let mut decompressor = shard.decompressor.borrow_mut();
        let first = validate_records(records, &self.rules, &mut decompressor).inspect_err(|refusal| {
            tracing::warn!(shard = shard.id, topic, partition = data.index, "produce refused: {}", refusal.1);
        })?;
        match shard.producers.check(topic, data.index, &first) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate { base_offset } => {
                let last_offset = base_offset + first.last_offset_delta as i64;
                let log_start_offset = log.log_start_offset();
                let info = AppendInfo { base_offset, last_offset, log_start_offset, write_epoch: log.write_epoch() };
                return Ok((log, info));
            }
            SequenceCheck::OutOfOrder { expected, got } => {
                let why = format!("expected sequence {expected}, got {got}");
                return Err(Refusal(ErrorCode::OutOfOrderSequenceNumber, why));
            }
            SequenceCheck::FencedEpoch => {
                let why = format!("epoch {} is fenced", first.producer_epoch);
                return Err(Refusal(ErrorCode::InvalidProducerEpoch, why));
            }
        }
        let again = match self.rules.codec {
            Some(codec) => recompressed(records, codec, &mut decompressor)?,
            None => None,
        };
        drop(decompressor);
        let stored = again.as_deref().unwrap_or(records);
        let info = log.append(stored, now_ms()).map_err(|e| Refusal((&e).into(), e.to_string()))?;
        shard.producers.record(topic, data.index, &first, info.base_offset, now_ms());
        Ok((log, info))
    }
}

fn partition_response(index: i32, outcome: Result<AppendInfo, Refusal>) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index).with_log_append_time_ms(-1);
    match outcome {
        Ok(info) => response.with_base_offset(info.base_offset).with_log_start_offset(info.log_start_offset),
        Err(Refusal(code, message)) => response
            .with_error_code(code.code())
            .with_base_offset(-1)
            .with_log_start_offset(-1)
            .with_error_message((!message.is_empty()).then(|| StrBytes::from_string(message))),
    }
}

/// Serves a Produce whole: creates missing topics first when the broker
/// auto-creates them, then appends and waits.
pub async fn handle(ctx: &Context<'_>, request: ProduceRequest) -> Result<Response, ApiError> {
    let shard = ctx.shard;
    for topic in &request.topic_data {
        let name = topic.name.as_str();
        if shard.snapshot().topic(name).is_none() && shard.config.auto_create_topics_enable {
            if let Err(e) = auto_create(shard, name).await {
                tracing::warn!(topic = name, error = %e, "auto-create on produce failed");
            }
        }
    }
    append_all(shard, &request).answer(ctx).await
}

/// Whether serving this request needs a topic created first (an await before
/// the appends), so it cannot be pipelined.
pub fn creates_topics(shard: &Shard, request: &ProduceRequest) -> bool {
    shard.config.auto_create_topics_enable
        && request.topic_data.iter().any(|t| shard.snapshot().topic(t.name.as_str()).is_none())
}

/// The appends of one Produce request, made synchronously in arrival order
/// (so pipelined requests of a connection append in the order they were
/// sent); `answer` then waits for the writes the acks ask for.
pub struct Appended {
    acks: i16,
    topics: Vec<(TopicName, Vec<(i32, Outcome)>)>,
}

/// One partition's append: the log to wait on and where the batches went, or the refusal.
type Outcome = Result<(Rc<PartitionLog>, AppendInfo), Refusal>;

pub fn append_all(shard: &Shard, request: &ProduceRequest) -> Appended {
    let acks_valid = matches!(request.acks, -1..=1);
    let snapshot = shard.snapshot();
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic in &request.topic_data {
        let name = topic.name.as_str();
        let target = TopicAppend {
            shard,
            snapshot: &snapshot,
            name,
            rules: TopicRules::of(shard, snapshot.topic(name).map(|t| &**t)),
        };
        let mut appended = Vec::with_capacity(topic.partition_data.len());
        for data in &topic.partition_data {
            let outcome = match acks_valid {
                true => target.append(data),
                false => Err(Refusal(
                    ErrorCode::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, got {}", request.acks),
                )),
            };
            appended.push((data.index, outcome));
        }
        topics.push((topic.name.clone(), appended));
    }
    Appended { acks: request.acks, topics }
}

impl Appended {
    pub async fn answer(self, ctx: &Context<'_>) -> Result<Response, ApiError> {
        let shard = ctx.shard;
        let mut responses = Vec::with_capacity(self.topics.len());
        for (name, appended) in self.topics {
            let mut partitions = Vec::with_capacity(appended.len());
            for (index, outcome) in appended {
                let outcome = match outcome {
                    Ok((log, info)) if self.acks != 0 => match log.wait_appended(&info).await {
                        Ok(()) => Ok(info),
                        Err(e) => {
                            // What the producer table remembers of this write never landed.
                            shard.producers.forget(name.as_str(), index);
                            Err(Refusal((&e).into(), e.to_string()))
                        }
                    },
                    other => other.map(|(_, info)| info),
                };
                partitions.push(partition_response(index, outcome));
            }
            responses.push(TopicProduceResponse::default().with_name(name).with_partition_responses(partitions));
        }
        if self.acks == 0 {
            return Ok(Response::None);
        }
        ctx.respond(&ProduceResponse::default().with_responses(responses))
    }
}
