//! FindCoordinator: a group's coordinator is the broker (node, shard) that
//! leads its offsets-topic partition. Transactions (and share groups) are not served,
//! so there is no coordinator of theirs to find: such a key gets an error
//! clients do not retry (see `served`). Not COORDINATOR_NOT_AVAILABLE, which
//! clients retry until their own timeout: a transactional producer would
//! hang instead of failing at once.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{ApiError, Context, ErrorCode, Response};
use crate::cluster::BrokerAddress;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
const KEY_TYPE_SHARE: i8 = 2;

/// The coordinators corelog has: group ones only. Asking for a transaction
/// coordinator gets UNSUPPORTED_VERSION, as Redpanda answers with
/// transactions disabled: it is not retriable, so the Java producer's
/// initTransactions (and the AdminClient's fenceProducers) fail at once
/// with this message instead of retrying COORDINATOR_NOT_AVAILABLE until
/// max.block.ms. Kafka refuses an unknown key type as INVALID_REQUEST.
fn served(key_type: i8) -> Result<(), (ErrorCode, &'static str)> {
    match key_type {
        KEY_TYPE_GROUP => Ok(()),
        KEY_TYPE_TRANSACTION => Err((
            ErrorCode::UnsupportedVersion,
            "transactions are not supported: corelog has no transaction coordinator",
        )),
        KEY_TYPE_SHARE => {
            Err((ErrorCode::InvalidRequest, "share groups are not supported: corelog coordinates consumer groups"))
        }
        _ => Err((ErrorCode::InvalidRequest, "unknown coordinator key type")),
    }
}

/// Kafka's answer where there is no coordinator: node -1, port -1.
const NO_BROKER: i32 = -1;

/// A coordinator's (broker id, host, port).
type Coordinates = (i32, String, u16);

/// (coordinator, error, error message) for one key.
fn find(ctx: &Context<'_>, key: &str, key_type: i8) -> (Option<Coordinates>, ErrorCode, Option<StrBytes>) {
    if let Err((error, message)) = served(key_type) {
        return (None, error, Some(StrBytes::from_static_str(message)));
    }
    let snapshot = ctx.shard.snapshot();
    let owned = |b: BrokerAddress<'_>| (b.broker_id, b.host.to_string(), b.port);
    // The leader of the group's offsets partition: on this node, or in a
    // cluster on whichever node the metadata names.
    let coordinator = ctx.shard.group_coordinator(key).and_then(|at| match snapshot.nodes.is_empty() {
        true => ctx.shard.node.address(at.broker_id()).map(owned),
        false => snapshot.broker_address(at.broker_id()).map(owned),
    });
    match coordinator {
        Some(broker) => (Some(broker), ErrorCode::None, None),
        None => (None, ErrorCode::CoordinatorNotAvailable, None),
    }
}

/// (node id, host, port) as the answer carries them.
fn broker(ctx: &Context<'_>, coordinator: Option<Coordinates>) -> (BrokerId, StrBytes, i32) {
    match coordinator {
        Some((id, host, port)) => (BrokerId(id), StrBytes::from_string(host), port.into()),
        // Beside node -1, the host stays this broker's, as corelog has always answered.
        None => (BrokerId(NO_BROKER), StrBytes::from_string(ctx.shard.config.advertised_host()), NO_BROKER),
    }
}

pub fn handle(ctx: &Context<'_>, request: FindCoordinatorRequest) -> Result<Response, ApiError> {
    if ctx.version < 4 {
        let (coordinator, error, message) = find(ctx, &request.key, request.key_type);
        let (node, host, port) = broker(ctx, coordinator);
        // The message exists from v1 on, as does the key type.
        let response = FindCoordinatorResponse::default()
            .with_error_code(error.code())
            .with_error_message(message.filter(|_| ctx.version >= 1))
            .with_node_id(node)
            .with_host(host)
            .with_port(port);
        return ctx.respond(&response);
    }
    let coordinators = request
        .coordinator_keys
        .iter()
        .map(|key| {
            let (coordinator, error, message) = find(ctx, key, request.key_type);
            let (node, host, port) = broker(ctx, coordinator);
            Coordinator::default()
                .with_error_message(message)
                .with_key(key.clone())
                .with_node_id(node)
                .with_host(host)
                .with_port(port)
                .with_error_code(error.code())
        })
        .collect();
    ctx.respond(&FindCoordinatorResponse::default().with_coordinators(coordinators))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_group_coordinators_are_served() {
        assert_eq!(served(KEY_TYPE_GROUP), Ok(()));
        // Not COORDINATOR_NOT_AVAILABLE, which clients retry until they time out.
        assert_eq!(served(KEY_TYPE_TRANSACTION).map_err(|(code, _)| code), Err(ErrorCode::UnsupportedVersion));
        assert_eq!(served(2).map_err(|(code, _)| code), Err(ErrorCode::InvalidRequest));
    }
}
