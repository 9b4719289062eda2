//! Static membership (group.instance.id).

use super::*;

/// Static members a ("ia", leader) and b ("ib"), Stable in generation 2 with
/// a → "p0", b → "p1".
fn stable_static_pair(c: &mut Coordinator) -> (String, String) {
    let a = answer(&mut c.join(static_join("", "a", "ia"), 0)).unwrap().member_id;
    assert!(a.starts_with("ia-"));
    answer(&mut c.sync(SyncGroup { group_instance_id: Some("ia".into()), ..sync_request(1, &a, &[]) }, 0)).unwrap();
    let mut b_join = c.join(static_join("", "b", "ib"), 0);
    answer(&mut c.join(static_join(&a, "a", "ia"), 0)).unwrap();
    let b = answer(&mut b_join).unwrap().member_id;
    answer(&mut c.sync(sync_request(2, &a, &[(&a, "p0"), (&b, "p1")]), 0)).unwrap();
    answer(&mut c.sync(sync_request(2, &b, &[]), 0)).unwrap();
    (a, b)
}

fn static_heartbeat(member_id: &str, instance_id: &str) -> Heartbeat {
    Heartbeat { group_instance_id: Some(instance_id.into()), ..heartbeat(2, member_id) }
}

#[test]
fn a_restarted_static_member_gets_its_assignment_back_without_a_rebalance() {
    let mut c = coordinator();
    let (a, old_b) = stable_static_pair(&mut c);
    let rejoined = answer(&mut c.join(static_join("", "b", "ib"), 1_000)).unwrap();
    assert_ne!(rejoined.member_id, old_b);
    assert_eq!(rejoined.generation_id, 2, "no new generation");
    assert_eq!(rejoined.leader_id, a);
    assert!(rejoined.members.is_empty() && !rejoined.skip_assignment);
    assert_eq!(c.group_state(GROUP), Some(GroupState::Stable));
    assert_eq!(c.heartbeat(heartbeat(2, &a), 1_100), Ok(()), "the other member is not disturbed");

    let sync = SyncGroup { group_instance_id: Some("ib".into()), ..sync_request(2, &rejoined.member_id, &[]) };
    assert_eq!(answer(&mut c.sync(sync, 1_200)).unwrap().assignment, Bytes::from("p1"));
    assert_eq!(c.heartbeat(static_heartbeat(&rejoined.member_id, "ib"), 1_300), Ok(()));
}

#[test]
fn the_replaced_member_id_is_fenced() {
    let mut c = coordinator();
    let (_a, old_b) = stable_static_pair(&mut c);
    answer(&mut c.join(static_join("", "b", "ib"), 1_000)).unwrap();
    let fenced = c.heartbeat(static_heartbeat(&old_b, "ib"), 1_100).unwrap_err();
    assert_eq!(fenced, GroupError::FencedInstanceId { instance_id: "ib".into() });
    assert!(matches!(fenced, GroupError::FencedInstanceId { .. }));
    let sync = SyncGroup { group_instance_id: Some("ib".into()), ..sync_request(2, &old_b, &[]) };
    assert!(matches!(answer(&mut c.sync(sync, 1_100)), Err(GroupError::FencedInstanceId { .. })));
    let commit = c.validate_commit(GROUP, 2, &old_b, Some("ib"), 1_100);
    assert!(matches!(commit, Err(GroupError::FencedInstanceId { .. })));
    assert!(matches!(c.heartbeat(heartbeat(2, &old_b), 1_100), Err(GroupError::UnknownMemberId { .. })));
}

#[test]
fn a_static_leader_rejoining_is_told_to_skip_assignment() {
    let mut c = coordinator();
    let (old_a, b) = stable_static_pair(&mut c);
    let legacy = answer(&mut c.join(static_join("", "a", "ia"), 1_000)).unwrap();
    assert_eq!(legacy.leader_id, old_a, "pre-v9 clients are shown the old leader id so they do not assign");
    assert!(legacy.members.is_empty());

    let request = JoinGroup { supports_skip_assignment: true, ..static_join("", "a", "ia") };
    let modern = answer(&mut c.join(request, 2_000)).unwrap();
    assert_eq!(modern.leader_id, modern.member_id);
    assert!(modern.skip_assignment);
    let ids: Vec<&str> = modern.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, [b.as_str(), modern.member_id.as_str()]);
    assert_eq!(c.generation_id(GROUP), Some(2));
    let sync = SyncGroup { group_instance_id: Some("ia".into()), ..sync_request(2, &modern.member_id, &[]) };
    assert_eq!(answer(&mut c.sync(sync, 2_100)).unwrap().assignment, Bytes::from("p0"));
}

