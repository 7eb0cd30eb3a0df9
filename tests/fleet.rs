//! Fleet safety end to end: several agent processes, each with an IMDS
//! stand-in of its own, sharing one hosted zone in ministack. Ownership
//! markers, refusing to clobber, shared names, zones by name, stale records.

mod common;

use std::time::Duration;

use aws_sdk_route53::types::{
    AliasTarget, ChangeAction, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, RrType,
};
use common::{World, absent, holds};
use route53_agent_testkit::route53::change_record;
use route53_agent_testkit::{create_zone, records, upsert, values_of};

const SOON: Duration = Duration::from_secs(15);
const EXIT: Duration = Duration::from_secs(15);
const FIRST: &str = "i-0123456789abcdef0";

fn marker_of(instance: &str, kind: &str) -> String {
    format!("\"heritage=route53-agent,instance={instance},type={kind}\"")
}

#[tokio::test]
async fn each_record_has_a_marker_written_and_deleted_with_it() {
    let world = World::new().await;
    let name = world.name("web-1");
    let marker = format!("_route53-agent.a.{name}");
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    assert_eq!(world.marker(&marker).await, [marker_of(FIRST, "A")]);

    agent.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
    assert!(world.marker(&marker).await.is_empty(), "{}", agent.log());
}

#[tokio::test]
async fn a_refusal_for_new_values_is_logged_again_as_an_error() {
    let world = World::new().await;
    let name = world.name("web-1");
    let mut first = world.spawn(&world.simple_config());
    world
        .wait_for(&first, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    let second = world.instance("i-0bbbbbbbbbbbbbbbb", "10.0.0.20").await;
    let mut refused = world.spawn_as(&world.simple_config(), &second);
    let owner = format!("belongs to instance {FIRST}");
    refused.wait_log(&owner, SOON).await;
    // Quiet polls: the same refusal is said once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        refused.log().matches(&owner).count(),
        1,
        "{}",
        refused.log()
    );

    // New values are a new request, and its refusal a new error.
    second.set("local-ipv4", "10.0.0.21");
    let deadline = std::time::Instant::now() + SOON;
    loop {
        let log = refused.log();
        let errors = log
            .lines()
            .filter(|line| line.contains("ERROR") && line.contains(&owner))
            .count();
        if errors == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()]))
    );

    refused.stop().await;
    first.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
}

#[tokio::test]
async fn a_second_instance_refuses_a_taken_name_or_takes_it_over() {
    let world = World::new().await;
    let name = world.name("web-1");
    let mut first = world.spawn(&world.simple_config());
    world
        .wait_for(&first, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    let second = world.instance("i-0bbbbbbbbbbbbbbbb", "10.0.0.20").await;
    let refused = world
        .once_as("register", &world.simple_config(), &second)
        .await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains(&format!("belongs to instance {FIRST}")),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("takeover = true"), "{refused:?}");
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()]))
    );

    let takeover = world.config(
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        takeover = true
        "#,
    );
    let taken = world.once_as("register", &takeover, &second).await;
    assert_eq!(taken.code, Some(0), "{taken:?}");
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.20".to_string()]))
    );
    let marker = format!("_route53-agent.a.{name}");
    assert_eq!(
        world.marker(&marker).await,
        [marker_of("i-0bbbbbbbbbbbbbbbb", "A")]
    );

    // The old instance shuts down after the new one took its name: the new
    // record and its marker stay.
    first.stop().await;
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.20".to_string()]))
    );
    assert_eq!(
        world.marker(&marker).await,
        [marker_of("i-0bbbbbbbbbbbbbbbb", "A")]
    );
    assert!(first.log().contains("left alone"), "{}", first.log());
    assert!(
        first
            .log()
            .contains("its marker names instance i-0bbbbbbbbbbbbbbbb"),
        "the warning names the new owner: {}",
        first.log()
    );
}

