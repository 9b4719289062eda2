//! InitProducerId: hands idempotent producers their id. Transactions are not
//! served, so a transactional id is refused.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{ApiError, Context, ErrorCode, Response};

pub fn handle(ctx: &Context<'_>, request: InitProducerIdRequest) -> Result<Response, ApiError> {
    let response = InitProducerIdResponse::default();
    if request.transactional_id.is_some() {
        tracing::info!(
            shard = ctx.shard.id,
            "InitProducerId with a transactional id refused: transactions are not supported"
        );
        let refused = response.with_error_code(ErrorCode::InvalidRequest.code()).with_producer_id(ProducerId(-1));
        return ctx.respond(&refused.with_producer_epoch(-1));
    }
    let (id, epoch) = match request.producer_id.0 {
        // KIP-360: a producer that already has an id asks for its epoch to be bumped.
        id if id >= 0 && request.producer_epoch >= 0 => (id, request.producer_epoch.wrapping_add(1).max(0)),
        _ => (ctx.shard.producers.next_producer_id(ctx.shard.id, ctx.shard.count), 0),
    };
    ctx.respond(&response.with_producer_id(ProducerId(id)).with_producer_epoch(epoch))
}
