//! Committed offsets: validation, storage, fetch, cleanup and expiry.

use super::*;

const RETENTION_MS: i64 = OFFSETS_RETENTION_MS_DEFAULT;

#[test]
fn a_simple_commit_goes_to_an_empty_or_unknown_group() {
    let mut c = coordinator();
    assert_eq!(c.validate_commit("simple", -1, "", None, 0), Ok(()));
    assert_eq!(c.group_state("simple"), Some(GroupState::Empty));
    c.apply_commit("simple", [(tp("t", 0), offset(42, 0))], 0);
    assert_eq!(c.fetch_offsets("simple", Some(&[tp("t", 0)])), vec![(tp("t", 0), offset(42, 0))]);
    // Unknown groups only accept commits without a generation.
    assert!(matches!(c.validate_commit("other", 1, "m", None, 0), Err(GroupError::IllegalGeneration { .. })));

    let member = join_alone(&mut c, "a", 0);
    assert!(matches!(c.validate_commit(GROUP, -1, "", None, 1), Err(GroupError::UnknownMemberId { .. })));
    assert_eq!(c.validate_commit(GROUP, 1, &member, None, 1), Ok(()));
}

#[test]
fn commits_are_checked_against_membership_and_generation() {
    let mut c = coordinator();
    let a = join_alone(&mut c, "a", 0);
    assert_eq!(c.validate_commit(GROUP, 0, &a, None, 1), Err(GroupError::IllegalGeneration { expected: 1, got: 0 }));
    assert!(matches!(c.validate_commit(GROUP, 1, "ghost", None, 1), Err(GroupError::UnknownMemberId { .. })));

    // Commits are still allowed while preparing a rebalance ...
    let mut b_join = c.join(join_request("", "b"), 2);
    assert_eq!(c.validate_commit(GROUP, 1, &a, None, 3), Ok(()));
    // ... but not between the join phase and the new assignment.
    answer(&mut c.join(join_request(&a, "a"), 4)).unwrap();
    answer(&mut b_join).unwrap();
    assert_eq!(c.validate_commit(GROUP, 2, &a, None, 5), Err(GroupError::RebalanceInProgress));
    assert!(matches!(c.check_offset_metadata(&"x".repeat(5_000)), Err(GroupError::OffsetMetadataTooLarge { .. })));
}

#[test]
fn fetch_returns_committed_offsets_and_minus_one_for_the_rest() {
    let mut c = coordinator();
    c.apply_commit(GROUP, [(tp("t", 0), offset(10, 5)), (tp("t", 1), offset(11, 5)), (tp("u", 0), offset(1, 5))], 5);
    c.apply_commit(GROUP, [(tp("t", 0), offset(20, 6))], 6);
    let fetched = c.fetch_offsets(GROUP, Some(&[tp("t", 0), tp("t", 9)]));
    assert_eq!(fetched[0], (tp("t", 0), offset(20, 6)));
    assert_eq!(fetched[1], (tp("t", 9), OffsetAndMetadata::unknown()));
    let all: Vec<i64> = c.fetch_offsets(GROUP, None).into_iter().map(|(_, o)| o.offset).collect();
    assert_eq!(all, [20, 11, 1]);
    assert!(c.fetch_offsets("nobody", None).is_empty());
    assert_eq!(c.fetch_offsets("nobody", Some(&[tp("t", 0)]))[0].1.offset, -1);
}

#[test]
fn deleted_topics_lose_their_offsets() {
    let mut c = coordinator();
    c.apply_commit("g1", [(tp("t", 0), offset(1, 0)), (tp("u", 0), offset(2, 0))], 0);
    c.apply_commit("g2", [(tp("t", 3), offset(3, 0))], 0);
    let removed = c.delete_topic_offsets("t");
    let mut gone = removed.offsets.clone();
    gone.sort();
    assert_eq!(gone, [("g1".to_string(), tp("t", 0)), ("g2".to_string(), tp("t", 3))]);
    assert_eq!(removed.groups, ["g2"]);
    assert_eq!(c.group_state("g2"), None);
    assert_eq!(c.fetch_offsets("g1", None), vec![(tp("u", 0), offset(2, 0))]);
}

#[test]
fn offsets_of_empty_groups_expire_after_the_retention() {
    let mut c = coordinator();
    // A simple committer: offsets expire from their commit time.
    c.apply_commit("simple", [(tp("t", 0), offset(1, 0)), (tp("t", 1), offset(1, 1_000))], 0);
    // A consumer group: offsets expire from when the group became Empty.
    let a = join_alone(&mut c, "a", 0);
    c.apply_commit(GROUP, [(tp("t", 0), offset(7, 0))], 0);
    assert!(c.expire_offsets(RETENTION_MS + 1, RETENTION_MS).offsets == [("simple".to_string(), tp("t", 0))]);
    assert_eq!(c.fetch_offsets(GROUP, None).len(), 1, "a Stable group's offsets do not expire");

    let left_at = RETENTION_MS + 10;
    let leave =
        LeaveGroup { group_id: GROUP.into(), members: vec![LeavingMember { member_id: a, group_instance_id: None }] };
    c.leave(leave, left_at).unwrap();
    assert_eq!(c.group_state(GROUP), Some(GroupState::Empty));
    assert!(!c.expire_offsets(left_at + RETENTION_MS - 1, RETENTION_MS).offsets.iter().any(|(g, _)| g == GROUP));
    let removed = c.expire_offsets(left_at + RETENTION_MS, RETENTION_MS);
    assert!(removed.offsets.contains(&(GROUP.to_string(), tp("t", 0))));
    assert!(removed.groups.contains(&GROUP.to_string()));
    assert_eq!(c.group_state(GROUP), None);
    assert_eq!(c.group_state("simple"), None, "the simple group lost its last offset too");
}

