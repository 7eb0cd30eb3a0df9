//! End to end under faults: the built agent against ministack behind the
//! fault proxy (Route 53's throttling and busy-zone errors, 500s, hangs,
//! refused connections) and against the IMDS stand-in's own faults. Every
//! case checks the records at the end and how long it took; time bounds are
//! generous upper bounds, never tight ones.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_route53::types::RrType;
use common::{Agent, World, absent, holds};
use route53_agent_testkit::{Action, Fault, FaultProxy, create_zone};

const SOON: Duration = Duration::from_secs(15);
const EXIT: Duration = Duration::from_secs(15);

/// A config that retries fast, with `top` added to the top-level keys and
/// `records` after the one A record for the Name tag.
fn fast_config(world: &World, top: &str, records: &str) -> PathBuf {
    world.config(&format!(
        r#"
        poll_interval = "1s"
        shutdown_timeout = "10s"
        backoff_base = "100ms"
        backoff_cap = "1s"
        request_timeout = "2s"
        {top}
        [[record]]
        zone_id = "{{ZONE_ID}}"
        name = "{{tag:Name}}.{{ZONE}}"
        {records}
        "#
    ))
}

/// The log with its terminal colour codes taken out, so fields read as
/// `key=value`.
fn without_colours(log: &str) -> String {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the escape sequence: `ESC [ ... letter`.
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn assert_within(began: Instant, bound: Duration, log: &str) {
    let took = began.elapsed();
    assert!(took < bound, "took {took:?}, more than {bound:?}: {log}");
}

// 1. Retry policy

#[tokio::test]
async fn throttling_busy_zone_and_500s_at_boot_are_retried_until_registered() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    proxy.inject(
        Action::ChangeRecords,
        &[
            Fault::Throttling,
            Fault::PriorRequestNotComplete,
            Fault::ServerError,
            Fault::Throttling,
        ],
    );
    let began = Instant::now();
    let finished = world.once("register", &fast_config(&world, "", "")).await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    assert_within(began, Duration::from_secs(15), &finished.stderr);
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()]))
    );
    // Four refusals, one success: one request per agent attempt, so the
    // SDK's own retries do not multiply them.
    assert_eq!(proxy.count(Action::ChangeRecords), 5, "{}", finished.stderr);
    for code in ["Throttling", "PriorRequestNotComplete", "will retry"] {
        assert!(
            finished.stderr.contains(code),
            "{code}: {}",
            finished.stderr
        );
    }
}

#[tokio::test]
async fn a_write_route53_never_answers_is_abandoned_after_request_timeout_and_retried() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    proxy.inject(Action::ChangeRecords, &[Fault::Hang]);
    let began = Instant::now();
    let finished = world.once("register", &fast_config(&world, "", "")).await;
    let took = began.elapsed();
    assert_eq!(finished.code, Some(0), "{finished:?}");
    // request_timeout is 2 s: the hanging write is given up after it, then
    // sent again after at most backoff_base (100 ms).
    assert!(
        took >= Duration::from_secs(2),
        "took {took:?}: {finished:?}"
    );
    assert_within(began, Duration::from_secs(8), &finished.stderr);
    assert!(finished.stderr.contains("will retry"), "{finished:?}");
    assert_eq!(proxy.count(Action::ChangeRecords), 2, "{finished:?}");
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()]))
    );
}