#[tokio::test]
async fn a_fleet_shares_a_multivalue_name_and_one_leaving_keeps_the_others() {
    let world = World::new().await;
    let name = world.name("fleet");
    let config = world.config(
        r#"
        poll_interval = "1s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "fleet.{ZONE}"
        set_identifier = "{instance_id}"
        multivalue = true
        "#,
    );
    let mut agents = Vec::new();
    for (id, ip) in [
        ("i-0aaaaaaaaaaaaaaa1", "10.0.1.1"),
        ("i-0aaaaaaaaaaaaaaa2", "10.0.1.2"),
        ("i-0aaaaaaaaaaaaaaa3", "10.0.1.3"),
    ] {
        let imds = world.instance(id, ip).await;
        agents.push((world.spawn_as(&config, &imds), imds));
    }
    let logs: Vec<&common::Agent> = agents.iter().map(|(agent, _)| agent).collect();
    let sets = world
        .wait_sets(&logs, &name, RrType::A, SOON, |sets| sets.len() == 3)
        .await;
    assert_eq!(
        sets,
        [
            (
                Some("i-0aaaaaaaaaaaaaaa1".into()),
                vec!["10.0.1.1".to_string()]
            ),
            (
                Some("i-0aaaaaaaaaaaaaaa2".into()),
                vec!["10.0.1.2".to_string()]
            ),
            (
                Some("i-0aaaaaaaaaaaaaaa3".into()),
                vec!["10.0.1.3".to_string()]
            ),
        ]
    );

    let (mut leaving, _) = agents.remove(1);
    leaving.stop().await;
    let sets = world.sets(&name, RrType::A).await;
    assert_eq!(
        sets,
        [
            (
                Some("i-0aaaaaaaaaaaaaaa1".into()),
                vec!["10.0.1.1".to_string()]
            ),
            (
                Some("i-0aaaaaaaaaaaaaaa3".into()),
                vec!["10.0.1.3".to_string()]
            ),
        ]
    );
    for (agent, _) in &mut agents {
        agent.stop().await;
    }
    assert!(world.sets(&name, RrType::A).await.is_empty());
}

#[tokio::test]
async fn a_persons_record_is_left_untouched_while_other_records_are_served() {
    let world = World::new().await;
    let taken = world.name("web-1");
    let free = world.name("other");
    upsert(
        &world.r53,
        &world.zone_id,
        &taken,
        RrType::A,
        300,
        &["192.0.2.1"],
    )
    .await;
    let config = world.config(
        r#"
        poll_interval = "1s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "other.{ZONE}"
        "#,
    );
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &free, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    agent.wait_log("not marked as route53-agent's", SOON).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Refused once, and not asked again on every poll.
    assert_eq!(
        agent.log().matches("not marked as route53-agent's").count(),
        1
    );

    agent.stop().await;
    assert_eq!(world.record(&free, RrType::A).await, None);
    assert_eq!(
        world.record(&taken, RrType::A).await,
        Some((300, vec!["192.0.2.1".to_string()]))
    );
}

#[tokio::test]
async fn a_routing_policy_mix_is_reported_instead_of_sent() {
    let world = World::new().await;
    let name = world.name("fleet");
    upsert(
        &world.r53,
        &world.zone_id,
        &name,
        RrType::A,
        60,
        &["192.0.2.1"],
    )
    .await;
    let config = world.config(
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "fleet.{ZONE}"
        set_identifier = "{instance_id}"
        multivalue = true
        "#,
    );
    let finished = world.once("register", &config).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains("must share a routing policy"),
        "{finished:?}"
    );
    assert_eq!(
        world.sets(&name, RrType::A).await,
        [(None, vec!["192.0.2.1".to_string()])]
    );
}

#[tokio::test]
async fn a_restart_after_a_hard_stop_replaces_its_own_stale_record() {
    let world = World::new().await;
    let name = world.name("web-1");
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    agent.signal("KILL");
    agent.exit_code(EXIT).await;
    assert!(
        world.record(&name, RrType::A).await.is_some(),
        "left behind"
    );

    // The instance comes back with another address (a stop and start).
    world.imds.set("local-ipv4", "10.0.0.77");
    let mut again = world.spawn(&world.simple_config());
    world
        .wait_for(&again, &name, RrType::A, SOON, holds(60, &["10.0.0.77"]))
        .await;
    again.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
}

