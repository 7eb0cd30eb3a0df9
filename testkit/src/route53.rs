//! Route 53 helpers for tests: a client aimed at the emulator, and the few
//! calls a test makes on its own behalf or as "someone else" changing the
//! zone behind the agent's back (create a hosted zone, list record sets,
//! upsert, delete).
//!
//! Helpers that only set the scene panic with the service's error code and
//! message; `change_record` and `delete` return the error, because a test
//! may expect one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_route53::Client;
use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_route53::error::{DisplayErrorContext, SdkError};
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsError;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeInfo, ResourceRecord, ResourceRecordSet, RrType, Vpc,
    VpcRegion,
};

/// The region every test runs in.
pub const TEST_REGION: &str = "us-east-1";

/// The static credentials the emulator accepts.
pub const TEST_ACCESS_KEY_ID: &str = "test";
pub const TEST_SECRET_ACCESS_KEY: &str = "test";

/// A Route 53 client for the emulator at `endpoint`, configured by hand so
/// that nothing from the environment, `~/.aws` or IMDS is consulted.
pub fn route53_client(endpoint: &str) -> Client {
    let credentials = Credentials::new(
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        None,
        None,
        "route53-agent-testkit",
    );
    let config = aws_sdk_route53::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

/// Creates a hosted zone and returns its bare id (`Z...`, without
/// `/hostedzone/`). A private zone is associated with a made-up VPC that is
/// unique per call, so tests sharing one emulator can reuse a zone name.
pub async fn create_zone(client: &Client, name: &str, private: bool) -> String {
    let mut request = client
        .create_hosted_zone()
        .name(name)
        .caller_reference(unique_suffix("zone"));
    if private {
        let vpc = Vpc::builder()
            .vpc_id(format!("vpc-{}", unique_suffix("")))
            .vpc_region(VpcRegion::UsEast1)
            .build();
        request = request.vpc(vpc);
    }

    let output = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("creating hosted zone {name}: {}", DisplayErrorContext(&err)));
    let zone = output
        .hosted_zone()
        .expect("CreateHostedZone answered without a hosted zone");
    bare_zone_id(zone.id()).to_string()
}

/// Every record set in the zone, following pagination to the end.
pub async fn records(client: &Client, zone_id: &str) -> Vec<ResourceRecordSet> {
    let mut all = Vec::new();
    let mut next: Option<(String, Option<RrType>, Option<String>)> = None;
    loop {
        let mut request = client.list_resource_record_sets().hosted_zone_id(zone_id);
        if let Some((name, rr_type, identifier)) = next.take() {
            request = request
                .start_record_name(name)
                .set_start_record_type(rr_type)
                .set_start_record_identifier(identifier);
        }
        let page = request.send().await.unwrap_or_else(|err| {
            panic!(
                "listing record sets of zone {zone_id}: {}",
                DisplayErrorContext(&err)
            )
        });

        all.extend_from_slice(page.resource_record_sets());
        match (page.is_truncated(), page.next_record_name()) {
            (true, Some(name)) => {
                next = Some((
                    name.to_string(),
                    page.next_record_type().cloned(),
                    page.next_record_identifier().map(str::to_string),
                ))
            }
            _ => return all,
        }
    }
}

/// TTL and values of the first record set named `name` (compared after
/// `normalise_name`) with type `rr_type`, whatever its set identifier. An
/// alias record reports TTL 0 and no values.
pub fn values_of(
    records: &[ResourceRecordSet],
    name: &str,
    rr_type: RrType,
) -> Option<(i64, Vec<String>)> {
    let wanted = normalise_name(name);
    let record = records
        .iter()
        .find(|r| *r.r#type() == rr_type && normalise_name(r.name()) == wanted)?;
    let values = record
        .resource_records()
        .iter()
        .map(|rr| rr.value().to_string())
        .collect();
    Some((record.ttl().unwrap_or_default(), values))
}

/// Creates or replaces a simple record set; panics if Route 53 refuses.
pub async fn upsert(
    client: &Client,
    zone_id: &str,
    name: &str,
    rr_type: RrType,
    ttl: i64,
    values: &[&str],
) -> ChangeInfo {
    let record = simple_record(name, rr_type, ttl, values);
    change_record(client, zone_id, ChangeAction::Upsert, record)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "upserting {name} in zone {zone_id}: {}",
                DisplayErrorContext(&err)
            )
        })
}