#[tokio::test]
async fn a_final_refusal_names_the_record_and_is_retried_only_when_it_changes() {
    let (world, proxy) = World::new().await.with_relay().await;
    let web = world.name("web-1");
    let denied = world.name("denied");
    proxy.always(Action::ChangeRecords, "denied.", Fault::AccessDenied);
    let config = fast_config(
        &world,
        "",
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "denied.{ZONE}"
        "#,
    );
    let began = Instant::now();
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &web, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    agent.wait_log("AccessDenied", SOON).await;

    // Three quiet polls: the refused record is not sent again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(proxy.count(Action::ChangeRecords), 2, "{}", agent.log());
    let log = agent.log();
    assert!(log.contains(&denied), "names the record: {log}");
    assert_eq!(
        log.matches("Route 53 refused the record").count(),
        1,
        "{log}"
    );

    // The address both records depend on changes: both are written again,
    // and the refused one is tried once more.
    world.imds.set("local-ipv4", "10.0.0.11");
    world
        .wait_for(&agent, &web, RrType::A, SOON, holds(60, &["10.0.0.11"]))
        .await;
    let deadline = Instant::now() + SOON;
    while agent.log().matches("Route 53 refused the record").count() < 2 {
        assert!(Instant::now() < deadline, "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(proxy.count(Action::ChangeRecords), 4, "{}", agent.log());

    agent.stop().await;
    assert_eq!(world.record(&web, RrType::A).await, None);
    assert_eq!(world.record(&denied, RrType::A).await, None);
    assert_within(began, Duration::from_secs(40), &agent.log());
}

#[tokio::test]
async fn a_batch_rejected_twice_as_invalid_is_not_sent_again_every_poll() {
    let (world, proxy) = World::new().await.with_relay().await;
    let web = world.name("web-1");
    let rejected = world.name("rejected");
    proxy.always(
        Action::ChangeRecords,
        "rejected.",
        Fault::InvalidChangeBatch,
    );
    let config = fast_config(
        &world,
        "",
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "rejected.{ZONE}"
        "#,
    );
    let began = Instant::now();
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &web, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    agent.wait_log("Route 53 refused the record", SOON).await;
    let sent = proxy.count(Action::ChangeRecords);

    // Once may be a race with another writer, so the first rejection is
    // tried again at the next poll; the second is final. Three quiet polls
    // follow: the rejected record is not sent again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let log = agent.log();
    assert_eq!(proxy.count(Action::ChangeRecords), sent, "{log}");
    assert_eq!(
        log.matches("the zone changed while writing").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("Route 53 refused the record").count(),
        1,
        "{log}"
    );
    assert!(log.contains("InvalidChangeBatch"), "names the code: {log}");
    assert!(log.contains(&rejected), "names the record: {log}");

    agent.stop().await;
    assert_eq!(world.record(&web, RrType::A).await, None);
    assert_eq!(world.record(&rejected, RrType::A).await, None);
    assert_within(began, Duration::from_secs(30), &agent.log());
}

#[tokio::test]
async fn a_zone_lookup_refused_for_good_sets_aside_only_that_zones_records() {
    let (world, proxy) = World::new().await.with_relay().await;
    let web = world.name("web-1");
    let denied_zone = format!("denied-{}", world.zone);
    let denied_id = create_zone(&world.r53, &denied_zone, false).await;
    proxy.always(Action::GetHostedZone, &denied_id, Fault::AccessDenied);
    let config = fast_config(
        &world,
        "",
        &format!(
            r#"
            [[record]]
            zone_id = "{denied_id}"
            name = "web.{denied_zone}"
            "#
        ),
    );

    // register: the other zone's record is written, and the exit code says
    // that one was not.
    let began = Instant::now();
    let finished = world.once("register", &config).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert_within(began, Duration::from_secs(15), &finished.stderr);
    for text in [denied_id.as_str(), "AccessDenied"] {
        assert!(finished.stderr.contains(text), "{text}: {finished:?}");
    }
    assert!(world.record(&web, RrType::A).await.is_some());
    // One lookup per zone: a final refusal is not retried.
    assert_eq!(proxy.count(Action::GetHostedZone), 2, "{finished:?}");

    // run keeps serving the other zone, and exits 0 at shutdown.
    let mut agent = world.spawn(&config);
    agent.wait_log("cannot look up the hosted zone", SOON).await;
    world.imds.set("local-ipv4", "10.0.0.11");
    world
        .wait_for(&agent, &web, RrType::A, SOON, holds(60, &["10.0.0.11"]))
        .await;
    agent.stop().await;
    assert_eq!(world.record(&web, RrType::A).await, None);
    assert_within(began, Duration::from_secs(30), &agent.log());
}

#[tokio::test]
async fn a_zone_that_does_not_exist_beside_a_good_one_is_a_config_error() {
    let world = World::new().await;
    let config = fast_config(
        &world,
        "",
        r#"
        [[record]]
        zone_id = "ZDOESNOTEXIST0"
        name = "web.nowhere.example.com"
        "#,
    );
    let began = Instant::now();
    for command in ["run", "register"] {
        let finished = world.once(command, &config).await;
        assert_eq!(finished.code, Some(64), "{command}: {finished:?}");
        assert!(finished.stderr.contains("NoSuchHostedZone"), "{finished:?}");
    }
    assert_within(began, Duration::from_secs(15), "");
    assert_eq!(world.record(&world.name("web-1"), RrType::A).await, None);
}

// 2. Boot jitter

#[tokio::test]
async fn boot_jitter_delays_the_first_write_and_no_jitter_skips_it() {
    let world = World::new().await;
    let name = world.name("web-1");

    let long = fast_config(&world, r#"boot_jitter = "10m""#, "");
    let began = Instant::now();
    let finished = world.once_with(&["register", "--no-jitter"], &long).await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    assert_within(began, Duration::from_secs(15), &finished.stderr);
    assert!(world.record(&name, RrType::A).await.is_some());
    assert_eq!(world.once("deregister", &long).await.code, Some(0));

    let short = fast_config(&world, r#"boot_jitter = "2s""#, "");
    let began = Instant::now();
    let finished = world.once_with(&["register"], &short).await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    assert_within(began, Duration::from_secs(20), &finished.stderr);
    assert!(world.record(&name, RrType::A).await.is_some());
    let delay_ms: u64 = without_colours(&finished.stderr)
        .split("delay_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no delay_ms in the log: {}", finished.stderr));
    assert!(delay_ms <= 2000, "{delay_ms} ms: {}", finished.stderr);
    // The wait really happened: the run took at least the delay it drew.
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(delay_ms),
        "took {took:?}, less than the {delay_ms} ms drawn: {}",
        finished.stderr
    );
}

// 3. Waiting for INSYNC, draining

#[tokio::test]
async fn register_wait_polls_get_change_until_insync() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    proxy.inject(Action::GetChange, &[Fault::Throttling]);
    let config = fast_config(&world, "", "");
    let began = Instant::now();
    let finished = world
        .once_with(&["register", "--no-jitter", "--wait"], &config)
        .await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    assert_within(began, Duration::from_secs(15), &finished.stderr);
    assert!(finished.stderr.contains("change INSYNC"), "{finished:?}");
    // Throttled, then PENDING (ministack's first answer), then INSYNC.
    assert!(proxy.count(Action::GetChange) >= 3, "{finished:?}");
    assert!(world.record(&name, RrType::A).await.is_some());
}

#[tokio::test]
async fn drain_ttl_waits_for_insync_then_the_ttl_inside_the_deadline() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let config = fast_config(&world, "drain = \"ttl\"\nwait_insync = true", "ttl = 2");
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(2, &["10.0.0.10"]))
        .await;
    agent.wait_log("change INSYNC", SOON).await;
    let polls_before = proxy.count(Action::GetChange);

    let began = Instant::now();
    agent.stop().await;
    let took = began.elapsed();
    let log = agent.log();
    assert!(
        took >= Duration::from_secs(2),
        "left before the TTL: {took:?}: {log}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}: {log}");
    assert!(log.contains("drained"), "{log}");
    assert!(proxy.count(Action::GetChange) > polls_before, "{log}");
    assert_eq!(world.record(&name, RrType::A).await, None);
}

