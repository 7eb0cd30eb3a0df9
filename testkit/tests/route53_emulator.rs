//! Documents the ministack Route 53 behaviour the agent's tests rely on,
//! and where it differs from real Route 53. Each test makes its own hosted
//! zone, so these also pass against a shared emulator (`MINISTACK_ENDPOINT`).

use aws_sdk_route53::error::ProvideErrorMetadata;
use aws_sdk_route53::types::{ChangeStatus, RrType};
use route53_agent_testkit::route53::{delete, upsert};
use route53_agent_testkit::{Ministack, create_zone, records, route53_client, values_of};

#[tokio::test]
async fn upserted_record_is_listed_and_delete_must_match_exactly() {
    let ministack = Ministack::start();
    let client = route53_client(&ministack.endpoint());
    let zone = create_zone(&client, "example.com", false).await;
    assert!(zone.starts_with('Z') && !zone.contains('/'), "{zone}");

    upsert(
        &client,
        &zone,
        "web-1.example.com",
        RrType::A,
        60,
        &["10.0.0.10"],
    )
    .await;
    let listed = records(&client, &zone).await;
    assert_eq!(
        values_of(&listed, "web-1.example.com.", RrType::A),
        Some((60, vec!["10.0.0.10".to_string()]))
    );
    // The zone starts with its SOA and NS records.
    assert!(values_of(&listed, "example.com", RrType::Soa).is_some());
    assert!(values_of(&listed, "example.com", RrType::Ns).is_some());

    let wrong_value = delete(
        &client,
        &zone,
        "web-1.example.com",
        RrType::A,
        60,
        &["10.0.0.11"],
    )
    .await;
    assert_eq!(wrong_value.unwrap_err().code(), Some("InvalidChangeBatch"));
    let wrong_ttl = delete(
        &client,
        &zone,
        "web-1.example.com",
        RrType::A,
        300,
        &["10.0.0.10"],
    )
    .await;
    assert_eq!(wrong_ttl.unwrap_err().code(), Some("InvalidChangeBatch"));
    let absent = delete(
        &client,
        &zone,
        "web-2.example.com",
        RrType::A,
        60,
        &["10.0.0.10"],
    )
    .await;
    assert_eq!(absent.unwrap_err().code(), Some("InvalidChangeBatch"));

    delete(
        &client,
        &zone,
        "web-1.example.com",
        RrType::A,
        60,
        &["10.0.0.10"],
    )
    .await
    .expect("a delete that matches exactly succeeds");
    assert_eq!(
        values_of(
            &records(&client, &zone).await,
            "web-1.example.com",
            RrType::A
        ),
        None
    );
}

#[tokio::test]
async fn emulator_quirks_compared_with_real_route53() {
    let ministack = Ministack::start();
    let client = route53_client(&ministack.endpoint());

    // Private zones of the same name coexist (each gets its own fake VPC).
    let private_a = create_zone(&client, "internal.example", true).await;
    let private_b = create_zone(&client, "internal.example", true).await;
    assert_ne!(private_a, private_b);
    let zone = private_a;

    // A change is PENDING when submitted; the first GetChange still says
    // PENDING and every later one INSYNC (no clock involved).
    let change = upsert(
        &client,
        &zone,
        "a.internal.example",
        RrType::A,
        60,
        &["10.0.0.1"],
    )
    .await;
    assert_eq!(change.status(), &ChangeStatus::Pending);
    let status = |id: String| {
        let client = client.clone();
        async move {
            let output = client.get_change().id(id).send().await.expect("GetChange");
            output.change_info().expect("change info").status().clone()
        }
    };
    assert_eq!(status(change.id().to_string()).await, ChangeStatus::Pending);
    assert_eq!(status(change.id().to_string()).await, ChangeStatus::Insync);

    // Unlike Route 53, names are neither lowercased nor octal-escaped.
    upsert(
        &client,
        &zone,
        "*.internal.example",
        RrType::A,
        60,
        &["10.0.0.2"],
    )
    .await;
    upsert(
        &client,
        &zone,
        "Mixed.internal.example",
        RrType::A,
        60,
        &["10.0.0.3"],
    )
    .await;
    let listed = records(&client, &zone).await;
    let names: Vec<&str> = listed.iter().map(|r| r.name()).collect();
    assert!(names.contains(&"*.internal.example."), "{names:?}");
    assert!(names.contains(&"Mixed.internal.example."), "{names:?}");
    // ...and so names differing only in case are different record sets.
    upsert(
        &client,
        &zone,
        "mixed.internal.example",
        RrType::A,
        60,
        &["10.0.0.4"],
    )
    .await;
    let listed = records(&client, &zone).await;
    let mixed = listed
        .iter()
        .filter(|r| r.name().eq_ignore_ascii_case("mixed.internal.example."))
        .count();
    assert_eq!(mixed, 2);

    // Pages honour maxitems and name the next record to start from.
    let page = client
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .max_items(2)
        .send()
        .await
        .expect("first page");
    assert!(page.is_truncated());
    assert_eq!(page.resource_record_sets().len(), 2);
    assert!(page.next_record_name().is_some() && page.next_record_type().is_some());
    assert_eq!(records(&client, &zone).await.len(), 2 + 4);
}
