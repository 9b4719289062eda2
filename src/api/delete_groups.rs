//! DeleteGroups: only empty groups; their committed offsets are tombstoned.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::{ApiError, Context, ErrorCode, Response};

pub async fn handle(ctx: &Context<'_>, request: DeleteGroupsRequest) -> Result<Response, ApiError> {
    let shard = ctx.shard;
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group in &request.groups_names {
        let deleted = shard.group_replica(group).and_then(|_| shard.groups.borrow_mut().delete_group(group));
        let code = match deleted {
            Ok(offsets) => {
                let removed = offsets.into_iter().map(|tp| (group.to_string(), tp)).collect();
                shard.persist_tombstones(removed).await;
                tracing::info!(shard = shard.id, group = %group.as_str(), "group deleted");
                ErrorCode::None
            }
            Err(e) => ErrorCode::from(&e),
        };
        results.push(DeletableGroupResult::default().with_group_id(group.clone()).with_error_code(code.code()));
    }
    ctx.respond(&DeleteGroupsResponse::default().with_results(results))
}