#[tokio::test]
async fn records_of_this_instance_that_are_no_longer_configured_are_collected() {
    let world = World::new().await;
    let old = world.name("web-1");
    let new = world.name("web-9");
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &old, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    agent.signal("KILL");
    agent.exit_code(EXIT).await;

    // Renamed while the agent was down: the next start writes the new name
    // and its start-up pass removes the old one, which only its marker ties
    // to this instance now.
    world.imds.set("tags/instance/Name", "web-9");
    let mut again = world.spawn(&world.simple_config());
    world
        .wait_for(&again, &new, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    world.wait_for(&again, &old, RrType::A, SOON, absent).await;
    assert!(
        world
            .marker(&format!("_route53-agent.a.{old}"))
            .await
            .is_empty()
    );
    again.stop().await;

    // The same with the gc command, and a person's record nearby untouched.
    let registered = world.once("register", &world.simple_config()).await;
    assert_eq!(registered.code, Some(0), "{registered:?}");
    let persons = world.name("web-7");
    upsert(
        &world.r53,
        &world.zone_id,
        &persons,
        RrType::A,
        60,
        &["192.0.2.7"],
    )
    .await;
    world.imds.set("tags/instance/Name", "web-3");
    let collected = world.once("gc", &world.simple_config()).await;
    assert_eq!(collected.code, Some(0), "{collected:?}");
    assert!(
        collected.stdout.contains("1 stale record(s) removed"),
        "{collected:?}"
    );
    assert_eq!(world.record(&new, RrType::A).await, None);
    assert!(world.record(&persons, RrType::A).await.is_some());
}

#[tokio::test]
async fn zones_are_found_by_name_and_kind() {
    let world = World::new().await;
    let private_id = create_zone(&world.r53, &world.zone, true).await;
    let name = world.name("web-1");
    let config = |private: &str| {
        world.config(&format!(
            "[[record]]\nzone = \"{{ZONE}}\"\n{private}\nname = \"{{tag:Name}}.{{ZONE}}\"\n"
        ))
    };

    let ambiguous = world.once("register", &config("")).await;
    assert_eq!(ambiguous.code, Some(64), "{ambiguous:?}");
    assert!(
        ambiguous.stderr.contains("2 hosted zones are named"),
        "{ambiguous:?}"
    );
    assert!(ambiguous.stderr.contains(&private_id), "{ambiguous:?}");
    assert!(ambiguous.stderr.contains(&world.zone_id), "{ambiguous:?}");

    let private = world.once("register", &config("private = true")).await;
    assert_eq!(private.code, Some(0), "{private:?}");
    let in_private = values_of(&records(&world.r53, &private_id).await, &name, RrType::A);
    assert_eq!(in_private, Some((60, vec!["10.0.0.10".to_string()])));
    assert_eq!(
        world.record(&name, RrType::A).await,
        None,
        "public zone untouched"
    );

    let public = world.once("register", &config("private = false")).await;
    assert_eq!(public.code, Some(0), "{public:?}");
    assert!(world.record(&name, RrType::A).await.is_some());
}

#[tokio::test]
async fn a_wildcard_name_is_written_and_found_again() {
    let world = World::new().await;
    let name = format!("*.{}", world.name("web-1"));
    let config = world.config(
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "*.{tag:Name}.{ZONE}"
        "#,
    );
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    agent.stop().await;
    assert_eq!(
        world.record(&name, RrType::A).await,
        None,
        "{}",
        agent.log()
    );
    assert!(agent.log().contains("record deleted"), "{}", agent.log());
}

#[tokio::test]
async fn cname_and_ptr_records_carry_markers_too() {
    let world = World::new().await;
    let reverse_id = create_zone(&world.r53, "10.in-addr.arpa", false).await;
    let config = world.config(&format!(
        r#"
        [[record]]
        zone_id = "{{ZONE_ID}}"
        name = "www.{{ZONE}}"
        type = "CNAME"
        value = "local-hostname"
        [[record]]
        zone_id = "{{ZONE_ID}}"
        name = "{{tag:Name}}.{{ZONE}}"
        reverse_zone_id = "{reverse_id}"
        "#
    ));
    let mut agent = world.spawn(&config);
    let www = world.name("www");
    world
        .wait_for(
            &agent,
            &www,
            RrType::Cname,
            SOON,
            holds(60, &["ip-10-0-0-10.ec2.internal."]),
        )
        .await;
    assert_eq!(
        world.marker(&format!("_route53-agent.cname.{www}")).await,
        [marker_of(FIRST, "CNAME")]
    );
    let ptr = values_of(
        &records(&world.r53, &reverse_id).await,
        "10.0.0.10.in-addr.arpa",
        RrType::Ptr,
    );
    assert_eq!(ptr, Some((60, vec![format!("{}.", world.name("web-1"))])));

    agent.stop().await;
    assert_eq!(world.record(&www, RrType::Cname).await, None);
    let reverse = records(&world.r53, &reverse_id).await;
    assert_eq!(
        values_of(&reverse, "10.0.0.10.in-addr.arpa", RrType::Ptr),
        None
    );
}

#[tokio::test]
async fn a_fresh_instance_makes_two_calls_and_never_lists_the_zone() {
    use route53_agent_testkit::fault_proxy::Action;

    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    // People's records fill the zone: a listing of it would take pages.
    for index in 0..5 {
        let other = world.name(&format!("other-{index}"));
        upsert(
            &world.r53,
            &world.zone_id,
            &other,
            RrType::A,
            60,
            &["192.0.2.1"],
        )
        .await;
    }
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    // Two more quiet polls: nothing else is sent.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The zone, then one CREATE of the record and its marker: nothing is
    // there, so nothing needs reading first.
    assert_eq!(proxy.count(Action::GetHostedZone), 1, "{}", agent.log());
    assert_eq!(proxy.count(Action::ListRecords), 0, "{}", agent.log());
    assert_eq!(proxy.count(Action::ChangeRecords), 1, "{}", agent.log());
    agent.stop().await;
}

#[tokio::test]
async fn plan_shows_what_register_would_refuse() {
    let world = World::new().await;
    let name = world.name("web-1");
    upsert(
        &world.r53,
        &world.zone_id,
        &name,
        RrType::A,
        300,
        &["192.0.2.1"],
    )
    .await;
    let plan = world.once("plan", &world.simple_config()).await;
    assert_eq!(plan.code, Some(1), "{plan:?}");
    assert!(plan.stdout.contains("refuse  "), "{plan:?}");
    assert!(
        plan.stdout.contains("not marked as route53-agent's"),
        "{plan:?}"
    );

    let free = world.config(
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "free.{ZONE}"
        "#,
    );
    let plan = world.once("plan", &free).await;
    assert_eq!(plan.code, Some(0), "{plan:?}");
    assert!(plan.stdout.contains("(create)"), "{plan:?}");
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((300, vec!["192.0.2.1".to_string()])),
        "plan wrote nothing"
    );
}

