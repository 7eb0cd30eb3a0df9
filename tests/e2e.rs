//! End to end: the built `route53-agent` binary, run as its own process,
//! against ministack (Route 53) and the strict IMDSv2 stand-in, pointed at
//! them with the standard AWS settings exactly as a user would.

mod common;

use std::time::Duration;

use aws_sdk_route53::types::RrType;
use common::{World, absent, holds};
use route53_agent_testkit::route53::delete;
use route53_agent_testkit::{Action, Fault, upsert};

const SOON: Duration = Duration::from_secs(15);
const EXIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn boot_registers_then_sigterm_deletes_and_exits_0() {
    let world = World::new().await;
    let name = world.name("web-1");
    let mut agent = world.spawn(&world.simple_config());

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
async fn sigint_deletes_and_exits_0() {
    let world = World::new().await;
    let name = world.name("web-1");
    let mut agent = world.spawn(&world.simple_config());

    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    agent.signal("INT");
    assert_eq!(agent.exit_code(EXIT).await, Some(0), "{}", agent.log());
    assert_eq!(world.record(&name, RrType::A).await, None);
}

#[tokio::test]
async fn an_address_change_is_followed_and_nothing_is_rewritten_meanwhile() {
    let world = World::new().await;
    let name = world.name("web-1");
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    // Three quiet polls: no second write.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        agent.log().matches("record written").count(),
        1,
        "{}",
        agent.log()
    );

    world.imds.set("local-ipv4", "10.0.0.11");
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.11"]))
        .await;
    // The agent logs the write once Route 53 has answered, a moment after
    // the zone shows it.
    let deadline = std::time::Instant::now() + SOON;
    while agent.log().matches("record written").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        agent.log().matches("record written").count(),
        2,
        "{}",
        agent.log()
    );

    agent.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
}

#[tokio::test]
async fn a_value_changed_by_someone_else_survives_shutdown_and_is_theirs_from_then_on() {
    let world = World::new().await;
    let name = world.name("web-1");
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    // Someone points the name elsewhere; the agent must not take it back
    // when it shuts down.
    upsert(
        &world.r53,
        &world.zone_id,
        &name,
        RrType::A,
        60,
        &["192.0.2.99"],
    )
    .await;
    agent.stop().await;
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["192.0.2.99".to_string()]))
    );
    assert!(
        agent.log().contains("changed by someone else"),
        "{}",
        agent.log()
    );

    // The agent's marker went, so the record is no longer marked as this
    // instance's: a later deregister, or a restart, leaves it alone too.
    assert!(
        world
            .marker(&format!("_route53-agent.a.{name}"))
            .await
            .is_empty(),
        "{}",
        agent.log()
    );
    assert!(
        agent.log().contains("counts as someone else's"),
        "{}",
        agent.log()
    );
    let deregistered = world.once("deregister", &world.simple_config()).await;
    assert_eq!(deregistered.code, Some(0), "{deregistered:?}");
    let registered = world.once("register", &world.simple_config()).await;
    assert_eq!(registered.code, Some(1), "{registered:?}");
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["192.0.2.99".to_string()]))
    );
}

#[tokio::test]
async fn a_record_already_deleted_counts_as_deleted() {
    let world = World::new().await;
    let name = world.name("web-1");
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    delete(
        &world.r53,
        &world.zone_id,
        &name,
        RrType::A,
        60,
        &["10.0.0.10"],
    )
    .await
    .expect("deleting the record as someone else");
    agent.stop().await;
    assert!(
        agent.log().contains("record already gone"),
        "{}",
        agent.log()
    );
}

#[tokio::test]
async fn a_bad_config_is_refused_before_any_network_call() {
    let world = World::new().await;
    let config = world.config(
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        weigth = 10
        "#,
    );
    for command in ["run", "register", "plan", "deregister"] {
        let finished = world.once(command, &config).await;
        assert_eq!(finished.code, Some(64), "{command}: {finished:?}");
        assert!(
            finished.stderr.contains("unknown field `weigth`"),
            "{finished:?}"
        );
        assert!(
            finished.stderr.contains(&*config.to_string_lossy()),
            "{finished:?}"
        );
    }
    assert_eq!(world.imds.token_requests() + world.imds.get_requests(), 0);

    let missing = world.dir.path().join("nope.toml");
    let finished = world.once("run", &missing).await;
    assert_eq!(finished.code, Some(64), "{finished:?}");
    assert!(
        finished.stderr.contains("cannot read config file"),
        "{finished:?}"
    );
    assert!(
        finished.stderr.contains("--config PATH"),
        "a missing file says how to name another: {finished:?}"
    );
}

