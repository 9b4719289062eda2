//! SyncGroup: the leader's assignment is relayed to every member; members
//! that sync before the leader wait for it.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};
use crate::group::SyncGroup;
use crate::model::now_ms;

fn command(r: &SyncGroupRequest) -> SyncGroup {
    SyncGroup {
        group_id: r.group_id.to_string(),
        generation_id: r.generation_id,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|i| i.to_string()),
        protocol_type: r.protocol_type.as_ref().map(|p| p.to_string()),
        protocol_name: r.protocol_name.as_ref().map(|p| p.to_string()),
        assignments: r.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect(),
    }
}

pub async fn handle(ctx: &Context<'_>, request: SyncGroupRequest) -> Result<Response, ApiError> {
    let shard = ctx.shard;
    let outcome = match shard.group_replica(&request.group_id) {
        Err(e) => Err(e),
        Ok(_) => {
            let reply = shard.groups.borrow_mut().sync(command(&request), now_ms());
            reply.wait().await
        }
    };
    let response = match outcome {
        Ok(synced) => SyncGroupResponse::default()
            .with_protocol_type(synced.protocol_type.map(StrBytes::from_string))
            .with_protocol_name(synced.protocol_name.map(StrBytes::from_string))
            .with_assignment(synced.assignment),
        Err(e) => SyncGroupResponse::default().with_error_code(ErrorCode::from(&e).code()),
    };
    ctx.respond(&response)
}