#[tokio::test]
async fn a_drain_that_cannot_fit_the_deadline_is_refused_as_config() {
    let world = World::new().await;
    let config = fast_config(&world, "drain = \"ttl\"", "ttl = 300");
    let finished = world.once("run", &config).await;
    assert_eq!(finished.code, Some(64), "{finished:?}");
    assert!(finished.stderr.contains("shutdown_timeout"), "{finished:?}");
}

// 4. IMDS faults

#[tokio::test]
async fn a_token_put_that_never_answers_is_explained_as_the_hop_limit() {
    let world = World::new().await;
    world.imds.hang_token_put(true);
    let began = Instant::now();
    let finished = world.once("register", &world.simple_config()).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert_within(began, Duration::from_secs(40), &finished.stderr);
    assert!(finished.stderr.contains("hop limit"), "{finished:?}");
    assert!(finished.stderr.contains("host networking"), "{finished:?}");
    assert_eq!(world.record(&world.name("web-1"), RrType::A).await, None);
}

#[tokio::test]
async fn a_refused_imds_connection_points_at_the_endpoint_not_the_hop_limit() {
    let world = World::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let refusing = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let env = [("AWS_EC2_METADATA_SERVICE_ENDPOINT", refusing.as_str())];
    let finished = world
        .once_env(&["plan"], &world.simple_config(), &env)
        .await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains("--http-endpoint enabled"),
        "{finished:?}"
    );
    assert!(
        finished
            .stderr
            .contains("AWS_EC2_METADATA_SERVICE_ENDPOINT is right"),
        "{finished:?}"
    );
    assert!(!finished.stderr.contains("hop limit"), "{finished:?}");
}