/// The set of `instance` under `name` in a multivalue fleet, with a health
/// check attached, as an operator would UPSERT it.
fn checked_set(name: &str, instance: &str, ip: &str, health_check_id: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .set_identifier(instance)
        .multi_value_answer(true)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(ip).build().unwrap())
        .health_check_id(health_check_id)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_health_check_on_an_instances_set_is_kept_on_update_and_the_set_still_deleted() {
    let world = World::new().await;
    let name = world.name("fleet");
    let config = world.config(
        r#"
        poll_interval = "1s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "fleet.{ZONE}"
        set_identifier = "{instance_id}"
        multivalue = true
        "#,
    );
    let mut agent = world.spawn(&config);
    world
        .wait_sets(&[&agent], &name, RrType::A, SOON, |sets| sets.len() == 1)
        .await;

    // An operator attaches a health check to this instance's set.
    let health_check = world
        .r53
        .create_health_check()
        .caller_reference(format!("{}-{name}", std::process::id()))
        .health_check_config(
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::Http)
                .ip_address("10.0.0.10")
                .port(80)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("creating a health check");
    let check_id = health_check.health_check().unwrap().id().to_string();
    change_record(
        &world.r53,
        &world.zone_id,
        ChangeAction::Upsert,
        checked_set(&name, FIRST, "10.0.0.10", &check_id),
    )
    .await
    .expect("attaching the health check");

    // The address changes: the agent's UPSERT keeps the health check.
    world.imds.set("local-ipv4", "10.0.0.77");
    world
        .wait_sets(&[&agent], &name, RrType::A, SOON, |sets| {
            sets == [(Some(FIRST.into()), vec!["10.0.0.77".to_string()])]
        })
        .await;
    let live = records(&world.r53, &world.zone_id).await;
    let set = live
        .iter()
        .find(|set| set.set_identifier() == Some(FIRST))
        .expect("the instance's set");
    assert_eq!(
        set.health_check_id(),
        Some(check_id.as_str()),
        "{}",
        agent.log()
    );

    // A DELETE must repeat the health check, or Route 53 refuses it.
    agent.stop().await;
    assert!(
        world.sets(&name, RrType::A).await.is_empty(),
        "{}",
        agent.log()
    );
    let marker = format!("_route53-agent.a-{}.{name}", FIRST);
    assert!(world.marker(&marker).await.is_empty());
}