/// Deletes a simple record set. Route 53 demands that TTL and values match
/// exactly, so this returns the error for a test to inspect.
pub async fn delete(
    client: &Client,
    zone_id: &str,
    name: &str,
    rr_type: RrType,
    ttl: i64,
    values: &[&str],
) -> Result<ChangeInfo, SdkError<ChangeResourceRecordSetsError>> {
    let record = simple_record(name, rr_type, ttl, values);
    change_record(client, zone_id, ChangeAction::Delete, record).await
}

/// Sends a change batch holding the single change `action` on `record`.
pub async fn change_record(
    client: &Client,
    zone_id: &str,
    action: ChangeAction,
    record: ResourceRecordSet,
) -> Result<ChangeInfo, SdkError<ChangeResourceRecordSetsError>> {
    let change = Change::builder()
        .action(action)
        .resource_record_set(record)
        .build()
        .expect("a change with an action and a record set is complete");
    let batch = ChangeBatch::builder()
        .changes(change)
        .build()
        .expect("a change batch with one change is complete");
    let output = client
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(batch)
        .send()
        .await?;
    Ok(output
        .change_info()
        .expect("ChangeResourceRecordSets answered without change info")
        .clone())
}

/// A record set with no routing policy: one name, type, TTL and values.
pub fn simple_record(name: &str, rr_type: RrType, ttl: i64, values: &[&str]) -> ResourceRecordSet {
    let resource_records = values
        .iter()
        .map(|value| {
            ResourceRecord::builder()
                .value(*value)
                .build()
                .expect("a resource record with a value is complete")
        })
        .collect();
    ResourceRecordSet::builder()
        .name(name)
        .r#type(rr_type)
        .ttl(ttl)
        .set_resource_records(Some(resource_records))
        .build()
        .expect("a record set with a name and type is complete")
}

/// A DNS name in the form Route 53 compares: lowercase, absolute (trailing
/// dot), with octal escapes such as `\052` turned back into characters.
pub fn normalise_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        let (decoded, used) = match octal_escape(rest) {
            Some(decoded) => (decoded, 4),
            None => (c, c.len_utf8()),
        };
        out.push(decoded.to_ascii_lowercase());
        rest = &rest[used..];
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// The character a leading `\ddd` escape stands for, if `s` starts with one.
fn octal_escape(s: &str) -> Option<char> {
    let digits = s.strip_prefix('\\')?.get(..3)?;
    if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u8::from_str_radix(digits, 8).ok().map(char::from)
}

/// `Z123` from `/hostedzone/Z123` (or from `Z123` itself).
pub fn bare_zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// A string no other call in any process is likely to produce, for caller
/// references and made-up VPC ids.
fn unique_suffix(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{nanos:x}{count:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_name_lowercases_and_adds_the_trailing_dot() {
        assert_eq!(normalise_name("Web-1.Example.COM"), "web-1.example.com.");
        assert_eq!(normalise_name("example.com."), "example.com.");
    }

    #[test]
    fn normalise_name_decodes_octal_escapes() {
        assert_eq!(normalise_name("\\052.example.com."), "*.example.com.");
        assert_eq!(normalise_name("a\\05"), "a\\05.");
    }

    #[test]
    fn bare_zone_id_strips_the_prefix() {
        assert_eq!(bare_zone_id("/hostedzone/Z123ABC"), "Z123ABC");
        assert_eq!(bare_zone_id("Z123ABC"), "Z123ABC");
    }

    #[test]
    fn values_of_finds_by_normalised_name_and_type() {
        let records = vec![
            simple_record("web-1.example.com.", RrType::A, 60, &["10.0.0.10"]),
            simple_record("WEB-1.example.com", RrType::Txt, 300, &["\"owner\""]),
        ];
        assert_eq!(
            values_of(&records, "web-1.example.com", RrType::Txt),
            Some((300, vec!["\"owner\"".to_string()]))
        );
        assert_eq!(values_of(&records, "web-2.example.com", RrType::A), None);
    }
}
