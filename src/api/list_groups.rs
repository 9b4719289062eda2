//! ListGroups: the groups this shard coordinates. Every shard is its own
//! broker, and admin clients ask every broker and merge, as with Kafka.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, Response};
use crate::group::GroupState;

/// Only classic groups exist here (no KIP-848 "consumer" groups).
const GROUP_TYPE: &str = "classic";

pub fn handle(ctx: &Context<'_>, request: ListGroupsRequest) -> Result<Response, ApiError> {
    let states: Vec<GroupState> = request.states_filter.iter().filter_map(|s| GroupState::parse(s)).collect();
    let unknown_state = states.len() < request.states_filter.len();
    let type_ok =
        request.types_filter.is_empty() || request.types_filter.iter().any(|t| t.eq_ignore_ascii_case(GROUP_TYPE));
    let groups = match (unknown_state, type_ok) {
        (false, true) => ctx.shard.groups.borrow().list_groups(&states),
        _ => Vec::new(),
    };
    let listed = groups
        .into_iter()
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_group_state(StrBytes::from_static_str(g.state.as_str()))
                .with_group_type(StrBytes::from_static_str(GROUP_TYPE))
        })
        .collect();
    ctx.respond(&ListGroupsResponse::default().with_groups(listed))
}
