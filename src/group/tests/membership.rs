//! Joins, syncs, heartbeats and leaves of dynamic members.

use super::*;

#[test]
fn single_member_joins_syncs_and_heartbeats() {
    let mut c = coordinator();
    let joined = answer(&mut c.join(join_request("", "client"), 0)).unwrap();
    assert!(joined.member_id.starts_with("client-"));
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader_id, joined.member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, Bytes::from("sub-range"));
    assert_eq!(c.group_state(GROUP), Some(GroupState::CompletingRebalance));

    let mut synced = c.sync(sync_request(1, &joined.member_id, &[(&joined.member_id, "p0,p1")]), 10);
    assert_eq!(answer(&mut synced).unwrap().assignment, Bytes::from("p0,p1"));
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
    assert_eq!(c.heartbeat(heartbeat(1, &joined.member_id), 20), Ok(()));
    assert!(matches!(c.heartbeat(heartbeat(0, &joined.member_id), 20), Err(GroupError::IllegalGeneration { .. })));
    assert!(matches!(c.heartbeat(heartbeat(1, "nobody"), 20), Err(GroupError::UnknownMemberId { .. })));
}

#[test]
fn first_join_requires_a_member_id() {
    let mut c = coordinator();
    let request = JoinGroup { require_known_member_id: true, ..join_request("", "client") };
    let Err(GroupError::MemberIdRequired { member_id }) = answer(&mut c.join(request.clone(), 0)) else {
        panic!("expected MEMBER_ID_REQUIRED");
    };
    assert!(member_id.starts_with("client-"));
    assert_eq!(c.group_state(GROUP), Some(GroupState::Empty));
    // The pending member is not a member yet.
    assert!(matches!(c.heartbeat(heartbeat(0, &member_id), 1), Err(GroupError::UnknownMemberId { .. })));

    let joined = answer(&mut c.join(JoinGroup { member_id: member_id.clone(), ..request }, 5)).unwrap();
    assert_eq!(joined.member_id, member_id);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader_id, member_id);
}

#[test]
fn pending_member_that_never_rejoins_is_forgotten() {
    let mut c = coordinator();
    let request = JoinGroup { require_known_member_id: true, ..join_request("", "a") };
    let Err(GroupError::MemberIdRequired { member_id }) = answer(&mut c.join(request.clone(), 0)) else { panic!() };
    c.tick(i64::from(SESSION_MS));
    let rejoin = JoinGroup { member_id, ..request };
    assert!(matches!(answer(&mut c.join(rejoin, i64::from(SESSION_MS) + 1)), Err(GroupError::UnknownMemberId { .. })));
}

#[test]
fn two_members_join_during_the_initial_delay() {
    let mut c = Coordinator::new(GroupConfig::default());
    let mut first = c.join(join_request("", "a"), 0);
    let mut second = c.join(join_request("", "b"), 1_000);
    assert_eq!(c.group_state(GROUP), Some(GroupState::PreparingRebalance));
    c.tick(2_999);
    assert_waiting(&mut first);
    // The second member arrived during the delay, which extends it once.
    c.tick(3_000);
    assert_waiting(&mut first);
    c.tick(6_000);
    let (a, b) = (answer(&mut first).unwrap(), answer(&mut second).unwrap());
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    assert_eq!(a.leader_id, a.member_id);
    assert_eq!(b.leader_id, a.member_id);
    let ids: Vec<&str> = a.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, [a.member_id.as_str(), b.member_id.as_str()]);
    assert!(b.members.is_empty(), "followers get no member metadata");

    // The follower syncs first and waits for the leader's assignment.
    let mut follower = c.sync(sync_request(1, &b.member_id, &[]), 6_100);
    assert_waiting(&mut follower);
    let assignments = [(a.member_id.as_str(), "p0"), (b.member_id.as_str(), "p1")];
    let mut leader = c.sync(sync_request(1, &a.member_id, &assignments), 6_200);
    assert_eq!(answer(&mut leader).unwrap().assignment, Bytes::from("p0"));
    assert_eq!(answer(&mut follower).unwrap().assignment, Bytes::from("p1"));
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
}