#[tokio::test]
async fn an_alias_put_at_the_instances_name_is_never_taken_for_its_own() {
    let world = World::new().await;
    let name = world.name("web-1");
    let registered = world.once("register", &world.simple_config()).await;
    assert_eq!(registered.code, Some(0), "{registered:?}");

    // Someone points the name elsewhere with an alias; the agent's marker
    // is still beside it.
    let alias = ResourceRecordSet::builder()
        .name(&name)
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder()
                .hosted_zone_id(&world.zone_id)
                .dns_name(world.name("elsewhere"))
                .evaluate_target_health(false)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    change_record(&world.r53, &world.zone_id, ChangeAction::Upsert, alias)
        .await
        .expect("putting an alias at the name");
    let is_alias = || async {
        records(&world.r53, &world.zone_id)
            .await
            .iter()
            .any(|set| set.name().starts_with("web-1.") && set.alias_target().is_some())
    };

    let again = world.once("register", &world.simple_config()).await;
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(is_alias().await, "register overwrote the alias: {again:?}");

    let deregistered = world.once("deregister", &world.simple_config()).await;
    assert_eq!(deregistered.code, Some(0), "{deregistered:?}");
    assert!(
        is_alias().await,
        "deregister deleted the alias: {deregistered:?}"
    );
    assert!(
        world
            .marker(&format!("_route53-agent.a.{name}"))
            .await
            .is_empty(),
        "{deregistered:?}"
    );
}

#[tokio::test]
async fn an_update_racing_another_instance_that_takes_the_name_fails_instead_of_overwriting() {
    use route53_agent_testkit::{Action, Fault};

    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let marker = format!("_route53-agent.a.{name}");
    let second = "i-0bbbbbbbbbbbbbbbb";
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    // The agent reads the zone for an update, and its change batch is held
    // on the way while another instance takes the name.
    proxy.always(
        Action::ChangeRecords,
        "10.0.0.77",
        Fault::Delay(Duration::from_secs(2)),
    );
    world.imds.set("local-ipv4", "10.0.0.77");
    let deadline = std::time::Instant::now() + SOON;
    while proxy.count(Action::ChangeRecords) < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let theirs = marker_of(second, "A");
    upsert(
        &world.r53,
        &world.zone_id,
        &marker,
        RrType::Txt,
        60,
        &[&theirs],
    )
    .await;
    upsert(
        &world.r53,
        &world.zone_id,
        &name,
        RrType::A,
        60,
        &["10.0.0.20"],
    )
    .await;

    // The held batch arrives after the takeover: it was conditional on the
    // marker the agent read, so Route 53 rejects it, and the next pass sees
    // the name is no longer the agent's.
    agent.wait_log("the zone changed while writing", SOON).await;
    agent.wait_log("changed by someone else", SOON).await;
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.20".to_string()])),
        "{}",
        agent.log()
    );
    assert_eq!(world.marker(&marker).await, std::slice::from_ref(&theirs));

    agent.stop().await;
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.20".to_string()]))
    );
    assert_eq!(world.marker(&marker).await, [theirs]);
}

