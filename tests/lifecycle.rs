//! Lifecycle notices end to end: a spot interruption or an Auto Scaling
//! state out of service deregisters the running agent early, and a return
//! to InService registers it again.

mod common;

use std::time::Duration;

use aws_sdk_route53::types::RrType;
use common::{World, absent, holds};

const SOON: Duration = Duration::from_secs(15);
const NOTICE: &str = r#"{"action": "terminate", "time": "2026-12-03T20:10:00Z"}"#;

#[tokio::test]
async fn a_spot_interruption_notice_deregisters_before_the_instance_goes() {
    let world = World::new().await;
    let name = world.name("web-1");
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    world.imds.set("spot/instance-action", NOTICE);
    world.wait_for(&agent, &name, RrType::A, SOON, absent).await;
    assert!(
        world
            .marker(&format!("_route53-agent.a.{name}"))
            .await
            .is_empty()
    );
    agent
        .wait_log("spot interruption notice: terminate", SOON)
        .await;

    // Still running, and writes nothing more while the notice stands.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        world.record(&name, RrType::A).await,
        None,
        "{}",
        agent.log()
    );
    agent.stop().await;
}

#[tokio::test]
async fn standby_deregisters_and_in_service_registers_again() {
    let world = World::new().await;
    let name = world.name("web-1");
    world
        .imds
        .set("autoscaling/target-lifecycle-state", "InService");
    let mut agent = world.spawn(&world.simple_config());
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    world
        .imds
        .set("autoscaling/target-lifecycle-state", "Standby");
    world.wait_for(&agent, &name, RrType::A, SOON, absent).await;
    agent
        .wait_log("target lifecycle state is Standby", SOON)
        .await;

    world
        .imds
        .set("autoscaling/target-lifecycle-state", "InService");
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    agent.wait_log("back in service", SOON).await;

    world
        .imds
        .set("autoscaling/target-lifecycle-state", "Terminated");
    world.wait_for(&agent, &name, RrType::A, SOON, absent).await;
    agent.stop().await;
}

#[tokio::test]
async fn a_notice_turned_off_is_ignored() {
    let world = World::new().await;
    let name = world.name("web-1");
    let config = world.config(
        r#"
        poll_interval = "1s"
        [lifecycle]
        spot = false
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        "#,
    );
    world.imds.set("spot/instance-action", NOTICE);
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        world.record(&name, RrType::A).await.is_some(),
        "{}",
        agent.log()
    );
    agent.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
}

#[tokio::test]
async fn a_drain_at_shutdown_waits_only_for_what_is_left_of_an_early_deletes_ttl() {
    let world = World::new().await;
    let name = world.name("web-1");
    let config = world.config(
        r#"
        poll_interval = "1s"
        shutdown_timeout = "10s"
        backoff_base = "100ms"
        backoff_cap = "1s"
        drain = "ttl"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        ttl = 3
        "#,
    );
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(3, &["10.0.0.10"]))
        .await;

    // The early delete is followed to INSYNC, and its TTL runs out while
    // the instance waits to be taken away.
    world.imds.set("spot/instance-action", NOTICE);
    world.wait_for(&agent, &name, RrType::A, SOON, absent).await;
    agent.wait_log("change INSYNC", SOON).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;

    let began = std::time::Instant::now();
    agent.stop().await;
    let took = began.elapsed();
    let log = agent.log();
    assert!(
        took < Duration::from_secs(2),
        "drained again: {took:?}: {log}"
    );
    assert!(log.contains("drained"), "{log}");
}