#[tokio::test]
async fn a_name_outside_its_zone_is_refused_before_any_write() {
    let world = World::new().await;
    let config = world.config(
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.elsewhere.example.org"
        "#,
    );
    for command in ["register", "run"] {
        let finished = world.once(command, &config).await;
        assert_eq!(finished.code, Some(64), "{command}: {finished:?}");
        assert!(
            finished.stderr.contains("outside hosted zone"),
            "{finished:?}"
        );
    }
    let names: Vec<String> = route53_agent_testkit::records(&world.r53, &world.zone_id)
        .await
        .iter()
        .map(|set| set.name().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.contains("elsewhere")), "{names:?}");
}

#[tokio::test]
async fn a_zone_that_does_not_exist_points_at_the_config_file() {
    let world = World::new().await;
    let config = world.config(
        r#"
        [[record]]
        zone_id = "ZDOESNOTEXIST0"
        name = "{tag:Name}.{ZONE}"
        "#,
    );
    let advice = format!("check zone_id or zone in {}", config.display());
    for command in ["plan", "register", "run"] {
        let finished = world.once(command, &config).await;
        assert_eq!(finished.code, Some(64), "{command}: {finished:?}");
        assert!(
            finished.stderr.contains("NoSuchHostedZone"),
            "{command}: {finished:?}"
        );
        assert!(finished.stderr.contains(&advice), "{command}: {finished:?}");
    }
}

#[tokio::test]
async fn a_garbage_address_is_never_published() {
    let world = World::new().await;
    let name = world.name("web-1");
    world.imds.set(
        "local-ipv4",
        "<html><body>503 Service Unavailable</body></html>",
    );
    let finished = world.once("register", &world.simple_config()).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains("not an IPv4 address"),
        "{finished:?}"
    );
    assert_eq!(world.record(&name, RrType::A).await, None);

    // While running, a garbage answer keeps the last good record.
    world.imds.set("local-ipv4", "10.0.0.10");
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    world.imds.set("local-ipv4", "10.0.0.999");
    agent.wait_log("not an IPv4 address", SOON).await;
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()]))
    );
    agent.stop().await;
}

#[tokio::test]
async fn a_garbage_value_fails_only_the_records_that_use_it() {
    let world = World::new().await;
    let web = world.name("web-1");
    let www = world.name("www");
    world.imds.set("public-hostname", "Service Unavailable");
    let config = world.config(
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "www.{ZONE}"
        type = "CNAME"
        value = "public-hostname"
        "#,
    );

    let plan = world.once("plan", &config).await;
    assert_eq!(plan.code, Some(1), "{plan:?}");
    assert!(!plan.stdout.contains("CNAME"), "no CNAME planned: {plan:?}");
    // plan writes nothing: it says what would not be written.
    assert!(
        plan.stderr.contains("1 record(s) would not be written"),
        "{plan:?}"
    );
    assert!(plan.stdout.contains(" A 60 10.0.0.10"), "{plan:?}");

    let finished = world.once("register", &config).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains("public-hostname answered"),
        "names the path: {finished:?}"
    );
    assert_eq!(
        world.record(&web, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()])),
        "{finished:?}"
    );
    assert_eq!(world.record(&www, RrType::Cname).await, None);
}