#[test]
fn a_static_member_with_a_new_protocol_choice_triggers_a_rebalance() {
    let mut c = coordinator();
    let a = answer(&mut c.join(static_join("", "a", "ia"), 0)).unwrap().member_id;
    answer(&mut c.sync(sync_request(1, &a, &[(&a, "all")]), 0)).unwrap();
    let request = JoinGroup { protocols: protocols(&["cooperative-sticky"]), ..static_join("", "a", "ia") };
    let rejoined = answer(&mut c.join(request, 10)).unwrap();
    assert_eq!(rejoined.generation_id, 2);
    assert_eq!(rejoined.protocol_name.as_deref(), Some("cooperative-sticky"));
}

#[test]
fn a_static_member_that_does_not_rejoin_is_kept_until_its_session_expires() {
    let mut c = coordinator();
    let (a, b) = stable_static_pair(&mut c);
    let mut a_join = c.join(static_join(&a, "a", "ia"), 1_000);
    let timeout_at = 1_000 + i64::from(REBALANCE_MS);
    for now in (3_000..timeout_at).step_by(3_000) {
        assert_eq!(c.heartbeat(static_heartbeat(&b, "ib"), now), Err(GroupError::RebalanceInProgress));
        c.tick(now);
    }
    c.tick(timeout_at);
    // Unlike a dynamic member, b stays in the new generation.
    let joined = answer(&mut a_join).unwrap();
    assert_eq!(joined.generation_id, 3);
    assert_eq!(joined.members.len(), 2);
    // a syncs and stays alive; silent from now on, b is evicted when its
    // session runs out.
    let sync = SyncGroup { group_instance_id: Some("ia".into()), ..sync_request(3, &a, &[(&a, "p0"), (&b, "p1")]) };
    answer(&mut c.sync(sync, timeout_at)).unwrap();
    let evicted_at = timeout_at + i64::from(SESSION_MS);
    for now in (timeout_at + 3_000..=evicted_at).step_by(3_000) {
        c.heartbeat(Heartbeat { generation_id: 3, ..static_heartbeat(&a, "ia") }, now).unwrap();
        c.tick(now);
    }
    c.tick(evicted_at);
    let hb = c.heartbeat(Heartbeat { generation_id: 3, ..static_heartbeat(&b, "ib") }, evicted_at);
    assert!(matches!(hb, Err(GroupError::UnknownMemberId { .. })), "{hb:?}");
    assert_eq!(c.group_state(GROUP), Some(GroupState::PreparingRebalance));
}

#[test]
fn a_static_member_rejoining_mid_rebalance_fences_its_old_join() {
    let mut c = coordinator();
    let (a, b) = stable_static_pair(&mut c);
    // b's rejoin with new metadata starts a rebalance; then b restarts.
    let changed = vec![Protocol { name: "range".into(), metadata: Bytes::from("sub-more-topics") }];
    let mut old_b_join = c.join(JoinGroup { protocols: changed, ..static_join(&b, "b", "ib") }, 1_000);
    assert_eq!(c.group_state(GROUP), Some(GroupState::PreparingRebalance));
    let mut new_b_join = c.join(static_join("", "b", "ib"), 1_100);
    assert!(matches!(answer(&mut old_b_join), Err(GroupError::FencedInstanceId { .. })));
    assert_waiting(&mut new_b_join);
    let a_joined = answer(&mut c.join(static_join(&a, "a", "ia"), 1_200)).unwrap();
    let new_b = answer(&mut new_b_join).unwrap();
    assert_eq!((a_joined.generation_id, new_b.generation_id), (3, 3));
    assert!(a_joined.members.iter().any(|m| m.member_id == new_b.member_id));
}
