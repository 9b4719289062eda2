//! DescribeCluster (KIP-700): the cluster id, the controller and every
//! broker, as Metadata gives them (every shard is a broker: node × 1000 +
//! shard). Without an authorizer, Kafka grants every operation a cluster
//! supports, which is what `include_cluster_authorized_operations` answers.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::cluster_identity;
use super::{ApiError, Context, ErrorCode, Response};
use crate::cluster::{BrokerAddress, ReplicaPlacement, ShardId};

/// Kafka's EndpointType.BROKER: the brokers' listeners (the only endpoints
/// corelog has; its controllers speak Raft among themselves only).
const ENDPOINT_TYPE_BROKER: i8 = 1;

/// The operations Kafka's cluster resource supports (AclEntry's CREATE,
/// ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE), one bit per AclOperation code: all granted, as
/// Kafka answers without an authorizer.
const CLUSTER_OPERATIONS_ALL: i32 = (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// Kafka's answer when the operations were not asked for.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

fn broker(b: BrokerAddress<'_>, fenced: bool) -> DescribeClusterBroker {
    DescribeClusterBroker::default()
        .with_broker_id(BrokerId(b.broker_id))
        .with_host(StrBytes::from_string(b.host.into()))
        .with_port(b.port.into())
        .with_is_fenced(fenced)
}

pub fn handle(ctx: &Context<'_>, request: DescribeClusterRequest) -> Result<Response, ApiError> {
    let shard = ctx.shard;
    let snapshot = shard.snapshot();
    let (cluster_id, controller) = cluster_identity(shard, &snapshot);
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_TYPE_BROKER)
        .with_cluster_id(cluster_id)
        .with_controller_id(BrokerId(controller));
    // v0 has no endpoint type and means the brokers.
    if ctx.version >= 1 && request.endpoint_type != ENDPOINT_TYPE_BROKER {
        let why = format!("endpoint type {} is not served: corelog's listeners are brokers", request.endpoint_type);
        let refused = response
            .with_error_code(ErrorCode::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_string(why)));
        return ctx.respond(&refused);
    }
    let brokers: Vec<DescribeClusterBroker> = match snapshot.nodes.is_empty() {
        true => shard.node.brokers().map(|b| broker(b, false)).collect(),
        false => snapshot
            .nodes
            .values()
            .filter(|n| !n.fenced || request.include_fenced_brokers)
            .flat_map(|n| (0..n.shards).map(move |s| (ReplicaPlacement::new(n.id, ShardId(s)).broker_id(), n.fenced)))
            .filter_map(|(id, fenced)| snapshot.broker_address(id).map(|b| broker(b, fenced)))
            .collect(),
    };
    let operations = cluster_authorized_operations(request.include_cluster_authorized_operations);
    ctx.respond(&response.with_brokers(brokers).with_cluster_authorized_operations(operations))
}

/// The cluster's authorized operations a request asked for (or not), as a
/// bit field: also Metadata's (v8–10), where librdkafka reads them.
pub(super) fn cluster_authorized_operations(asked: bool) -> i32 {
    match asked {
        true => CLUSTER_OPERATIONS_ALL,
        false => AUTHORIZED_OPERATIONS_OMITTED,
    }
}