#[tokio::test]
async fn a_weighted_name_is_shared_one_set_each_and_one_leaving_keeps_the_other() {
    let world = World::new().await;
    let name = world.name("weighted");
    let weighted = |ttl: u32| {
        world.config(&format!(
            r#"
            poll_interval = "1s"
            [[record]]
            zone_id = "{{ZONE_ID}}"
            name = "weighted.{{ZONE}}"
            set_identifier = "{{instance_id}}"
            weight = 10
            ttl = {ttl}
            "#
        ))
    };
    let config = weighted(60);
    let first = world.instance("i-0aaaaaaaaaaaaaaa1", "10.0.1.1").await;
    let second = world.instance("i-0aaaaaaaaaaaaaaa2", "10.0.1.2").await;
    let mut leaving = world.spawn_as(&config, &first);
    let mut staying = world.spawn_as(&config, &second);
    let both = [
        (
            Some("i-0aaaaaaaaaaaaaaa1".to_string()),
            vec!["10.0.1.1".to_string()],
        ),
        (
            Some("i-0aaaaaaaaaaaaaaa2".to_string()),
            vec!["10.0.1.2".to_string()],
        ),
    ];
    world
        .wait_sets(&[&leaving, &staying], &name, RrType::A, SOON, |sets| {
            sets == both
        })
        .await;
    let live = records(&world.r53, &world.zone_id).await;
    assert!(
        live.iter()
            .filter(|set| set.set_identifier().is_some())
            .all(|set| set.weight() == Some(10) && set.ttl() == Some(60)),
        "{live:?}"
    );

    // A third instance configured with another TTL is refused before
    // anything is sent: weighted records of one name share a TTL.
    let third = world.instance("i-0aaaaaaaaaaaaaaa3", "10.0.1.3").await;
    let refused = world.once_as("register", &weighted(300), &third).await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.contains("share a TTL"), "{refused:?}");
    assert_eq!(world.sets(&name, RrType::A).await, both);

    leaving.stop().await;
    assert_eq!(world.sets(&name, RrType::A).await, both[1..]);
    let marker = |instance: &str| format!("_route53-agent.a-{instance}.{name}");
    assert!(
        world
            .marker(&marker("i-0aaaaaaaaaaaaaaa1"))
            .await
            .is_empty()
    );
    assert_eq!(world.marker(&marker("i-0aaaaaaaaaaaaaaa2")).await.len(), 1);
    staying.stop().await;
    assert!(world.sets(&name, RrType::A).await.is_empty());
}

#[tokio::test]
async fn a_tag_rename_leaves_the_old_name_when_someone_else_took_or_changed_it() {
    let world = World::new().await;
    let config = world.config(
        r#"
        poll_interval = "1s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}-b.{ZONE}"
        "#,
    );
    let taken = world.name("web-1");
    let changed = world.name("web-1-b");
    let mut agent = world.spawn(&config);
    for name in [&taken, &changed] {
        world
            .wait_for(&agent, name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
            .await;
    }

    // Before the rename, another instance takes one old name and a person
    // points the other elsewhere.
    let theirs = marker_of("i-0bbbbbbbbbbbbbbbb", "A");
    let taken_marker = format!("_route53-agent.a.{taken}");
    upsert(
        &world.r53,
        &world.zone_id,
        &taken_marker,
        RrType::Txt,
        60,
        &[&theirs],
    )
    .await;
    upsert(
        &world.r53,
        &world.zone_id,
        &taken,
        RrType::A,
        60,
        &["10.0.0.20"],
    )
    .await;
    upsert(
        &world.r53,
        &world.zone_id,
        &changed,
        RrType::A,
        60,
        &["192.0.2.5"],
    )
    .await;

    world.imds.set("tags/instance/Name", "web-2");
    for name in [world.name("web-2"), world.name("web-2-b")] {
        world
            .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
            .await;
    }
    agent.wait_log("not marked as this instance's", SOON).await;
    agent.wait_log("counts as someone else's", SOON).await;
    assert_eq!(
        world.record(&taken, RrType::A).await,
        Some((60, vec!["10.0.0.20".to_string()]))
    );
    assert_eq!(
        world.marker(&taken_marker).await,
        std::slice::from_ref(&theirs)
    );
    assert_eq!(
        world.record(&changed, RrType::A).await,
        Some((60, vec!["192.0.2.5".to_string()]))
    );
    assert!(
        world
            .marker(&format!("_route53-agent.a.{changed}"))
            .await
            .is_empty(),
        "{}",
        agent.log()
    );

    agent.stop().await;
    assert_eq!(world.record(&world.name("web-2"), RrType::A).await, None);
    assert_eq!(world.record(&world.name("web-2-b"), RrType::A).await, None);
    assert!(world.record(&taken, RrType::A).await.is_some());
    assert!(world.record(&changed, RrType::A).await.is_some());
    assert_eq!(world.marker(&taken_marker).await, [theirs]);
}
