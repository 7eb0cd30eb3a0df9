//! `route53-agent doctor` end to end: the built binary against ministack
//! and the IMDS stand-in, healthy and broken in the ways users meet.

mod common;

use aws_sdk_route53::types::RrType;
use common::{Finished, World};
use route53_agent_testkit::{Action, Fault, create_zone, records};

/// The report's lines for one check, e.g. every `names` line.
fn lines<'a>(finished: &'a Finished, check: &str) -> Vec<&'a str> {
    finished
        .stdout
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some(check))
        .collect()
}

fn status_of(finished: &Finished, check: &str) -> Vec<String> {
    lines(finished, check)
        .iter()
        .filter_map(|line| line.split_whitespace().next().map(String::from))
        .collect()
}

/// A record for the Name tag in a private hosted zone of the world's name,
/// as a private address is best published; `top` goes above it. Returns
/// the configuration and the zone's id.
async fn private_zone_config(world: &World, top: &str) -> (std::path::PathBuf, String) {
    let private_id = create_zone(&world.r53, &world.zone, true).await;
    let config = world.config(&format!(
        r#"
        {top}
        [[record]]
        zone_id = "{private_id}"
        name = "{{tag:Name}}.{{ZONE}}"
        "#
    ));
    (config, private_id)
}

#[tokio::test]
async fn a_healthy_instance_passes_every_check() {
    let world = World::new().await;
    let (config, private_id) = private_zone_config(&world, "").await;
    let finished = world.once("doctor", &config).await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    for check in [
        "imds",
        "tags",
        "credentials",
        "zone",
        "kind",
        "route53",
        "names",
    ] {
        let statuses = status_of(&finished, check);
        assert!(
            !statuses.is_empty() && statuses.iter().all(|s| s == "ok"),
            "{check}: {finished:?}"
        );
    }
    let names = lines(&finished, "names").join("\n");
    assert!(
        names.contains(&format!("{}. A -> 10.0.0.10", world.name("web-1"))),
        "{finished:?}"
    );
    let credentials = lines(&finished, "credentials").join("\n");
    assert!(
        credentials.contains("environment variables"),
        "{finished:?}"
    );
    // The key id shows only its first characters (the test key is "test").
    assert!(credentials.contains("access key id test…"), "{finished:?}");
    let route53 = lines(&finished, "route53").join("\n");
    assert!(route53.contains("GetChange allowed"), "{finished:?}");
    // Doctor only reads: the zone holds nothing but its own records.
    let sets = records(&world.r53, &private_id).await;
    assert!(
        sets.iter()
            .all(|set| matches!(set.r#type(), RrType::Soa | RrType::Ns)),
        "{sets:?}"
    );
}

#[tokio::test]
async fn disabled_metadata_tags_fail_the_tags_and_names_checks() {
    let world = World::new().await;
    world.imds.set_tags_enabled(false);
    let finished = world.once("doctor", &world.simple_config()).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert_eq!(status_of(&finished, "tags"), ["FAIL"], "{finished:?}");
    assert!(
        lines(&finished, "tags")[0].contains("--instance-metadata-tags enabled"),
        "{finished:?}"
    );
    assert_eq!(status_of(&finished, "names"), ["FAIL"], "{finished:?}");
    assert!(
        lines(&finished, "names")[0].contains("instance metadata tags are not enabled"),
        "{finished:?}"
    );
    // The rest of the machine is fine, and says so.
    assert_eq!(status_of(&finished, "imds"), ["ok"], "{finished:?}");
    assert_eq!(status_of(&finished, "zone"), ["ok"], "{finished:?}");
}

#[tokio::test]
async fn an_unanswered_token_request_fails_with_the_hop_limit_hint() {
    let world = World::new().await;
    world.imds.hang_token_put(true);
    let finished = world.once("doctor", &world.simple_config()).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert_eq!(status_of(&finished, "imds"), ["FAIL"], "{finished:?}");
    let imds = lines(&finished, "imds")[0];
    assert!(imds.contains("hop limit"), "{finished:?}");
    assert!(
        imds.contains("--http-put-response-hop-limit 2"),
        "{finished:?}"
    );
    assert_eq!(status_of(&finished, "names"), ["skip"], "{finished:?}");
}

#[tokio::test]
async fn a_zone_that_does_not_exist_is_named() {
    let world = World::new().await;
    let config = world.config(
        r#"
        [[record]]
        zone_id = "ZDOESNOTEXIST0"
        name = "{tag:Name}.{ZONE}"
        "#,
    );
    let finished = world.once("doctor", &config).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert_eq!(status_of(&finished, "zone"), ["FAIL"], "{finished:?}");
    let zone = lines(&finished, "zone")[0];
    assert!(zone.contains("ZDOESNOTEXIST0"), "{finished:?}");
    assert!(zone.contains("NoSuchHostedZone"), "{finished:?}");
}

#[tokio::test]
async fn the_zone_kind_is_checked_against_what_each_record_publishes() {
    let world = World::new().await;
    let private_zone = format!("private-{}", world.zone);
    let private_id = create_zone(&world.r53, &private_zone, true).await;
    let config = world.config(&format!(
        r#"
        [[record]]
        zone_id = "{{ZONE_ID}}"
        name = "{{tag:Name}}.{{ZONE}}"
        [[record]]
        zone_id = "{private_id}"
        name = "web.{private_zone}"
        value = "public-ipv4"
        [[record]]
        zone_id = "{private_id}"
        name = "db.{private_zone}"
        "#
    ));
    let finished = world.once("doctor", &config).await;
    // A warning and a note do not fail doctor.
    assert_eq!(finished.code, Some(0), "{finished:?}");
    let kinds = lines(&finished, "kind");
    assert_eq!(
        status_of(&finished, "kind"),
        ["warn", "note", "ok"],
        "{finished:?}"
    );
    assert!(kinds[0].contains("local-ipv4"), "{finished:?}");
    assert!(
        kinds[0].contains(&format!("public hosted zone {}", world.zone_id)),
        "{finished:?}"
    );
    assert!(
        kinds[0].contains("published for anyone to resolve"),
        "{finished:?}"
    );
    assert!(kinds[1].contains("public-ipv4"), "{finished:?}");
    assert!(
        kinds[1].contains("only inside the zone's VPCs"),
        "{finished:?}"
    );
}

#[tokio::test]
async fn a_denied_get_change_fails_only_a_configuration_that_follows_changes() {
    let (world, proxy) = World::new().await.with_relay().await;
    proxy.always(Action::GetChange, "", Fault::AccessDenied);

    let (plain, _) = private_zone_config(&world, "").await;
    let finished = world.once("doctor", &plain).await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    let denied: Vec<&str> = lines(&finished, "route53")
        .into_iter()
        .filter(|line| line.contains("GetChange"))
        .collect();
    assert_eq!(denied.len(), 1, "{finished:?}");
    assert!(denied[0].starts_with("warn"), "{finished:?}");
    assert!(denied[0].contains("AccessDenied"), "{finished:?}");
    assert!(denied[0].contains("wait_insync"), "{finished:?}");

    let (waiting, _) = private_zone_config(&world, "wait_insync = true").await;
    let finished = world.once("doctor", &waiting).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert!(
        lines(&finished, "route53")
            .iter()
            .any(|line| line.starts_with("FAIL") && line.contains("GetChange")),
        "{finished:?}"
    );
    // Doctor only reads.
    assert_eq!(proxy.count(Action::ChangeRecords), 0);
}
