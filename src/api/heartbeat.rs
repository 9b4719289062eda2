//! Heartbeat: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it
//! to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::{ApiError, Context, ErrorCode, Response};
use crate::group::Heartbeat;
use crate::model::now_ms;

pub fn handle(ctx: &Context<'_>, request: HeartbeatRequest) -> Result<Response, ApiError> {
    let shard = ctx.shard;
    let heartbeat = Heartbeat {
        group_id: request.group_id.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
    };
    let outcome =
        shard.group_replica(&heartbeat.group_id).and_then(|_| shard.groups.borrow_mut().heartbeat(heartbeat, now_ms()));
    let code = outcome.err().map_or(ErrorCode::None, |e| ErrorCode::from(&e));
    ctx.respond(&HeartbeatResponse::default().with_error_code(code.code()))
}
