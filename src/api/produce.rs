//! Produce: decode, hand each partition's batches to its replica (which
//! validates and appends them, `partition::Replica::append`), then answer
//! once the writes have landed as the topic's flush policy requires.

use std::rc::Rc;
use std::time::Duration;

use tokio::time::Instant;

use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::create_topics::auto_create;
use super::leader_hint::{leader_hint, tells_leader, LeaderHint};
use super::{local_replica, ApiError, Context, ErrorCode, Response};
use crate::metadata::{self, Snapshot};
use crate::model::now_ms;
use crate::partition::{PartitionError, Replica};
use crate::shard::Shard;
use crate::storage::AppendInfo;

/// Why a partition's batches were not appended: its code and Kafka's message.
struct Refusal(ErrorCode, String);

impl From<PartitionError> for Refusal {
    fn from(e: PartitionError) -> Refusal {
        Refusal((&e).into(), e.to_string())
    }
}

/// acks=all: the answer waits for every in-sync replica.
const ACKS_ALL: i16 = -1;

fn append(shard: &Shard, snapshot: &Snapshot, topic: &str, data: &PartitionProduceData, acks: i16) -> Outcome {
    // Kafka's ReplicaManager refuses a client's append to an internal topic
    // before it looks the partition up.
    if metadata::is_internal(topic) {
        return Err(PartitionError::InternalTopic { topic: topic.to_string() }.into());
    }
    let replica = local_replica(shard, snapshot, topic, data.index).map_err(|code| Refusal(code, String::new()))?;
    // Kafka refuses acks=all before appending when too few replicas are in sync.
    if acks == ACKS_ALL {
        replica.check_min_isr()?;
    }
    let records = data.records.as_deref().unwrap_or_default();
    let info = replica.append(records, &mut shard.decompressor.borrow_mut(), now_ms())?;
    Ok((replica, info))
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
    /// How long acks=all waits for the in-sync replicas.
    timeout: Duration,
    topics: Vec<(TopicName, Vec<(i32, Outcome)>)>,
}

/// One partition's append: the replica to wait on and where the batches went, or the refusal.
type Outcome = Result<(Rc<Replica>, AppendInfo), Refusal>;

pub fn append_all(shard: &Shard, request: &ProduceRequest) -> Appended {
    let acks_valid = matches!(request.acks, -1..=1);
    let snapshot = shard.snapshot();
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic in &request.topic_data {
        let mut appended = Vec::with_capacity(topic.partition_data.len());
        for data in &topic.partition_data {
            let outcome = match acks_valid {
                true => append(shard, &snapshot, topic.name.as_str(), data, request.acks),
                false => Err(Refusal(
                    ErrorCode::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, got {}", request.acks),
                )),
            };
            appended.push((data.index, outcome));
        }
        topics.push((topic.name.clone(), appended));
    }
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    Appended { acks: request.acks, timeout, topics }
}

/// Waits for what `acks` asks of one partition's append: written as the
/// flush policy requires (acks=1), and then held by every in-sync replica
/// (acks=all), within the request's timeout for the replicas (Kafka's
/// delayed produce answers REQUEST_TIMED_OUT).
async fn acknowledged(
    replica: &Replica,
    info: AppendInfo,
    acks: i16,
    deadline: Instant,
) -> Result<AppendInfo, Refusal> {
    replica.wait_appended(&info).await?;
    if acks == ACKS_ALL {
        match tokio::time::timeout_at(deadline, replica.wait_replicated(info.last_offset)).await {
            Ok(replicated) => replicated?,
            Err(_) => return Err(Refusal(ErrorCode::RequestTimedOut, "not every in-sync replica has it yet".into())),
        }
    }
    Ok(info)
}

impl Appended {
    pub async fn answer(self, ctx: &Context<'_>) -> Result<Response, ApiError> {
        let mut responses = Vec::with_capacity(self.topics.len());
        let deadline = Instant::now() + self.timeout;
        // The leaders told to the client (KIP-951), each once.
        let mut leaders: Vec<LeaderHint> = Vec::new();
        for (name, appended) in self.topics {
            let mut partitions = Vec::with_capacity(appended.len());
            for (index, outcome) in appended {
                let outcome = match outcome {
                    Ok((replica, info)) if self.acks != 0 => acknowledged(&replica, info, self.acks, deadline).await,
                    other => other.map(|(_, info)| info),
                };
                let hint = match &outcome {
                    Err(Refusal(code, _)) if tells_leader(*code) => {
                        leader_hint(ctx, &ctx.shard.snapshot(), name.as_str(), index)
                    }
                    _ => None,
                };
                let mut response = partition_response(index, outcome);
                if let Some(hint) = hint {
                    response = response.with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(hint.broker_id))
                            .with_leader_epoch(hint.leader_epoch),
                    );
                    if !leaders.iter().any(|l: &LeaderHint| l.broker_id == hint.broker_id) {
                        leaders.push(hint);
                    }
                }
                partitions.push(response);
            }
            responses.push(TopicProduceResponse::default().with_name(name).with_partition_responses(partitions));
        }
        if self.acks == 0 {
            return Ok(Response::None);
        }
        let endpoints = leaders.into_iter().map(|l| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(l.broker_id))
                .with_host(StrBytes::from_string(l.host))
                .with_port(i32::from(l.port))
        });
        let response = ProduceResponse::default().with_responses(responses).with_node_endpoints(endpoints.collect());
        ctx.respond(&response)
    }
}