#[tokio::test]
async fn imds_5xx_answers_are_retried() {
    let world = World::new().await;
    world.imds.fail_next(3, 503);
    let began = Instant::now();
    let finished = world.once("register", &world.simple_config()).await;
    assert_eq!(finished.code, Some(0), "{finished:?}");
    assert_within(began, Duration::from_secs(20), &finished.stderr);
    assert_eq!(
        world.record(&world.name("web-1"), RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()]))
    );
}

#[tokio::test]
async fn register_waits_for_instance_metadata_that_is_not_up_yet() {
    let world = World::new().await;
    let name = world.name("web-1");
    world.imds.fail_next(u32::MAX, 503);
    let began = Instant::now();
    let mut register = world.spawn_with(
        &["register", "--no-jitter"],
        &fast_config(&world, "", ""),
        &[],
    );
    // Longer than the SDK client's own attempts take to give up.
    tokio::time::sleep(Duration::from_secs(8)).await;
    world.imds.fail_next(0, 503);
    assert_eq!(
        register.exit_code(SOON).await,
        Some(0),
        "{}",
        register.log()
    );
    let log = register.log();
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()])),
        "{log}"
    );
    let retries = log.matches("will retry").count();
    assert!((1..=20).contains(&retries), "{retries}: {log}");
    assert_within(began, Duration::from_secs(25), &log);
}

#[tokio::test]
async fn an_imds_outage_keeps_the_records_and_an_expired_token_is_replaced() {
    let world = World::new().await;
    let name = world.name("web-1");
    let began = Instant::now();
    let mut agent = world.spawn(&fast_config(&world, "", ""));
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    world.imds.fail_next(u32::MAX, 500);
    agent.wait_log("pass failed", SOON).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()])),
        "an outage deletes nothing: {}",
        agent.log()
    );

    // IMDS comes back having forgotten every token, with a new address.
    let tokens_before = world.imds.token_requests();
    world.imds.expire_tokens();
    world.imds.set("local-ipv4", "10.0.0.12");
    world.imds.fail_next(0, 500);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.12"]))
        .await;
    assert!(world.imds.token_requests() > tokens_before);

    agent.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
    assert_within(began, Duration::from_secs(60), &agent.log());
}

// 5. Shutdown under failure