#[test]
fn a_third_member_triggers_a_rebalance_to_a_new_generation() {
    let mut c = coordinator();
    let a = join_alone(&mut c, "a", 0);
    let mut b_join = c.join(join_request("", "b"), 100);
    assert_eq!(c.group_state(GROUP), Some(GroupState::PreparingRebalance));
    assert_eq!(c.heartbeat(heartbeat(1, &a), 200), Err(GroupError::RebalanceInProgress));
    let mut a_join = c.join(join_request(&a, "a"), 300);
    let (a1, b1) = (answer(&mut a_join).unwrap(), answer(&mut b_join).unwrap());
    assert_eq!((a1.generation_id, b1.generation_id), (2, 2));
    let b = b1.member_id;
    answer(&mut c.sync(sync_request(2, &a, &[(&a, "p0"), (&b, "p1")]), 400)).unwrap();
    answer(&mut c.sync(sync_request(2, &b, &[]), 400)).unwrap();

    let mut c_join = c.join(join_request("", "c"), 1_000);
    assert_eq!(c.heartbeat(heartbeat(2, &a), 1_100), Err(GroupError::RebalanceInProgress));
    assert_eq!(c.heartbeat(heartbeat(2, &b), 1_100), Err(GroupError::RebalanceInProgress));
    let mut a_join = c.join(join_request(&a, "a"), 1_200);
    assert_waiting(&mut a_join);
    let mut b_join = c.join(join_request(&b, "b"), 1_300);
    let answers = [answer(&mut a_join).unwrap(), answer(&mut b_join).unwrap(), answer(&mut c_join).unwrap()];
    assert!(answers.iter().all(|r| r.generation_id == 3 && r.leader_id == a));
    assert_eq!(answers[0].members.len(), 3);
    assert_eq!(c.generation_id(GROUP), Some(3));
    assert_eq!(c.group_state(GROUP), Some(GroupState::CompletingRebalance));
    // The old generation is over.
    assert!(matches!(c.heartbeat(heartbeat(2, &b), 1_400), Err(GroupError::IllegalGeneration { .. })));
}

#[test]
fn leave_group_by_member_id_and_by_instance_id() {
    let mut c = coordinator();
    let a = join_alone(&mut c, "a", 0);
    let mut b_join = c.join(static_join("", "b", "instance-b"), 10);
    answer(&mut c.join(join_request(&a, "a"), 20)).unwrap();
    let b = answer(&mut b_join).unwrap().member_id;

    let leave = LeaveGroup {
        group_id: GROUP.into(),
        members: vec![
            LeavingMember { member_id: a.clone(), group_instance_id: None },
            LeavingMember { member_id: String::new(), group_instance_id: Some("instance-b".into()) },
            LeavingMember { member_id: "ghost".into(), group_instance_id: None },
        ],
    };
    let answers = c.leave(leave, 30).unwrap();
    assert_eq!(answers[0].result, Ok(()));
    assert_eq!(answers[1].result, Ok(()));
    assert!(matches!(answers[2].result, Err(GroupError::UnknownMemberId { .. })));
    assert_eq!(c.group_state(GROUP), Some(GroupState::Empty));
    assert_eq!(c.generation_id(GROUP), Some(3));
    assert!(c.describe_group(GROUP).members.is_empty());
    assert!(matches!(c.heartbeat(heartbeat(3, &b), 40), Err(GroupError::UnknownMemberId { .. })));
}

#[test]
fn leaving_during_the_join_phase_completes_it() {
    let mut c = coordinator();
    let a = join_alone(&mut c, "a", 0);
    let mut b_join = c.join(join_request("", "b"), 10);
    assert_waiting(&mut b_join);
    let leave =
        LeaveGroup { group_id: GROUP.into(), members: vec![LeavingMember { member_id: a, group_instance_id: None }] };
    c.leave(leave, 20).unwrap();
    let b = answer(&mut b_join).unwrap();
    assert_eq!((b.generation_id, b.leader_id.as_str()), (2, b.member_id.as_str()));
}

#[test]
fn leave_of_an_unknown_group_answers_per_member() {
    let mut c = coordinator();
    let leave = LeaveGroup {
        group_id: "nope".into(),
        members: vec![LeavingMember { member_id: "m".into(), group_instance_id: None }],
    };
    let answers = c.leave(leave, 0).unwrap();
    assert!(matches!(answers[0].result, Err(GroupError::UnknownMemberId { .. })));
}

#[test]
fn joins_that_do_not_fit_are_refused() {
    let mut c = coordinator();
    let bad_timeout = JoinGroup { session_timeout_ms: 1_000, ..join_request("", "a") };
    let refused = answer(&mut c.join(bad_timeout, 0)).unwrap_err();
    assert!(matches!(refused, GroupError::InvalidSessionTimeout { .. }));
    assert!(matches!(refused, GroupError::InvalidSessionTimeout { .. }));
    let no_group = JoinGroup { group_id: String::new(), ..join_request("", "a") };
    assert_eq!(answer(&mut c.join(no_group, 0)), Err(GroupError::InvalidGroupId));
    assert!(matches!(answer(&mut c.join(join_request("ghost", "a"), 0)), Err(GroupError::UnknownMemberId { .. })));

    join_alone(&mut c, "a", 0);
    let other_protocol = JoinGroup { protocols: protocols(&["roundrobin"]), ..join_request("", "b") };
    assert_eq!(answer(&mut c.join(other_protocol, 10)), Err(GroupError::InconsistentGroupProtocol));
    let other_type = JoinGroup { protocol_type: "connect".into(), ..join_request("", "b") };
    assert_eq!(answer(&mut c.join(other_type, 10)), Err(GroupError::InconsistentGroupProtocol));
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
}

