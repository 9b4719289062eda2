//! InitProducerId: hands idempotent producers their id. Transactions are not
//! served, so a transactional id is refused.
//!
//! As Kafka does without a transactional id (TransactionCoordinator.
//! handleInitProducerId), every request gets a new producer id at epoch 0,
//! whatever id and epoch it names: a client cannot bump the epoch of an id it
//! names (another producer's, perhaps, which it would fence), and epochs
//! never approach Short.MAX_VALUE. A producer that needs a new epoch (KIP-360)
//! gets a new id, as Kafka gives it.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{ApiError, Context, ErrorCode, Response};

pub async fn handle(ctx: &Context<'_>, request: InitProducerIdRequest) -> Result<Response, ApiError> {
    let refused = |code: ErrorCode| {
        let response = InitProducerIdResponse::default().with_error_code(code.code());
        ctx.respond(&response.with_producer_id(ProducerId(-1)).with_producer_epoch(-1))
    };
    if request.transactional_id.is_some() {
        tracing::info!(
            shard = ctx.shard.id,
            "InitProducerId with a transactional id refused: transactions are not supported"
        );
        return refused(ErrorCode::InvalidRequest);
    }
    // Kafka (KafkaApis.handleInitProducerIdRequest): an id without an epoch, or the reverse.
    if (request.producer_id.0 == -1) != (request.producer_epoch == -1) {
        return refused(ErrorCode::InvalidRequest);
    }
    match ctx.shard.next_producer_id().await {
        Ok(id) => {
            ctx.respond(&InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0))
        }
        Err(e) => refused((&e).into()),
    }
}
