//! `corelog groups`: list, describe, reset the offsets of, and delete
//! consumer groups.
//!
//! Everything goes over the Kafka protocol (Metadata, ListGroups,
//! FindCoordinator, DescribeGroups, OffsetFetch, OffsetCommit, ListOffsets,
//! DeleteGroups), so the command works against any Kafka broker, not only
//! corelog. Group requests go to the group's coordinator (coordinator.rs); in
//! corelog that is the shard owning the group's `__consumer_offsets`
//! partition.

mod assignment;
mod coordinator;
mod datetime;
mod describe;
mod offsets;
mod reset;

use anyhow::bail;

use self::datetime::parse_datetime;
use super::ConnectArgs;

/// A partition: topic name and index.
type Partition = (String, i32);

/// Manage consumer groups over the Kafka protocol (works against any Kafka broker).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GroupsCommand {
    /// List groups (asks every broker): GROUP STATE PROTOCOL-TYPE, sorted
    List {
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Describe a group: state, members, assignments, committed offsets and lag
    Describe {
        /// Group id
        group: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Reset a group's committed offsets (dry run unless --execute); the group must have no members
    ResetOffsets {
        /// Group id
        group: String,
        /// Topic to reset, TOPIC or TOPIC:0,1,2 for some partitions only (repeatable)
        #[arg(long = "topic", value_name = "TOPIC[:PARTITIONS]", required = true, value_parser = parse_topic_spec)]
        topics: Vec<TopicSpec>,
        #[command(flatten)]
        target: ResetTargetArgs,
        /// Commit the new offsets (without it, only print the plan)
        #[arg(long)]
        execute: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Delete groups (only groups without members)
    Delete {
        /// Group ids
        #[arg(required = true)]
        groups: Vec<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Where `reset-offsets` moves the offsets: exactly one of these.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ResetTargetArgs {
    /// To the log start offset
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset
    #[arg(long)]
    to_latest: bool,
    /// To this offset (kept within the log start and end offsets)
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    to_offset: Option<i64>,
    /// To the first offset at or after this time: YYYY-MM-DDTHH:MM:SS[.sss][Z|+hh:mm] (local time without a zone)
    #[arg(long, value_name = "DATETIME", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
}

/// A reset target, from `ResetTargetArgs`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the epoch.
    Datetime(i64),
}

impl ResetTargetArgs {
    fn target(&self) -> anyhow::Result<ResetTarget> {
        match (self.to_earliest, self.to_latest, self.to_offset, self.to_datetime) {
            (true, false, None, None) => Ok(ResetTarget::Earliest),
            (false, true, None, None) => Ok(ResetTarget::Latest),
            (false, false, Some(offset), None) => Ok(ResetTarget::Offset(offset)),
            (false, false, None, Some(ms)) => Ok(ResetTarget::Datetime(ms)),
            _ => bail!("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime"),
        }
    }
}

/// A `--topic` argument: a topic, and optionally some of its partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub topic: String,
    /// `None`: every partition.
    pub partitions: Option<Vec<i32>>,
}

/// Parses `--topic T` or `--topic T:0,1,2`.
pub fn parse_topic_spec(arg: &str) -> Result<TopicSpec, String> {
    let (topic, partitions) = match arg.rsplit_once(':') {
        None => (arg, None),
        Some((topic, list)) => {
            let mut partitions = Vec::new();
            for part in list.split(',') {
                let part = part.trim();
                let index: i32 = part.parse().map_err(|_| format!("bad partition {part:?} in {arg:?}"))?;
                if index < 0 {
                    return Err(format!("negative partition {index} in {arg:?}"));
                }
                if !partitions.contains(&index) {
                    partitions.push(index);
                }
            }
            partitions.sort_unstable();
            (topic, Some(partitions))
        }
    };
    if topic.is_empty() {
        return Err(format!("no topic name in {arg:?}"));
    }
    Ok(TopicSpec { topic: topic.to_string(), partitions })
}

/// Runs one `corelog groups` command. Errors carry Kafka's error names,
/// e.g. `NON_EMPTY_GROUP`.
pub fn run(command: GroupsCommand) -> anyhow::Result<()> {
    match command {
        GroupsCommand::List { connect } => describe::list(&mut connect.cluster()?),
        GroupsCommand::Describe { group, connect } => describe::describe(&mut connect.cluster()?, &group),
        GroupsCommand::ResetOffsets { group, topics, target, execute, connect } => {
            let target = target.target()?;
            let mut cluster = connect.cluster()?;
            reset::reset_offsets(&mut cluster, &group, &topics, target, execute)
        }
        GroupsCommand::Delete { groups, connect } => coordinator::delete(&mut connect.cluster()?, &groups),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: GroupsCommand,
    }

    fn parse(args: &[&str]) -> Result<GroupsCommand, clap::Error> {
        let args = std::iter::once("groups").chain(args.iter().copied());
        TestCli::try_parse_from(args).map(|cli| cli.command)
    }

    #[test]
    fn topic_specs_parse() {
        assert_eq!(parse_topic_spec("orders"), Ok(TopicSpec { topic: "orders".into(), partitions: None }));
        assert_eq!(
            parse_topic_spec("orders:2,0,1,0"),
            Ok(TopicSpec { topic: "orders".into(), partitions: Some(vec![0, 1, 2]) })
        );
        assert_eq!(parse_topic_spec("a:b:3"), Ok(TopicSpec { topic: "a:b".into(), partitions: Some(vec![3]) }));
        for bad in ["", ":1", "t:", "t:x", "t:1,", "t:-1", "t:1,,2"] {
            assert!(parse_topic_spec(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn reset_offsets_arguments() {
        let GroupsCommand::ResetOffsets { group, topics, target, execute, .. } =
            parse(&["reset-offsets", "g", "--topic", "a", "--topic", "b:0,1", "--to-offset", "5", "--execute"])
                .unwrap()
        else {
            panic!("not reset-offsets");
        };
        assert_eq!(group, "g");
        assert_eq!(topics.len(), 2);
        assert_eq!(topics[1].partitions, Some(vec![0, 1]));
        assert_eq!(target.target().unwrap(), ResetTarget::Offset(5));
        assert!(execute);

        let target_of = |args: &[&str]| {
            let mut all = vec!["reset-offsets", "g", "--topic", "a"];
            all.extend_from_slice(args);
            match parse(&all) {
                Ok(GroupsCommand::ResetOffsets { target, execute, .. }) => Ok((target.target().unwrap(), execute)),
                Ok(_) => panic!("not reset-offsets"),
                Err(error) => Err(error),
            }
        };
        assert_eq!(target_of(&["--to-earliest"]).unwrap(), (ResetTarget::Earliest, false));
        assert_eq!(target_of(&["--to-latest"]).unwrap(), (ResetTarget::Latest, false));
        assert_eq!(
            target_of(&["--to-datetime", "1970-01-01T00:00:01.5Z"]).unwrap(),
            (ResetTarget::Datetime(1500), false)
        );
        assert!(target_of(&[]).is_err(), "a target is required");
        assert!(target_of(&["--to-earliest", "--to-latest"]).is_err(), "only one target");
        assert!(target_of(&["--to-offset", "-1"]).is_err());
        assert!(target_of(&["--to-datetime", "yesterday"]).is_err());
        assert!(parse(&["reset-offsets", "g", "--to-earliest"]).is_err(), "--topic is required");
        assert!(parse(&["reset-offsets", "g", "--topic", "a:x", "--to-earliest"]).is_err());
    }

    #[test]
    fn list_describe_delete_parse() {
        assert!(matches!(parse(&["list"]).unwrap(), GroupsCommand::List { .. }));
        let GroupsCommand::Describe { group, connect } =
            parse(&["describe", "g", "--bootstrap-server", "h:1"]).unwrap()
        else {
            panic!("not describe");
        };
        assert_eq!((group.as_str(), connect.bootstrap_server.as_str()), ("g", "h:1"));
        assert!(parse(&["describe"]).is_err());
        let GroupsCommand::Delete { groups, .. } = parse(&["delete", "a", "b"]).unwrap() else {
            panic!("not delete");
        };
        assert_eq!(groups, ["a", "b"]);
        assert!(parse(&["delete"]).is_err());
    }
}