#[tokio::test]
async fn disabled_metadata_tags_are_explained_and_nothing_is_written() {
    let world = World::new().await;
    world.imds.set_tags_enabled(false);
    let finished = world.once("register", &world.simple_config()).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert!(
        finished
            .stderr
            .contains("instance metadata tags are not enabled"),
        "{finished:?}"
    );
    assert!(
        finished.stderr.contains("--instance-metadata-tags enabled"),
        "{finished:?}"
    );
    let records = route53_agent_testkit::records(&world.r53, &world.zone_id).await;
    assert!(
        records.iter().all(|set| set.r#type() != &RrType::A),
        "{records:?}"
    );
}

#[tokio::test]
async fn a_tag_value_that_is_not_a_label_is_refused_naming_the_tag() {
    let world = World::new().await;
    world.imds.set("tags/instance/Name", "web server #1");
    let finished = world.once("register", &world.simple_config()).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert!(finished.stderr.contains("tag `Name`"), "{finished:?}");
    let records = route53_agent_testkit::records(&world.r53, &world.zone_id).await;
    assert!(
        records.iter().all(|set| set.r#type() != &RrType::A),
        "{records:?}"
    );
}

#[tokio::test]
async fn a_public_address_that_appears_later_is_registered() {
    let world = World::new().await;
    let name = world.name("pub");
    let config = world.config(
        r#"
        poll_interval = "1s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "pub.{ZONE}"
        value = "public-ipv4"
        ttl = 300
        "#,
    );
    let mut agent = world.spawn(&config);
    agent.wait_log("no public-ipv4 yet", SOON).await;
    assert_eq!(world.record(&name, RrType::A).await, None);

    // An Elastic IP is associated.
    world.imds.set("public-ipv4", "203.0.113.7");
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(300, &["203.0.113.7"]))
        .await;
    agent.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
}

#[tokio::test]
async fn a_released_public_address_is_deleted_and_a_new_one_written() {
    let world = World::new().await;
    let name = world.name("pub");
    let marker = format!("_route53-agent.a.{name}");
    world.imds.set("public-ipv4", "203.0.113.7");
    let config = world.config(
        r#"
        poll_interval = "1s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "pub.{ZONE}"
        value = "public-ipv4"
        ttl = 300
        "#,
    );
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(300, &["203.0.113.7"]))
        .await;

    // An outage is not a released address: nothing is deleted.
    world.imds.fail_next(u32::MAX, 503);
    agent.wait_log("pass failed", SOON).await;
    world.imds.fail_next(0, 503);
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((300, vec!["203.0.113.7".to_string()])),
        "{}",
        agent.log()
    );

    // The Elastic IP is disassociated: IMDS answers 404 for public-ipv4.
    world.imds.remove("public-ipv4");
    let couple_of_polls = Duration::from_secs(5);
    world
        .wait_for(&agent, &name, RrType::A, couple_of_polls, absent)
        .await;
    assert!(world.marker(&marker).await.is_empty(), "{}", agent.log());
    assert!(
        agent.log().contains("no longer has public-ipv4"),
        "{}",
        agent.log()
    );

    // Another address is associated.
    world.imds.set("public-ipv4", "198.51.100.9");
    world
        .wait_for(
            &agent,
            &name,
            RrType::A,
            SOON,
            holds(300, &["198.51.100.9"]),
        )
        .await;
    assert!(!world.marker(&marker).await.is_empty(), "{}", agent.log());

    agent.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
    assert!(world.marker(&marker).await.is_empty(), "{}", agent.log());
}

#[tokio::test]
async fn a_tag_that_disappears_keeps_the_record_and_waits() {
    let world = World::new().await;
    let name = world.name("web-1");
    // Another tag, so that tags/instance/ stays (as on an instance with
    // more than one tag) when Name goes.
    world.imds.set("tags/instance/Team", "web");
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    // The name is unknown now, not the address: the record stays.
    world.imds.remove("tags/instance/Name");
    agent
        .wait_log("waiting: the instance has no tag `Name`", SOON)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()])),
        "{}",
        agent.log()
    );
    agent.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
}

#[tokio::test]
async fn aaaa_records_come_from_ipv6() {
    let world = World::new().await;
    let name = world.name("web-1");
    world.imds.set("ipv6", "2001:db8::10");
    let config = world.config(
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        type = "AAAA"
        "#,
    );
    let finished = world.once("register", &config).await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    assert_eq!(
        world.record(&name, RrType::Aaaa).await,
        Some((60, vec!["2001:db8::10".to_string()]))
    );
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()]))
    );
}

#[tokio::test]
async fn register_plan_and_deregister_as_one_shot_commands() {
    let world = World::new().await;
    let name = world.name("web-1");
    let config = world.simple_config();

    let plan = world.once("plan", &config).await;
    assert_eq!(plan.code, Some(0), "{plan:?}");
    assert!(plan.stdout.contains(&format!("{name}.")), "{plan:?}");
    assert!(plan.stdout.contains(&world.zone_id), "{plan:?}");
    assert!(plan.stdout.contains(" A 60 10.0.0.10"), "{plan:?}");
    assert_eq!(
        world.record(&name, RrType::A).await,
        None,
        "plan wrote nothing"
    );

    let register = world.once("register", &config).await;
    assert_eq!(register.code, Some(0), "{register:?}");
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()]))
    );
    let again = world.once("plan", &config).await;
    assert!(again.stdout.contains("(unchanged)"), "{again:?}");
    world.imds.set("local-ipv4", "10.0.0.11");
    let moved = world.once("plan", &config).await;
    assert!(moved.stdout.contains("(update"), "{moved:?}");
    world.imds.set("local-ipv4", "10.0.0.10");

    let deregister = world.once("deregister", &config).await;
    assert_eq!(deregister.code, Some(0), "{deregister:?}");
    assert_eq!(world.record(&name, RrType::A).await, None);

    // Deregistering again: nothing there is fine.
    let again = world.once("deregister", &config).await;
    assert_eq!(again.code, Some(0), "{again:?}");
}