#[test]
fn replay_loads_commits_and_tombstones() {
    let mut c = coordinator();
    c.load_commit("g1", tp("t", 0), offset(5, 100));
    c.load_commit("g1", tp("t", 0), offset(6, 200));
    c.load_commit("g1", tp("t", 1), offset(9, 200));
    assert_eq!(c.fetch_offsets("g1", Some(&[tp("t", 0)]))[0].1.offset, 6);
    c.load_tombstone("g1", &tp("t", 0));
    assert_eq!(c.fetch_offsets("g1", Some(&[tp("t", 0)]))[0].1.offset, -1);
    c.load_tombstone("g1", &tp("t", 1));
    assert_eq!(c.group_state("g1"), None);
}

/// A consumer's JoinGroup metadata as the Java client writes it: version 1, then its fields.
fn subscription(topics: &[&str]) -> Bytes {
    use bytes::BufMut;
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let topics = topics.iter().map(|t| StrBytes::from_string(t.to_string())).collect();
    let mut buf = bytes::BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolSubscription::default().with_topics(topics).encode(&mut buf, 1).unwrap();
    buf.freeze()
}

#[test]
fn offset_delete_forgets_offsets_of_an_empty_group_and_then_the_group() {
    let mut c = coordinator();
    c.apply_commit(GROUP, [(tp("t", 0), offset(1, 0)), (tp("t", 1), offset(2, 0)), (tp("u", 0), offset(3, 0))], 0);
    let deleted = c.delete_offsets(GROUP, &[tp("t", 0), tp("t", 7), tp("t", 0)]).unwrap();
    assert_eq!(deleted.outcomes, [Ok(()), Ok(()), Ok(())], "partitions without an offset succeed too");
    assert_eq!(deleted.removed, [tp("t", 0)], "one tombstone per offset that went");
    assert_eq!(c.fetch_offsets(GROUP, None), vec![(tp("t", 1), offset(2, 0)), (tp("u", 0), offset(3, 0))]);

    let deleted = c.delete_offsets(GROUP, &[tp("t", 1), tp("u", 0)]).unwrap();
    assert_eq!(deleted.removed, [tp("t", 1), tp("u", 0)]);
    assert_eq!(c.group_state(GROUP), None, "an Empty group without offsets is forgotten");
    assert_eq!(c.delete_offsets(GROUP, &[tp("t", 1)]), Err(GroupError::GroupIdNotFound { group_id: GROUP.into() }));
    assert_eq!(c.delete_offsets("", &[tp("t", 1)]), Err(GroupError::InvalidGroupId));
}

#[test]
fn offset_delete_spares_the_topics_a_live_consumer_group_subscribes_to() {
    let mut c = coordinator();
    let protocols = vec![Protocol { name: "range".into(), metadata: subscription(&["t", "v"]) }];
    let joined = answer(&mut c.join(JoinGroup { protocols, ..join_request("", "a") }, 0)).unwrap();
    let member = joined.member_id;
    answer(&mut c.sync(sync_request(joined.generation_id, &member, &[(&member, "t-0")]), 0)).unwrap();
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
    c.apply_commit(GROUP, [(tp("t", 0), offset(1, 0)), (tp("u", 0), offset(2, 0))], 0);

    let deleted = c.delete_offsets(GROUP, &[tp("t", 0), tp("u", 0)]).unwrap();
    assert_eq!(deleted.outcomes, [Err(GroupError::GroupSubscribedToTopic { topic: "t".into() }), Ok(())]);
    assert_eq!(deleted.removed, [tp("u", 0)]);
    assert_eq!(c.fetch_offsets(GROUP, None), vec![(tp("t", 0), offset(1, 0))]);
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable), "a group with members stays");
}

#[test]
fn offset_delete_of_a_live_group_needs_the_consumer_protocol_it_can_read() {
    // Metadata that is no ConsumerProtocolSubscription: every topic counts as subscribed, as in Kafka.
    let mut c = coordinator();
    join_alone(&mut c, "a", 0);
    c.apply_commit(GROUP, [(tp("u", 0), offset(2, 0))], 0);
    let deleted = c.delete_offsets(GROUP, &[tp("u", 0)]).unwrap();
    assert_eq!(deleted.outcomes, [Err(GroupError::GroupSubscribedToTopic { topic: "u".into() })]);
    assert!(deleted.removed.is_empty());

    // A live group of another protocol type (Connect workers, say) is refused whole.
    let mut c = coordinator();
    let joined = answer(&mut c.join(JoinGroup { protocol_type: "connect".into(), ..join_request("", "w") }, 0));
    assert!(joined.is_ok());
    assert_eq!(c.delete_offsets(GROUP, &[tp("u", 0)]), Err(GroupError::NonEmptyGroup));
}
