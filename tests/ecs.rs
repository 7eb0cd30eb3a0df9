//! ECS tasks end to end: a sidecar in `awsvpc` mode publishes the task's
//! own address from the task metadata endpoint (v4), names records after the
//! task and its cluster, and needs no instance metadata at all.

mod common;

use std::time::Duration;

use aws_sdk_route53::types::RrType;
use axum::Router;
use axum::routing::get;
use common::{World, holds};

const SOON: Duration = Duration::from_secs(15);
const TASK_ID: &str = "158d1c8083dd49d6b527399fd6414f5c";

/// A stand-in for the ECS task metadata endpoint, serving `/task`.
async fn task_endpoint(network_mode: &'static str) -> String {
    let body = format!(
        r#"{{"Cluster": "arn:aws:ecs:us-east-1:111122223333:cluster/web",
            "TaskARN": "arn:aws:ecs:us-east-1:111122223333:task/web/{TASK_ID}",
            "AvailabilityZone": "us-east-1a",
            "Containers": [{{"Name": "app", "Networks": [
                {{"NetworkMode": "{network_mode}", "IPv4Addresses": ["10.0.2.106"]}}]}}]}}"#
    );
    let app = Router::new().route("/v4/abc/task", get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("task endpoint port");
    let address = listener.local_addr().expect("task endpoint address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/v4/abc")
}

fn task_config(world: &World) -> std::path::PathBuf {
    world.config(
        r#"
        poll_interval = "1s"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{task_id}.{cluster}.{ZONE}"
        value = "task-ipv4"
        "#,
    )
}

#[tokio::test]
async fn a_task_sidecar_publishes_the_tasks_address_without_imds() {
    let world = World::new().await;
    let endpoint = task_endpoint("awsvpc").await;
    let name = world.name(&format!("{TASK_ID}.web"));
    let env = [("ECS_CONTAINER_METADATA_URI_V4", endpoint.as_str())];
    let mut agent = world.spawn_with(&["run", "--no-jitter"], &task_config(&world), &env);
    world
        .wait_for(&agent, &name, RrType::A, SOON, holds(60, &["10.0.2.106"]))
        .await;
    let marker = format!("_route53-agent.a.{name}");
    assert_eq!(
        world.marker(&marker).await,
        [format!(
            "\"heritage=route53-agent,instance={TASK_ID},type=A\""
        )]
    );
    agent.stop().await;
    assert_eq!(world.record(&name, RrType::A).await, None);
    assert_eq!(
        world.imds.token_requests() + world.imds.get_requests(),
        0,
        "a task-only configuration never asks IMDS"
    );
}

#[tokio::test]
async fn outside_ecs_task_values_are_a_clear_error() {
    let world = World::new().await;
    let finished = world.once("register", &task_config(&world)).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert!(
        finished
            .stderr
            .contains("ECS_CONTAINER_METADATA_URI_V4 is not set"),
        "{finished:?}"
    );
    assert!(finished.stderr.contains("not an ECS task"), "{finished:?}");
}

#[tokio::test]
async fn a_task_in_bridge_mode_cannot_give_its_own_address() {
    let world = World::new().await;
    let endpoint = task_endpoint("bridge").await;
    let env = [("ECS_CONTAINER_METADATA_URI_V4", endpoint.as_str())];
    let finished = world
        .once_env(&["register", "--no-jitter"], &task_config(&world), &env)
        .await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert!(
        finished.stderr.contains("awsvpc network mode"),
        "{finished:?}"
    );
}

#[tokio::test]
async fn outside_ecs_only_the_task_records_fail() {
    let world = World::new().await;
    let config = world.config(
        r#"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{tag:Name}.{ZONE}"
        [[record]]
        zone_id = "{ZONE_ID}"
        name = "{task_id}.{ZONE}"
        value = "task-ipv4"
        "#,
    );
    let finished = world.once("register", &config).await;
    assert_eq!(finished.code, Some(1), "{finished:?}");
    assert!(finished.stderr.contains("not an ECS task"), "{finished:?}");
    assert_eq!(
        world.record(&world.name("web-1"), RrType::A).await,
        Some((60, vec!["10.0.0.10".to_string()])),
        "the instance's own record is written all the same"
    );
}