#[tokio::test]
async fn report_commands_end_quietly_when_nobody_reads_their_output() {
    let world = World::new().await;
    let config = world.simple_config();
    for command in ["check", "iam-policy", "plan", "gc"] {
        let finished = world.once_unread(command, &config).await;
        assert_eq!(finished.code, Some(0), "{command}: {finished:?}");
        assert!(
            !finished.stderr.contains("panicked") && !finished.stderr.contains("Broken pipe"),
            "{command}: {finished:?}"
        );
    }
}

#[tokio::test]
async fn logs_hold_no_token_and_no_credentials_even_at_trace() {
    let world = World::new().await;
    let access_key_id = "AKIAROUTE53AGENTTEST";
    let secret = "route53-agent-test-secret-access-key";
    let env = [
        // Asking for the noisiest targets by name must not bring them back.
        (
            "RUST_LOG",
            "trace,aws_smithy_runtime::client::orchestrator=trace,aws_sigv4=trace",
        ),
        ("AWS_ACCESS_KEY_ID", access_key_id),
        ("AWS_SECRET_ACCESS_KEY", secret),
    ];
    let finished = world
        .once_env(&["register", "--no-jitter"], &world.simple_config(), &env)
        .await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    assert!(finished.stderr.contains("DEBUG"), "{finished:?}");
    let tokens = world.imds.issued_tokens();
    assert!(!tokens.is_empty());
    for token in &tokens {
        assert!(
            !finished.stderr.contains(token.as_str()),
            "the IMDS token {token} is in the log: {}",
            finished.stderr
        );
    }
    for credential in [access_key_id, secret] {
        assert!(
            !finished.stderr.contains(credential),
            "{credential} is in the log: {}",
            finished.stderr
        );
    }
}

#[tokio::test]
async fn deregister_deletes_by_marker_a_record_whose_value_is_gone() {
    let world = World::new().await;
    let name = world.name("pub");
    world.imds.set("public-ipv4", "203.0.113.7");
    world.imds.set("ipv6", "2001:db8::10");
    let config = world.config(
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "pub.{ZONE}"
        value = "public-ipv4"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "pub.{ZONE}"
        type = "AAAA"
        "#,
    );
    let register = world.once("register", &config).await;
    assert_eq!(register.code, Some(0), "{register:?}");

    // The Elastic IP is released and IPv6 taken away: IMDS answers 404.
    world.imds.remove("public-ipv4");
    world.imds.remove("ipv6");
    let deregister = world.once("deregister", &config).await;
    assert_eq!(deregister.code, Some(0), "{deregister:?}");
    for (rr_type, label) in [(RrType::A, "a"), (RrType::Aaaa, "aaaa")] {
        assert_eq!(world.record(&name, rr_type).await, None, "{deregister:?}");
        let marker = world
            .marker(&format!("_route53-agent.{label}.{name}"))
            .await;
        assert!(marker.is_empty(), "{marker:?}");
    }

    // Nothing left: deregistering again is still a success.
    let again = world.once("deregister", &config).await;
    assert_eq!(again.code, Some(0), "{again:?}");
}

#[tokio::test]
async fn deregister_leaves_a_record_that_holds_other_values() {
    let world = World::new().await;
    let name = world.name("web-1");
    upsert(
        &world.r53,
        &world.zone_id,
        &name,
        RrType::A,
        60,
        &["192.0.2.50"],
    )
    .await;
    let finished = world.once("deregister", &world.simple_config()).await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    assert!(
        finished.stderr.contains("not marked as this instance's")
            && finished.stderr.contains("a person's or another tool's"),
        "{finished:?}"
    );
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["192.0.2.50".to_string()]))
    );
}