#[tokio::test]
async fn route53_refusing_connections_at_shutdown_gives_up_at_the_deadline() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let config = world.config(
        r#"
        poll_interval = "1s"
        shutdown_timeout = "3s"
        backoff_base = "100ms"
        backoff_cap = "1s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        "#,
    );
    let mut agent = world.spawn(&config);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    proxy.refuse(true);
    let began = Instant::now();
    agent.signal("TERM");
    let code = agent.exit_code(EXIT).await;
    let log = agent.log();
    assert_eq!(code, Some(75), "{log}");
    assert_within(began, Duration::from_secs(6), &log);
    assert!(log.contains("left behind"), "{log}");
    assert!(log.contains(&name), "names the record left behind: {log}");
    assert!(
        log.contains("will retry"),
        "retried until the deadline: {log}"
    );
    proxy.refuse(false);
    assert!(world.record(&name, RrType::A).await.is_some());
}

#[tokio::test]
async fn the_shutdown_deadline_counts_from_a_signal_during_start_up() {
    let (world, relay) = World::new().await.with_relay().await;
    // Without AWS_REGION, loading the AWS settings asks IMDS for the region,
    // which takes the SDK client seconds of retries while IMDS answers 503.
    // Route 53 hangs, so a pass can only end at the deadline.
    world.imds.fail_next(3, 503);
    relay.hang();
    let config = world.config(
        r#"
        shutdown_timeout = "2s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        "#,
    );
    let mut agent = world.spawn_without(&["run", "--no-jitter"], &config, &["AWS_REGION"]);
    agent.wait_log("route53-agent starting", SOON).await;
    // The signal handlers are installed just after that line.
    tokio::time::sleep(Duration::from_millis(200)).await;
    agent.signal("TERM");
    let signalled = Instant::now();

    // The agent runs once the settings are loaded, usually more than
    // shutdown_timeout after the signal; the deadline has then passed. (Had
    // it counted from there, the pass would hang a whole shutdown_timeout.)
    agent
        .wait_log("stopping once the pass under way ends", SOON)
        .await;
    let loaded = signalled.elapsed();
    assert_eq!(agent.exit_code(EXIT).await, Some(0), "{}", agent.log());
    let deadline = loaded.max(Duration::from_secs(2));
    assert_within(
        signalled,
        deadline + Duration::from_millis(500),
        &agent.log(),
    );
}

#[tokio::test]
async fn throttling_at_shutdown_is_retried_within_the_deadline() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let mut agent = world.spawn(&fast_config(&world, "", ""));
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;

    proxy.inject(
        Action::ChangeRecords,
        &[Fault::Throttling, Fault::Throttling, Fault::ServerError],
    );
    let began = Instant::now();
    agent.stop().await;
    assert_within(began, Duration::from_secs(10), &agent.log());
    assert_eq!(world.record(&name, RrType::A).await, None);
    assert_eq!(proxy.count(Action::ChangeRecords), 1 + 4, "{}", agent.log());
}

