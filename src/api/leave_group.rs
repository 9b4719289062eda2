//! LeaveGroup: one member (v0–v2) or a batch of members by id or
//! group.instance.id (v3+); the group rebalances without them.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};
use crate::group::{LeaveGroup, LeavingMember};
use crate::model::now_ms;

fn leaving(ctx: &Context<'_>, request: &LeaveGroupRequest) -> Vec<LeavingMember> {
    if ctx.version < 3 {
        return vec![LeavingMember { member_id: request.member_id.to_string(), group_instance_id: None }];
    }
    let member = |m: &kafka_protocol::messages::leave_group_request::MemberIdentity| LeavingMember {
        member_id: m.member_id.to_string(),
        group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
    };
    request.members.iter().map(member).collect()
}

pub fn handle(ctx: &Context<'_>, request: LeaveGroupRequest) -> Result<Response, ApiError> {
    let shard = ctx.shard;
    let leave = LeaveGroup { group_id: request.group_id.to_string(), members: leaving(ctx, &request) };
    let outcome = shard.group_replica(&leave.group_id).and_then(|_| shard.groups.borrow_mut().leave(leave, now_ms()));
    let response = match outcome {
        Err(e) => LeaveGroupResponse::default().with_error_code(ErrorCode::from(&e).code()),
        // Before v3 there is one member and its result is the top-level error.
        Ok(left) if ctx.version < 3 => {
            let code = left.first().and_then(|l| l.result.as_ref().err()).map_or(ErrorCode::None, ErrorCode::from);
            LeaveGroupResponse::default().with_error_code(code.code())
        }
        Ok(left) => LeaveGroupResponse::default().with_members(
            left.into_iter()
                .map(|l| {
                    let code = l.result.as_ref().err().map_or(ErrorCode::None, ErrorCode::from);
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(l.member.member_id))
                        .with_group_instance_id(l.member.group_instance_id.map(StrBytes::from_string))
                        .with_error_code(code.code())
                })
                .collect(),
        ),
    };
    ctx.respond(&response)
}