#[tokio::test]
async fn a_tag_rename_moves_the_record() {
    let world = World::new().await;
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(
            &agent,
            &world.name("web-1"),
            RrType::A,
            SOON,
            holds(60, &["10.0.0.10"]),
        )
        .await;

    world.imds.set("tags/instance/Name", "web-2");
    world
        .wait_for(
            &agent,
            &world.name("web-2"),
            RrType::A,
            SOON,
            holds(60, &["10.0.0.10"]),
        )
        .await;
    world
        .wait_for(&agent, &world.name("web-1"), RrType::A, SOON, absent)
        .await;

    agent.stop().await;
    assert_eq!(world.record(&world.name("web-2"), RrType::A).await, None);
}

#[tokio::test]
async fn route53_hanging_at_shutdown_gives_up_at_the_deadline() {
    let (world, relay) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let config = world.config(
        r#"
        poll_interval = "1s"
        shutdown_timeout = "2s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        "#,
    );
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    relay.hang();
    let began = std::time::Instant::now();
    agent.signal("TERM");
    let code = agent.exit_code(EXIT).await;
    let took = began.elapsed();
    let log = agent.log();
    assert_eq!(code, Some(75), "{log}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {log}");
    assert!(log.contains("left behind"), "{log}");
    assert!(log.contains(&name), "names the record left behind: {log}");
}

#[tokio::test]
async fn deregister_names_the_records_it_leaves_behind_at_the_deadline() {
    let (world, relay) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let config = world.config(
        r#"
        shutdown_timeout = "2s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        "#,
    );
    let register = world.once("register", &config).await;
    assert_eq!(register.code, Some(0), "{register:?}");

    relay.hang();
    let began = std::time::Instant::now();
    let finished = world.once("deregister", &config).await;
    assert_eq!(finished.code, Some(75), "{finished:?}");
    assert!(began.elapsed() < Duration::from_secs(5), "{finished:?}");
    assert!(
        finished.stderr.contains(&format!("left behind: {name}. A")),
        "names the record left behind: {finished:?}"
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once_with_a_non_zero_code() {
    let (world, relay) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let config = world.config(
        r#"
        poll_interval = "1s"
        shutdown_timeout = "30s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        "#,
    );
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    // Deregistration hangs on Route 53; the second signal must not wait.
    relay.hang();
    agent.signal("TERM");
    agent.wait_log("shutting down", SOON).await;
    let began = std::time::Instant::now();
    agent.signal("INT");
    assert_eq!(agent.exit_code(EXIT).await, Some(130), "{}", agent.log());
    assert!(began.elapsed() < Duration::from_secs(3), "{}", agent.log());
}

#[tokio::test]
async fn read_only_commands_give_up_at_the_deadline_when_route53_is_unreachable() {
    let world = World::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let unreachable = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let config = world.config(
        r#"
        shutdown_timeout = "2s"
        backoff_base = "100ms"
        backoff_cap = "500ms"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        "#,
    );
    let env = [("AWS_ENDPOINT_URL_ROUTE_53", unreachable.as_str())];
    for command in ["plan", "gc"] {
        let began = std::time::Instant::now();
        let finished = world.once_env(&[command], &config, &env).await;
        assert_eq!(finished.code, Some(1), "{command}: {finished:?}");
        assert!(finished.stderr.contains("gave up after 2s"), "{finished:?}");
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{command} took {:?}",
            began.elapsed()
        );
    }
}

#[tokio::test]
async fn read_only_commands_name_the_call_route53_never_answered() {
    let (world, relay) = World::new().await.with_relay().await;
    let config = world.config(
        r#"
        shutdown_timeout = "2s"
        request_timeout = "30s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        "#,
    );
    // Nothing fails, so nothing is logged: the error says what hung.
    let gave_up = "gave up after 2s (shutdown_timeout) without the answers it needs: ";
    relay.always(Action::ListRecords, &world.zone_id, Fault::Hang);
    for (command, hung) in [
        ("plan", "Route 53 had not answered a read of what is live"),
        (
            "gc",
            "Route 53 had not answered a listing or delete of garbage collection",
        ),
    ] {
        let finished = world.once(command, &config).await;
        assert_eq!(finished.code, Some(1), "{command}: {finished:?}");
        assert!(
            finished.stderr.contains(&format!("{gave_up}{hung}")),
            "{command}: {finished:?}"
        );
    }

    relay.hang();
    for command in ["plan", "gc"] {
        let finished = world.once(command, &config).await;
        assert_eq!(finished.code, Some(1), "{command}: {finished:?}");
        let hung = "Route 53: find hosted zone had no answer to attempt 1";
        assert!(
            finished.stderr.contains(&format!("{gave_up}{hung}")),
            "{command}: {finished:?}"
        );
    }
}