#[tokio::test]
async fn a_signal_during_an_inflight_change_lets_it_finish_then_deletes() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    proxy.inject(
        Action::ChangeRecords,
        &[Fault::Delay(Duration::from_secs(1))],
    );
    let config = fast_config(&world, "", "");
    let began = Instant::now();
    let mut agent = world.spawn(&config);
    let deadline = Instant::now() + SOON;
    while proxy.count(Action::ChangeRecords) == 0 {
        assert!(Instant::now() < deadline, "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    agent.stop().await;
    let log = agent.log();
    let upserted = log.find("record written");
    let deleted = log.find("record deleted");
    assert!(
        matches!((upserted, deleted), (Some(u), Some(d)) if u < d),
        "written, then deleted: {log}"
    );
    assert_eq!(world.record(&name, RrType::A).await, None);
    assert_within(began, Duration::from_secs(15), &log);
}

/// Spawns the agent with [`fast_config`] and waits for its record at
/// `name` to hold 10.0.0.10.
async fn spawn_registered(world: &World, name: &str) -> Agent {
    let agent = world.spawn(&fast_config(world, "", ""));
    world
        .wait_for(&agent, name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    agent
}

/// Asserts that neither the A record at `name` nor its marker is left.
async fn assert_gone_with_its_marker(world: &World, name: &str, log: &str) {
    assert_eq!(world.record(name, RrType::A).await, None, "{name}: {log}");
    let marker = world.marker(&format!("_route53-agent.a.{name}")).await;
    assert!(marker.is_empty(), "{name}: {marker:?}: {log}");
}

/// Stops `agent` while it retries a write that landed without its hearing
/// of it: the answer to the next change is lost, and every update after
/// that is throttled (the deletes at shutdown hold no UPSERT and go
/// through). Sets `path` in the instance metadata to `value`, waits for
/// the record at `name` to hold `landed` and for one throttled retry, then
/// stops the agent. Returns its log.
async fn stop_while_retrying_a_lost_write(
    world: &World,
    proxy: &FaultProxy,
    mut agent: Agent,
    (path, value): (&str, &str),
    (name, landed): (&str, &str),
) -> String {
    proxy.inject(Action::ChangeRecords, &[Fault::Lost]);
    proxy.always(Action::ChangeRecords, "UPSERT", Fault::Throttling);
    world.imds.set(path, value);
    world
        .wait_for(&agent, name, RrType::A, SOON, holds(60, &[landed]))
        .await;
    agent.wait_log("Throttling", SOON).await;
    agent.stop().await;
    agent.log()
}

#[tokio::test]
async fn an_address_change_throttled_when_the_signal_comes_leaves_nothing_behind() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let began = Instant::now();
    let mut agent = spawn_registered(&world, &name).await;

    // Every write of the new address is throttled, so it never happens;
    // the delete of the old one goes through.
    proxy.always(Action::ChangeRecords, "10.0.0.11", Fault::Throttling);
    world.imds.set("local-ipv4", "10.0.0.11");
    agent.wait_log("will retry", SOON).await;

    agent.stop().await;
    let log = agent.log();
    assert_gone_with_its_marker(&world, &name, &log).await;
    assert_within(began, Duration::from_secs(30), &log);
}

#[tokio::test]
async fn an_address_change_applied_but_unanswered_is_still_the_agents_own() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let began = Instant::now();
    let mut agent = spawn_registered(&world, &name).await;

    // The change is made, but its answer is lost: the agent tries again,
    // once, and finds its own change live.
    proxy.inject(Action::ChangeRecords, &[Fault::Lost]);
    world.imds.set("local-ipv4", "10.0.0.11");
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.11"]))
        .await;
    let deadline = Instant::now() + SOON;
    while agent.log().matches("record written").count() < 2 {
        assert!(Instant::now() < deadline, "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(proxy.count(Action::ChangeRecords), 3, "{}", agent.log());

    agent.stop().await;
    let log = agent.log();
    assert!(!log.contains("changed by someone else"), "{log}");
    assert_eq!(world.record(&name, RrType::A).await, None, "{log}");
    assert_within(began, Duration::from_secs(30), &log);
}

#[tokio::test]
async fn an_address_change_applied_unanswered_and_cut_short_by_the_signal_leaves_nothing() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let began = Instant::now();
    let agent = spawn_registered(&world, &name).await;

    // The new address is live where the agent last heard of the old one.
    let change = ("local-ipv4", "10.0.0.11");
    let log =
        stop_while_retrying_a_lost_write(&world, &proxy, agent, change, (&name, "10.0.0.11")).await;
    assert!(!log.contains("changed by someone else"), "{log}");
    assert_gone_with_its_marker(&world, &name, &log).await;
    assert_within(began, Duration::from_secs(30), &log);
}

#[tokio::test]
async fn a_rename_cut_short_by_the_signal_leaves_neither_name_behind() {
    let (world, proxy) = World::new().await.with_relay().await;
    let old = world.name("web-1");
    let new = world.name("web-2");
    let began = Instant::now();
    let agent = spawn_registered(&world, &old).await;

    // The record is live under the new name, and the old name, the one
    // the agent last heard of, is not deleted yet.
    let change = ("tags/instance/Name", "web-2");
    let log =
        stop_while_retrying_a_lost_write(&world, &proxy, agent, change, (&new, "10.0.0.10")).await;
    for name in [&old, &new] {
        assert_gone_with_its_marker(&world, name, &log).await;
    }
    assert_within(began, Duration::from_secs(30), &log);
}

#[tokio::test]
async fn route53_unreachable_at_boot_is_retried_without_spinning() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    proxy.refuse(true);
    let began = Instant::now();
    let mut agent = world.spawn(&fast_config(&world, "", ""));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(world.record(&name, RrType::A).await, None);
    let retries = agent.log().matches("will retry").count();
    // Backoff of at most 1 s with full jitter: a handful of attempts, not
    // thousands.
    assert!((1..=40).contains(&retries), "{retries}: {}", agent.log());

    proxy.refuse(false);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.10"]))
        .await;
    agent.stop().await;
    world.wait_for(&agent, &name, RrType::A, SOON, absent).await;
    assert_within(began, Duration::from_secs(30), &agent.log());
}