#[test]
fn group_max_size_is_enforced() {
    let config = GroupConfig { group_initial_rebalance_delay_ms: 0, group_size_max: 1, ..GroupConfig::default() };
    let mut c = Coordinator::new(config);
    join_alone(&mut c, "a", 0);
    assert_eq!(answer(&mut c.join(join_request("", "b"), 10)), Err(GroupError::GroupMaxSizeReached));
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
}

#[test]
fn protocol_chosen_by_votes_and_names_pass_through() {
    let mut c = Coordinator::new(GroupConfig::default());
    let eager_first = JoinGroup { protocols: protocols(&["range", "cooperative-sticky"]), ..join_request("", "a") };
    let coop_first =
        |client| JoinGroup { protocols: protocols(&["cooperative-sticky", "range"]), ..join_request("", client) };
    let mut a = c.join(eager_first, 0);
    let mut b = c.join(coop_first("b"), 0);
    let mut d = c.join(coop_first("d"), 0);
    // Two members arrived during the initial delay, which extends it once.
    c.tick(3_000);
    c.tick(6_000);
    let leader = answer(&mut a).unwrap();
    assert_eq!(leader.protocol_name.as_deref(), Some("cooperative-sticky"));
    assert!(leader.members.iter().all(|m| m.metadata == "sub-cooperative-sticky"));
    assert_eq!(answer(&mut b).unwrap().protocol_name.as_deref(), Some("cooperative-sticky"));
    assert_eq!(answer(&mut d).unwrap().protocol_name.as_deref(), Some("cooperative-sticky"));
}

#[test]
fn sync_errors() {
    let mut c = coordinator();
    let a = join_alone(&mut c, "a", 0);
    assert!(matches!(answer(&mut c.sync(sync_request(7, &a, &[]), 1)), Err(GroupError::IllegalGeneration { .. })));
    assert!(matches!(answer(&mut c.sync(sync_request(1, "ghost", &[]), 1)), Err(GroupError::UnknownMemberId { .. })));
    let wrong_protocol = SyncGroup { protocol_name: Some("roundrobin".into()), ..sync_request(1, &a, &[]) };
    assert_eq!(answer(&mut c.sync(wrong_protocol, 1)), Err(GroupError::InconsistentGroupProtocol));
    // A sync in a Stable group returns the current assignment again.
    assert_eq!(answer(&mut c.sync(sync_request(1, &a, &[]), 1)).unwrap().assignment, Bytes::from("all"));
    let _b = c.join(join_request("", "b"), 2);
    assert_eq!(answer(&mut c.sync(sync_request(1, &a, &[]), 3)), Err(GroupError::RebalanceInProgress));
}

#[test]
fn list_and_describe() {
    let mut c = coordinator();
    let a = join_alone(&mut c, "a", 0);
    c.validate_commit("simple", -1, "", None, 0).unwrap();
    let all = c.list_groups(&[]);
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0],
        GroupListing { group_id: GROUP.into(), protocol_type: "consumer".into(), state: GroupState::Stable }
    );
    assert_eq!(
        all[1],
        GroupListing { group_id: "simple".into(), protocol_type: String::new(), state: GroupState::Empty }
    );
    let empty = c.list_groups(&[GroupState::parse("empty").unwrap()]);
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].group_id, "simple");

    let described = c.describe_group(GROUP);
    assert_eq!((described.state, described.protocol.as_str()), (GroupState::Stable, "range"));
    assert_eq!(described.protocol_type, "consumer");
    let member = &described.members[0];
    assert_eq!((member.member_id.as_str(), member.client_id.as_str()), (a.as_str(), "a"));
    assert_eq!(member.client_host, "/127.0.0.1");
    assert_eq!((member.metadata.clone(), member.assignment.clone()), (Bytes::from("sub-range"), Bytes::from("all")));
    assert_eq!(c.describe_group("unknown").state, GroupState::Dead);
}

#[test]
fn delete_groups_only_when_empty() {
    let mut c = coordinator();
    let a = join_alone(&mut c, "a", 0);
    assert_eq!(c.delete_group(GROUP), Err(GroupError::NonEmptyGroup));
    assert!(matches!(c.delete_group("unknown"), Err(GroupError::GroupIdNotFound { .. })));
    c.validate_commit(GROUP, 1, &a, None, 1).unwrap();
    c.apply_commit(GROUP, [(tp("t", 0), offset(5, 1))], 1);
    let leave =
        LeaveGroup { group_id: GROUP.into(), members: vec![LeavingMember { member_id: a, group_instance_id: None }] };
    c.leave(leave, 2).unwrap();
    assert_eq!(c.delete_group(GROUP), Ok(vec![tp("t", 0)]));
    assert_eq!(c.group_state(GROUP), None);
    assert_eq!(c.fetch_offsets(GROUP, Some(&[tp("t", 0)]))[0].1.offset, -1);
}
