//! `corelog topics`: create, list, describe, alter the configs of and delete
//! topics.
//!
//! Everything goes over the Kafka protocol (CreateTopics, Metadata,
//! DescribeConfigs, IncrementalAlterConfigs, ListOffsets, DeleteTopics), so
//! the command works against any Kafka broker, not only corelog.

use anyhow::{anyhow, bail, Context};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, DeleteTopicsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use corelog_client::requests::topic_name;
use corelog_client::{Cluster, KafkaError};

mod describe;

use self::describe::{describe, topic_string};
use super::{ConnectArgs, REQUEST_TIMEOUT_MS};

/// DescribeConfigs resource type of a topic.
const RESOURCE_TYPE_TOPIC: i8 = 2;
/// IncrementalAlterConfigs operations (Kafka's AlterConfigOp.OpType).
const CONFIG_OP_SET: i8 = 0;
const CONFIG_OP_DELETE: i8 = 1;

/// Manage topics over the Kafka protocol (works against any Kafka broker).
///
/// Broker node ids printed here are shards in corelog: each shard is its own
/// broker, so a partition's "Leader" is the shard that owns it.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TopicsCommand {
    /// Create a topic
    Create {
        /// Topic name
        name: String,
        /// Number of partitions (default: the broker's default)
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (default: the broker's default; a single corelog node accepts only 1)
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// Topic config override, key=value (repeatable)
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
        configs: Vec<(String, String)>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List topic names, one per line, sorted
    List {
        /// Also list internal topics (names starting with "__")
        #[arg(long)]
        include_internal: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Describe topics: partitions, leaders (node id = shard in corelog), offsets, configs
    Describe {
        /// Topics to describe (default: all)
        names: Vec<String>,
        /// With no names given, also describe internal topics
        #[arg(long)]
        include_internal: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Change a topic's configs at run time; the others keep their values
    #[command(group = clap::ArgGroup::new("changes").required(true).multiple(true).args(["configs", "delete_configs"]))]
    AlterConfig {
        /// Topic name
        name: String,
        /// Set a topic config, key=value (repeatable)
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
        configs: Vec<(String, String)>,
        /// Remove a topic config override, so the broker default applies again (repeatable)
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Delete topics
    Delete {
        /// Topics to delete
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Parses a `--config key=value` argument.
pub fn parse_config(arg: &str) -> Result<(String, String), String> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(format!("expected key=value, got {arg:?}"));
    };
    if key.trim().is_empty() {
        return Err(format!("empty config key in {arg:?}"));
    }
    if value.is_empty() {
        return Err(format!("empty value for config {key:?}"));
    }
    Ok((key.trim().to_string(), value.to_string()))
}

/// Runs one `corelog topics` command. Errors carry Kafka's error names,
/// e.g. `TOPIC_ALREADY_EXISTS: Topic 'a' already exists.`
pub fn run(command: TopicsCommand) -> anyhow::Result<()> {
    match command {
        TopicsCommand::Create { name, partitions, replication_factor, configs, connect } => {
            let topic = creatable_topic(&name, partitions, replication_factor, &configs);
            create(&mut connect.cluster()?, topic)
        }
        TopicsCommand::List { include_internal, connect } => list(&mut connect.cluster()?, include_internal),
        TopicsCommand::Describe { names, include_internal, connect } => {
            let mut cluster = connect.cluster()?;
            describe(&mut cluster, &names, include_internal)
        }
        TopicsCommand::AlterConfig { name, configs, delete_configs, connect } => {
            let request = alter_config_request(&name, &configs, &delete_configs);
            alter_config(&mut connect.cluster()?, &name, request)
        }
        TopicsCommand::Delete { names, connect } => delete(&mut connect.cluster()?, &names),
    }
}

fn creatable_topic(
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> CreatableTopic {
    let mut topic = CreatableTopic::default();
    topic.name = topic_name(name);
    topic.num_partitions = partitions;
    topic.replication_factor = replication_factor;
    topic.configs = configs
        .iter()
        .map(|(key, value)| {
            let mut config = CreatableTopicConfig::default();
            config.name = StrBytes::from_string(key.clone());
            config.value = Some(StrBytes::from_string(value.clone()));
            config
        })
        .collect();
    topic
}

fn create(cluster: &mut Cluster, topic: CreatableTopic) -> anyhow::Result<()> {
    let name = topic.name.0.to_string();
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = REQUEST_TIMEOUT_MS;
    let response = cluster.controller()?.send(request)?;
    let result = response
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == name)
        .ok_or_else(|| anyhow!("CreateTopics response has no result for {name}"))?;
    KafkaError::check(result.error_code, result.error_message.as_ref())?;
    println!("Created topic {name}.");
    Ok(())
}

fn alter_config_request(name: &str, set: &[(String, String)], delete: &[String]) -> IncrementalAlterConfigsRequest {
    let config = |key: &str, operation: i8, value: Option<&String>| {
        let mut config = AlterableConfig::default();
        config.name = StrBytes::from_string(key.to_string());
        config.config_operation = operation;
        config.value = value.map(|v| StrBytes::from_string(v.clone()));
        config
    };
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = RESOURCE_TYPE_TOPIC;
    resource.resource_name = StrBytes::from_string(name.to_string());
    resource.configs = set
        .iter()
        .map(|(key, value)| config(key, CONFIG_OP_SET, Some(value)))
        .chain(delete.iter().map(|key| config(key, CONFIG_OP_DELETE, None)))
        .collect();
    let mut request = IncrementalAlterConfigsRequest::default();
    request.resources = vec![resource];
    request
}

fn alter_config(cluster: &mut Cluster, name: &str, request: IncrementalAlterConfigsRequest) -> anyhow::Result<()> {
    let response = cluster.controller()?.send(request).context("IncrementalAlterConfigs")?;
    let result = response
        .responses
        .iter()
        .find(|r| r.resource_name.as_str() == name)
        .ok_or_else(|| anyhow!("IncrementalAlterConfigs response has no result for {name}"))?;
    KafkaError::check(result.error_code, result.error_message.as_ref())?;
    println!("Altered configs of topic {name}.");
    Ok(())
}

fn list(cluster: &mut Cluster, include_internal: bool) -> anyhow::Result<()> {
    for name in topic_names(cluster, include_internal)? {
        println!("{name}");
    }
    Ok(())
}

/// Sorted names of the cluster's topics.
fn topic_names(cluster: &mut Cluster, include_internal: bool) -> anyhow::Result<Vec<String>> {
    let metadata = cluster.metadata(None)?;
    let mut names: Vec<String> =
        metadata.topics.iter().filter(|t| include_internal || !is_internal(t)).map(topic_string).collect();
    names.sort();
    Ok(names)
}

fn is_internal(topic: &MetadataResponseTopic) -> bool {
    let name = topic.name.as_ref().map(|n| n.0.as_str()).unwrap_or("");
    topic.is_internal || name.starts_with("__")
}

fn delete(cluster: &mut Cluster, names: &[String]) -> anyhow::Result<()> {
    let connection = cluster.controller()?;
    let version = connection.version(ApiKey::DeleteTopics)?;
    let request = delete_request(names, version);
    let response = connection.send_at(&request, version)?;
    let mut failures = Vec::new();
    for result in &response.responses {
        let name = result.name.as_ref().map(|n| n.0.to_string());
        let name = name.unwrap_or_else(|| result.topic_id.to_string());
        match KafkaError::check(result.error_code, result.error_message.as_ref()) {
            Ok(()) => println!("Deleted topic {name}."),
            Err(error) => failures.push(format!("{name}: {error}")),
        }
    }
    match failures.len() {
        0 => Ok(()),
        _ => bail!("{}", failures.join("\n")),
    }
}

fn delete_request(names: &[String], version: i16) -> DeleteTopicsRequest {
    let mut request = DeleteTopicsRequest::default();
    request.timeout_ms = REQUEST_TIMEOUT_MS;
    // v6 names topics by name or id; earlier versions only by name.
    if version >= 6 {
        request.topics = names.iter().map(|n| delete_state(n)).collect();
    } else {
        request.topic_names = names.iter().map(|n| topic_name(n)).collect();
    }
    request
}

fn delete_state(name: &str) -> DeleteTopicState {
    let mut state = DeleteTopicState::default();
    state.name = Some(topic_name(name));
    state
}

#[cfg(test)]
mod tests {
    use super::describe::describe_report;
    use super::*;
    use clap::Parser;
    use corelog_client::requests::list_offsets_request;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: TopicsCommand,
    }

    fn parse(args: &[&str]) -> Result<TopicsCommand, clap::Error> {
        let args = std::iter::once("topics").chain(args.iter().copied());
        TestCli::try_parse_from(args).map(|cli| cli.command)
    }

    #[test]
    fn config_arguments_parse() {
        assert_eq!(parse_config("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(parse_config("cleanup.policy=x=y"), Ok(("cleanup.policy".into(), "x=y".into())));
        assert!(parse_config("novalue").is_err());
        assert!(parse_config("=b").is_err());
        assert!(parse_config("a=").is_err());
    }

    #[test]
    fn create_defaults_to_broker_defaults() {
        let TopicsCommand::Create { name, partitions, replication_factor, configs, connect } =
            parse(&["create", "orders"]).unwrap()
        else {
            panic!("not create");
        };
        assert_eq!(name, "orders");
        assert_eq!((partitions, replication_factor), (-1, -1));
        assert!(configs.is_empty());
        let expected = std::env::var("CORELOG_BOOTSTRAP_SERVER").unwrap_or("localhost:9092".into());
        assert_eq!(connect.bootstrap_server, expected);
    }

    #[test]
    fn create_takes_all_flags() {
        let args = [
            "create",
            "orders",
            "--partitions",
            "6",
            "--replication-factor",
            "3",
            "--config",
            "retention.ms=1000",
            "--config",
            "segment.bytes=1048576",
            "--bootstrap-server",
            "127.0.0.1:19092",
        ];
        let TopicsCommand::Create { partitions, replication_factor, configs, connect, .. } = parse(&args).unwrap()
        else {
            panic!("not create");
        };
        assert_eq!((partitions, replication_factor), (6, 3));
        assert_eq!(configs.len(), 2);
        assert_eq!(configs[1], ("segment.bytes".into(), "1048576".into()));
        assert_eq!(connect.bootstrap_server, "127.0.0.1:19092");
    }

    #[test]
    fn malformed_arguments_are_refused() {
        assert!(parse(&["create", "t", "--config", "oops"]).is_err());
        assert!(parse(&["create", "t", "--partitions", "many"]).is_err());
        assert!(parse(&["create"]).is_err());
        assert!(parse(&["delete"]).is_err());
    }

    #[test]
    fn list_describe_and_delete_parse() {
        assert!(matches!(
            parse(&["list", "--include-internal"]).unwrap(),
            TopicsCommand::List { include_internal: true, .. }
        ));
        let TopicsCommand::Describe { names, .. } = parse(&["describe", "a", "b"]).unwrap() else {
            panic!("not describe");
        };
        assert_eq!(names, ["a", "b"]);
        let TopicsCommand::Delete { names, .. } = parse(&["delete", "a", "b"]).unwrap() else {
            panic!("not delete");
        };
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn alter_config_sets_and_deletes() {
        let TopicsCommand::AlterConfig { name, configs, delete_configs, .. } =
            parse(&["alter-config", "t", "--config", "retention.ms=1000", "--delete-config", "segment.ms"]).unwrap()
        else {
            panic!("not alter-config");
        };
        let request = alter_config_request(&name, &configs, &delete_configs);
        let ops: Vec<(&str, i8, Option<&str>)> = request.resources[0]
            .configs
            .iter()
            .map(|c| (c.name.as_str(), c.config_operation, c.value.as_deref()))
            .collect();
        assert_eq!(ops, [("retention.ms", CONFIG_OP_SET, Some("1000")), ("segment.ms", CONFIG_OP_DELETE, None)]);
        assert!(parse(&["alter-config", "t"]).is_err(), "nothing to change");
        assert!(parse(&["alter-config", "t", "--config", "novalue"]).is_err());
        for version in 0..=1 {
            kafka_protocol::protocol::Encodable::encode(&request, &mut bytes::BytesMut::new(), version).unwrap();
        }
    }

    #[test]
    fn requests_encode_at_every_supported_version() {
        use kafka_protocol::protocol::Encodable;
        let topic = creatable_topic("t", 3, 1, &[("retention.ms".into(), "1".into())]);
        let mut create = CreateTopicsRequest::default();
        create.topics = vec![topic];
        for version in ApiKey::CreateTopics.valid_versions().min..=7 {
            create.encode(&mut bytes::BytesMut::new(), version).unwrap();
        }
        for version in 1..=6 {
            let request = delete_request(&["t".to_string()], version);
            request.encode(&mut bytes::BytesMut::new(), version).unwrap();
        }
        let offsets = list_offsets_request(&[("t".into(), 0), ("t".into(), 1)], -2, REQUEST_TIMEOUT_MS);
        assert_eq!(offsets.topics.len(), 1);
        for version in 1..=10 {
            offsets.encode(&mut bytes::BytesMut::new(), version).unwrap();
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn create_list_describe_delete_against_fake_cluster() {
        let (bootstrap, state) = corelog_client::testing::start();
        let mut cluster = super::super::connect(&bootstrap).unwrap();
        let configs = [("retention.ms".to_string(), "1000".to_string())];
        create(&mut cluster, creatable_topic("orders", 3, -1, &configs)).unwrap();
        create(&mut cluster, creatable_topic("__internal", 1, 1, &[])).unwrap();
        let exists = create(&mut cluster, creatable_topic("orders", 3, -1, &[])).unwrap_err();
        assert_eq!(exists.to_string(), "TOPIC_ALREADY_EXISTS: Topic 'orders' already exists.");
        let rf = create(&mut cluster, creatable_topic("x", 1, 3, &[])).unwrap_err();
        assert!(rf.to_string().starts_with("INVALID_REPLICATION_FACTOR: "));

        assert_eq!(topic_names(&mut cluster, false).unwrap(), ["orders"]);
        assert_eq!(topic_names(&mut cluster, true).unwrap(), ["__internal", "orders"]);

        let report = describe_report(&mut cluster, &[], false).unwrap();
        assert!(report.failures.is_empty());
        assert!(report.lines[0].starts_with("Topic: orders  TopicId: "));
        assert!(report.lines[0].ends_with("  PartitionCount: 3  ReplicationFactor: 1  Configs: retention.ms=1000"));
        assert_eq!(
            report.lines[1..],
            [
                "  Partition: 0  Leader: 1  Replicas: 1  Isr: 1  LogStartOffset: 10  LogEndOffset: 20",
                "  Partition: 1  Leader: 2  Replicas: 2  Isr: 2  LogStartOffset: 10  LogEndOffset: 21",
                "  Partition: 2  Leader: 1  Replicas: 1  Isr: 1  LogStartOffset: 10  LogEndOffset: 22",
                "  Config: retention.ms=1000 (topic)",
                "  Config: segment.bytes=1048576 (default)",
            ]
        );
        let missing = describe_report(&mut cluster, &strings(&["nope"]), false).unwrap();
        assert_eq!(missing.failures, ["nope: UNKNOWN_TOPIC_OR_PARTITION"]);

        delete(&mut cluster, &strings(&["orders", "__internal"])).unwrap();
        let gone = delete(&mut cluster, &strings(&["orders"])).unwrap_err();
        assert_eq!(gone.to_string(), "orders: UNKNOWN_TOPIC_OR_PARTITION");
        assert!(topic_names(&mut cluster, true).unwrap().is_empty());

        // Admin requests went to the controller (node 2), offsets to leaders.
        let requests = state.lock().unwrap().requests.clone();
        for (node, key) in &requests {
            if matches!(key, ApiKey::CreateTopics | ApiKey::DeleteTopics) {
                assert_eq!(*node, 2, "{key:?} sent to node {node}");
            }
        }
        let offsets_requests = requests.iter().filter(|(_, k)| *k == ApiKey::ListOffsets);
        assert_eq!(offsets_requests.count(), 4, "two per leader");
    }
}