// 6. systemd readiness

/// A stand-in for systemd's notify socket: every message the agent sends.
struct NotifySocket {
    path: PathBuf,
    messages: tokio::sync::mpsc::UnboundedReceiver<String>,
    heard: Vec<String>,
    listener: tokio::task::JoinHandle<()>,
}

impl NotifySocket {
    fn bind(world: &World) -> NotifySocket {
        let path = world.dir.path().join("notify.sock");
        let socket = tokio::net::UnixDatagram::bind(&path).expect("binding the notify socket");
        let (sender, messages) = tokio::sync::mpsc::unbounded_channel::<String>();
        let listener = tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while let Ok(read) = socket.recv(&mut buffer).await {
                let text = String::from_utf8_lossy(&buffer[..read]).into_owned();
                if sender.send(text).is_err() {
                    return;
                }
            }
        });
        NotifySocket {
            path,
            messages,
            heard: Vec::new(),
            listener,
        }
    }

    /// `NOTIFY_SOCKET` for the agent.
    fn env(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Waits for a message holding `text` and returns it; every message
    /// heard so far stays in `heard`.
    async fn wait_for(&mut self, text: &str, within: Duration, agent: &common::Agent) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {text} after {within:?}: {:?}\n{}",
                        self.heard,
                        agent.log()
                    )
                })
                .expect("the listener is running");
            self.heard.push(message.clone());
            if message.contains(text) {
                return message;
            }
        }
    }

    /// Every message heard so far.
    fn heard(&mut self) -> &[String] {
        while let Ok(message) = self.messages.try_recv() {
            self.heard.push(message);
        }
        &self.heard
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// The microseconds of every EXTEND_TIMEOUT_USEC= message in `heard`.
fn extensions(heard: &[String]) -> Vec<u64> {
    heard
        .iter()
        .flat_map(|message| message.lines())
        .filter_map(|line| line.strip_prefix("EXTEND_TIMEOUT_USEC="))
        .filter_map(|micros| micros.parse().ok())
        .collect()
}

#[tokio::test]
async fn systemd_hears_ready_after_registration_and_stopping_at_shutdown() {
    let world = World::new().await;
    let name = world.name("web-1");
    let mut socket = NotifySocket::bind(&world);
    let began = Instant::now();
    let mut agent = world.spawn_with(
        &["run", "--no-jitter"],
        &fast_config(&world, "", ""),
        &[("NOTIFY_SOCKET", &socket.env())],
    );

    let ready = socket.wait_for("READY=1", SOON, &agent).await;
    // Ready means registered.
    assert_eq!(
        world.record(&name, RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()])),
        "{:?}",
        socket.heard()
    );
    assert!(ready.contains("STATUS=1 record(s) registered"), "{ready}");

    agent.stop().await;
    let heard = socket.heard();
    assert!(heard.iter().any(|m| m.contains("STOPPING=1")), "{heard:?}");
    // Nothing was busy, so the start was never extended.
    assert!(extensions(heard).is_empty(), "{heard:?}");
    assert_eq!(world.record(&name, RrType::A).await, None);
    assert_within(began, Duration::from_secs(20), &agent.log());
}

