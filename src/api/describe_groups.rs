//! DescribeGroups: state, protocol and members with their assignments.

use std::collections::HashSet;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};

fn describe(ctx: &Context<'_>, group_id: &GroupId) -> DescribedGroup {
    let result = DescribedGroup::default().with_group_id(group_id.clone());
    if let Err(e) = ctx.shard.group_replica(group_id) {
        return result.with_error_code(ErrorCode::from(&e).code());
    }
    let d = ctx.shard.groups.borrow().describe_group(group_id);
    let members = d
        .members
        .into_iter()
        .map(|m| {
            DescribedGroupMember::default()
                .with_member_id(StrBytes::from_string(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(StrBytes::from_string))
                .with_client_id(StrBytes::from_string(m.client_id))
                .with_client_host(StrBytes::from_string(m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment)
        })
        .collect();
    result
        .with_group_state(StrBytes::from_static_str(d.state.as_str()))
        .with_protocol_type(StrBytes::from_string(d.protocol_type))
        .with_protocol_data(StrBytes::from_string(d.protocol))
        .with_members(members)
}

/// Each distinct group is described once: a group's members and their
/// assignments can take many KiB, which a request naming it 10,000 times
/// would otherwise buy 10,000 times. (Kafka answers every entry; admin
/// clients key the answers by group, so none sends repeats.)
pub fn handle(ctx: &Context<'_>, request: DescribeGroupsRequest) -> Result<Response, ApiError> {
    let mut seen = HashSet::new();
    let distinct = request.groups.iter().filter(|g| seen.insert(g.as_str()));
    let groups = distinct.map(|g| describe(ctx, g)).collect();
    ctx.respond(&DescribeGroupsResponse::default().with_groups(groups))
}
