//! `route53-agent doctor` end to end: the built binary against ministack
//! and the IMDS stand-in, healthy and broken in the ways users meet.

mod common;

use common::{Finished, World};

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

#[tokio::test]
async fn a_healthy_instance_passes_every_check() {
    let world = World::new().await;
    let finished = world.once("doctor", &world.simple_config()).await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    for check in ["imds", "tags", "credentials", "zone", "route53", "names"] {
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
    // Doctor only reads: the zone holds no A record afterwards.
    assert_eq!(
        world
            .record(&world.name("web-1"), aws_sdk_route53::types::RrType::A)
            .await,
        None
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