#[tokio::test]
async fn a_throttled_start_asks_systemd_for_more_time_and_an_unreachable_one_does_not() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let mut socket = NotifySocket::bind(&world);
    proxy.refuse(true);
    let began = Instant::now();
    let mut agent = world.spawn_with(
        &["run", "--no-jitter"],
        &fast_config(&world, "", ""),
        &[("NOTIFY_SOCKET", &socket.env())],
    );

    // Unreachable: retried, but no more time asked for, so systemd's
    // TimeoutStartSec would end the start.
    socket.wait_for("retrying", SOON, &agent).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        extensions(socket.heard()).is_empty(),
        "{:?}",
        socket.heard()
    );

    // Reachable and throttling: each busy answer asks for its wait, the
    // next attempt and one more call (2 x request_timeout of 2 s), plus
    // 10 s, before READY=1.
    proxy.inject(
        Action::ChangeRecords,
        &[Fault::Throttling, Fault::PriorRequestNotComplete],
    );
    proxy.refuse(false);
    socket.wait_for("READY=1", SOON, &agent).await;
    let before_ready = extensions(socket.heard());
    assert_eq!(before_ready.len(), 2, "{:?}", socket.heard());
    for micros in &before_ready {
        // The wait is at most backoff_cap (1 s).
        assert!(
            (14_000_000..=15_000_000).contains(micros),
            "{micros}: {:?}",
            socket.heard()
        );
    }

    // After READY=1, throttling asks systemd for nothing.
    proxy.inject(Action::ChangeRecords, &[Fault::Throttling]);
    world.imds.set("local-ipv4", "10.0.0.11");
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.0.11"]))
        .await;
    assert_eq!(extensions(socket.heard()).len(), 2, "{:?}", socket.heard());

    agent.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
    assert_within(began, Duration::from_secs(30), &agent.log());
}

#[tokio::test]
async fn with_wait_insync_systemd_hears_ready_only_once_the_change_is_insync() {
    let (world, proxy) = World::new().await.with_relay().await;
    let name = world.name("web-1");
    let mut socket = NotifySocket::bind(&world);
    // Three PENDING answers from the proxy, then ministack's own PENDING,
    // then INSYNC.
    proxy.inject(
        Action::GetChange,
        &[Fault::Pending, Fault::Pending, Fault::Pending],
    );
    let began = Instant::now();
    let mut agent = world.spawn_with(
        &["run", "--no-jitter"],
        &fast_config(&world, "wait_insync = true", ""),
        &[("NOTIFY_SOCKET", &socket.env())],
    );

    socket.wait_for("READY=1", SOON, &agent).await;
    // Every GetChange was answered before READY=1: the last said INSYNC.
    assert_eq!(proxy.count(Action::GetChange), 5, "{}", agent.log());
    let heard = socket.heard();
    let waiting = heard.iter().position(|m| m.contains("INSYNC"));
    let ready = heard.iter().position(|m| m.contains("READY=1"));
    assert!(
        matches!((waiting, ready), (Some(w), Some(r)) if w < r),
        "{heard:?}"
    );
    assert!(world.record(&name, RrType::A).await.is_some());

    agent.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
    assert_within(began, Duration::from_secs(20), &agent.log());
}
