//! JoinGroup: relayed to the group's coordinator; waits until the join phase
//! completes (all members rejoined, or the rebalance timeout).

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};
use crate::group::{GroupError, JoinGroup, Protocol};
use crate::model::now_ms;

fn command(ctx: &Context<'_>, r: &JoinGroupRequest) -> JoinGroup {
    JoinGroup {
        group_id: r.group_id.to_string(),
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|i| i.to_string()),
        client_id: ctx.client_id.to_string(),
        client_host: ctx.client_host.to_string(),
        session_timeout_ms: r.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if ctx.version == 0 { r.session_timeout_ms } else { r.rebalance_timeout_ms },
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| Protocol { name: p.name.to_string(), metadata: p.metadata.clone() })
            .collect(),
        require_known_member_id: ctx.version >= 4,
        supports_skip_assignment: ctx.version >= 9,
    }
}

fn string(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub async fn handle(ctx: &Context<'_>, request: JoinGroupRequest) -> Result<Response, ApiError> {
    let shard = ctx.shard;
    let outcome = match shard.group_replica(&request.group_id) {
        Err(e) => Err(e),
        Ok(_) => {
            let reply = shard.groups.borrow_mut().join(command(ctx, &request), now_ms());
            reply.wait().await
        }
    };
    let response = JoinGroupResponse::default().with_generation_id(-1);
    let response = match outcome {
        Ok(joined) => response
            .with_generation_id(joined.generation_id)
            .with_protocol_type(joined.protocol_type.map(string))
            .with_protocol_name(joined.protocol_name.map(string))
            .with_leader(string(joined.leader_id))
            .with_skip_assignment(joined.skip_assignment)
            .with_member_id(string(joined.member_id))
            .with_members(
                joined
                    .members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(string(m.member_id))
                            .with_group_instance_id(m.group_instance_id.map(string))
                            .with_metadata(m.metadata)
                    })
                    .collect(),
            ),
        Err(GroupError::MemberIdRequired { member_id }) => {
            response.with_error_code(ErrorCode::MemberIdRequired.code()).with_member_id(string(member_id))
        }
        Err(e) => response.with_error_code(ErrorCode::from(&e).code()).with_member_id(request.member_id.clone()),
    };
    ctx.respond(&response)
}
