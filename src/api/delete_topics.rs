//! DeleteTopics, by name (all versions) or by id (v6+).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};
use crate::metadata::{self, MetadataRecord};

pub async fn handle(ctx: &Context<'_>, request: DeleteTopicsRequest) -> Result<Response, ApiError> {
    let snapshot = ctx.shard.snapshot();
    let by_name = request.topic_names.iter().map(|n| (Some(n.to_string()), uuid::Uuid::nil()));
    let by_state = request.topics.iter().map(|t| {
        let name = t.name.as_ref().map(|n| n.to_string());
        (name.or_else(|| snapshot.topic_by_id(&t.topic_id).map(|m| m.name.clone())), t.topic_id)
    });
    let mut responses = Vec::new();
    for (name, id) in by_name.chain(by_state).collect::<Vec<_>>() {
        let result = DeletableTopicResult::default().with_topic_id(id);
        let Some(name) = name else {
            responses.push(result.with_error_code(ErrorCode::UnknownTopicId.code()));
            continue;
        };
        let result = result.with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
        // Kafka 4 would delete it (and every committed offset with it); as for
        // Produce and DeleteRecords on internal topics, Kafka's refusal there
        // is INVALID_TOPIC_EXCEPTION, so that is the answer here too.
        if metadata::is_internal(&name) {
            let message = format!("topic {name} is internal and cannot be deleted");
            let refused = result.with_error_code(ErrorCode::InvalidTopicException.code());
            responses.push(refused.with_error_message(Some(StrBytes::from_string(message))));
            continue;
        }
        let outcome = ctx.shard.change_metadata(MetadataRecord::DeleteTopic { name: name.clone() }).await;
        responses.push(match outcome {
            Ok(()) => result,
            Err(e) => result
                .with_error_code(ErrorCode::from(&e).code())
                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
        });
    }
    ctx.respond(&DeleteTopicsResponse::default().with_responses(responses))
}
