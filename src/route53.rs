//! Route 53: the only module that talks to it.
//!
//! It turns desired records into change batches, reads live record sets back
//! by exact name and type, and deletes only what still holds the values the
//! agent wrote. Errors keep Route 53's own error code and message, since
//! "service error" tells nobody what to fix.
//!
//! Retries: none here. The SDK client is built with its retries switched
//! off, so each method makes exactly one attempt, cut off after
//! `request_timeout`; every error carries its [`Class`], and the agent
//! retries retryable ones through [`crate::retry::Retry`], the only layer
//! that does. (The SDK's default of 3 attempts would multiply with ours and
//! still give up during a throttled fleet boot.)

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::Region;
use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};

use crate::config::{RecordType, ZoneId};
use crate::dns::DnsName;
use crate::plan::DesiredRecord;
use crate::retry::{self, Class, Classify};

/// Route 53's control plane lives in us-east-1 in the commercial partition.
const HOME_REGION: &str = "us-east-1";
/// Time to set up a connection to Route 53, within `request_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A Route 53 call that failed.
#[derive(Debug, thiserror::Error)]
#[error("Route 53 {action} on hosted zone {zone_id} failed: {detail}")]
pub struct Route53Error {
    pub action: &'static str,
    pub zone_id: ZoneId,
    /// The service's error code (`InvalidChangeBatch`, `Throttling`, ...),
    /// when the service answered at all.
    pub code: Option<String>,
    pub detail: String,
    /// Whether trying again may help.
    pub class: Class,
}

impl Classify for Route53Error {
    fn class(&self) -> Class {
        self.class
    }
}

/// A record set as it is live in the zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveRecord {
    pub ttl: Option<i64>,
    pub values: Vec<String>,
    pub is_alias: bool,
}

impl LiveRecord {
    /// True when the live record holds exactly what `record` describes.
    pub fn matches(&self, record: &DesiredRecord) -> bool {
        !self.is_alias
            && self.ttl == Some(i64::from(record.ttl))
            && normalised(&self.values) == normalised(&record.values)
    }
}

impl fmt::Display for LiveRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_alias {
            return f.write_str("an alias");
        }
        let ttl = self.ttl.map_or("-".to_string(), |ttl| ttl.to_string());
        write!(f, "TTL {ttl}, values {}", self.values.join(" "))
    }
}

/// What a safe delete found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Deleted by the change with this id.
    Deleted { change_id: String },
    /// Nothing was there: as good as deleted.
    AlreadyGone,
    /// Someone changed the record since the agent wrote it; it was left alone.
    ChangedBySomeoneElse(LiveRecord),
}

/// A Route 53 client.
#[derive(Clone, Debug)]
pub struct Route53 {
    client: Client,
}

impl Route53 {
    /// A client from the standard AWS settings: credentials from the default
    /// chain, `AWS_ENDPOINT_URL_ROUTE_53` or `AWS_ENDPOINT_URL` for the
    /// endpoint. Route 53 is a global service, but the SDK still needs a
    /// region to pick the partition: the default chain finds it (on EC2 from
    /// the instance metadata), and failing that Route 53's home region,
    /// us-east-1, is used.
    ///
    /// Each call makes one attempt of at most `request_timeout`; see the
    /// module notes on retries.
    pub async fn from_env(request_timeout: Duration) -> Self {
        let region = RegionProviderChain::default_provider().or_else(Region::new(HOME_REGION));
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .load()
            .await;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(request_timeout))
            .operation_attempt_timeout(request_timeout)
            .operation_timeout(request_timeout)
            .build();
        let config = aws_sdk_route53::config::Builder::from(&shared)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .build();
        Route53 {
            client: Client::from_conf(config),
        }
    }

    /// The zone's name, from GetHostedZone.
    pub async fn zone_name(&self, zone_id: &ZoneId) -> Result<DnsName, Route53Error> {
        let output = self
            .client
            .get_hosted_zone()
            .id(zone_id.as_str())
            .send()
            .await
            .map_err(|error| call_error("GetHostedZone", zone_id, error))?;
        let zone = output.hosted_zone().ok_or_else(|| Route53Error {
            action: "GetHostedZone",
            zone_id: zone_id.clone(),
            code: None,
            detail: "the answer held no hosted zone".into(),
            class: Class::Final,
        })?;
        Ok(DnsName::from_route53(zone.name()))
    }

    /// UPSERTs `records`, which share one zone, in one change batch.
    /// Returns the change id.
    pub async fn upsert(&self, records: &[&DesiredRecord]) -> Result<String, Route53Error> {
        let Some(first) = records.first() else {
            return Ok(String::new());
        };
        let changes = records
            .iter()
            .map(|record| change(ChangeAction::Upsert, &record_set(record)?))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| build_error(&first.zone_id, error))?;
        self.send(&first.zone_id, changes).await
    }

    /// Reads the live record set with exactly this name and type, if any.
    ///
    /// ListResourceRecordSets starts *at* the given name and type and returns
    /// whatever follows when it is absent, so the answer is checked.
    pub async fn live(&self, record: &DesiredRecord) -> Result<Option<LiveRecord>, Route53Error> {
        let output = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(record.zone_id.as_str())
            .start_record_name(record.name.as_str())
            .start_record_type(rr_type(record.record_type))
            .max_items(1)
            .send()
            .await
            .map_err(|error| call_error("ListResourceRecordSets", &record.zone_id, error))?;
        let found = output.resource_record_sets().iter().find(|set| {
            DnsName::from_route53(set.name()) == record.name
                && set.r#type() == &rr_type(record.record_type)
                && set.set_identifier().is_none()
        });
        Ok(found.map(|set| LiveRecord {
            ttl: set.ttl(),
            values: set
                .resource_records()
                .iter()
                .map(|value| value.value().to_string())
                .collect(),
            is_alias: set.alias_target().is_some(),
        }))
    }

    /// Deletes `record` only while it still holds what the agent wrote.
    ///
    /// The DELETE carries the live values read just before, which Route 53
    /// requires to match exactly; if the record changes in between, Route 53
    /// rejects the batch and a second read tells what happened.
    pub async fn delete_if_unchanged(
        &self,
        record: &DesiredRecord,
    ) -> Result<DeleteOutcome, Route53Error> {
        let outcome = match self.live(record).await? {
            None => return Ok(DeleteOutcome::AlreadyGone),
            Some(live) if !live.matches(record) => {
                return Ok(DeleteOutcome::ChangedBySomeoneElse(live));
            }
            Some(_) => self.delete(record).await,
        };
        match outcome {
            Ok(change_id) => Ok(DeleteOutcome::Deleted { change_id }),
            Err(error) if error.code.as_deref() == Some("InvalidChangeBatch") => {
                match self.live(record).await? {
                    None => Ok(DeleteOutcome::AlreadyGone),
                    Some(live) if !live.matches(record) => {
                        Ok(DeleteOutcome::ChangedBySomeoneElse(live))
                    }
                    Some(_) => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn delete(&self, record: &DesiredRecord) -> Result<String, Route53Error> {
        let change = record_set(record)
            .and_then(|set| change(ChangeAction::Delete, &set))
            .map_err(|error| build_error(&record.zone_id, error))?;
        self.send(&record.zone_id, vec![change]).await
    }

    /// True once the change is INSYNC (GetChange). `zone_id` is the zone
    /// the change was made in, for the error message.
    pub async fn is_insync(&self, zone_id: &ZoneId, change_id: &str) -> Result<bool, Route53Error> {
        let output = self
            .client
            .get_change()
            .id(change_id)
            .send()
            .await
            .map_err(|error| call_error("GetChange", zone_id, error))?;
        Ok(output
            .change_info()
            .is_some_and(|info| info.status() == &ChangeStatus::Insync))
    }

    async fn send(&self, zone_id: &ZoneId, changes: Vec<Change>) -> Result<String, Route53Error> {
        let batch = ChangeBatch::builder()
            .set_changes(Some(changes))
            .build()
            .map_err(|error| build_error(zone_id, error))?;
        let output = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id.as_str())
            .change_batch(batch)
            .send()
            .await
            .map_err(|error| call_error("ChangeResourceRecordSets", zone_id, error))?;
        Ok(output
            .change_info()
            .map(|info| info.id().trim_start_matches("/change/").to_string())
            .unwrap_or_default())
    }
}

type BuildError = aws_smithy_types::error::operation::BuildError;

fn record_set(record: &DesiredRecord) -> Result<ResourceRecordSet, BuildError> {
    let values = record
        .values
        .iter()
        .map(|value| ResourceRecord::builder().value(value).build())
        .collect::<Result<Vec<_>, _>>()?;
    ResourceRecordSet::builder()
        .name(record.name.as_str())
        .r#type(rr_type(record.record_type))
        .ttl(i64::from(record.ttl))
        .set_resource_records(Some(values))
        .build()
}

fn change(action: ChangeAction, set: &ResourceRecordSet) -> Result<Change, BuildError> {
    Change::builder()
        .action(action)
        .resource_record_set(set.clone())
        .build()
}

fn rr_type(record_type: RecordType) -> RrType {
    match record_type {
        RecordType::A => RrType::A,
        RecordType::Aaaa => RrType::Aaaa,
    }
}

/// Values compared as Route 53 would: addresses by value (an IPv6 address
/// has many spellings), in any order.
fn normalised(values: &[String]) -> Vec<String> {
    let mut values: Vec<String> = values
        .iter()
        .map(|value| match value.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => value.clone(),
        })
        .collect();
    values.sort();
    values
}

fn call_error<E>(action: &'static str, zone_id: &ZoneId, error: SdkError<E>) -> Route53Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let class = retry::classify_sdk(&error);
    let service = error.as_service_error();
    let code = service.and_then(|e| e.code()).map(str::to_string);
    let message = service.and_then(|e| e.message()).map(str::to_string);
    let detail = match (&code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.clone(),
        _ => DisplayErrorContext(&error).to_string(),
    };
    Route53Error {
        action,
        zone_id: zone_id.clone(),
        code,
        detail,
        class,
    }
}

fn build_error(zone_id: &ZoneId, error: BuildError) -> Route53Error {
    Route53Error {
        action: "ChangeResourceRecordSets",
        zone_id: zone_id.clone(),
        code: None,
        detail: format!("the change batch could not be built: {error}"),
        class: Class::Final,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(values: &[&str]) -> DesiredRecord {
        DesiredRecord {
            zone_id: ZoneId::parse("ZA").unwrap(),
            name: DnsName::parse("a.example.com").unwrap(),
            record_type: RecordType::Aaaa,
            ttl: 60,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn live(ttl: i64, values: &[&str]) -> LiveRecord {
        LiveRecord {
            ttl: Some(ttl),
            values: values.iter().map(|v| v.to_string()).collect(),
            is_alias: false,
        }
    }

    #[test]
    fn matching_compares_ttl_and_values_by_meaning() {
        let record = desired(&["2001:db8::1"]);
        assert!(live(60, &["2001:DB8:0::1"]).matches(&record));
        assert!(!live(300, &["2001:db8::1"]).matches(&record));
        assert!(!live(60, &["2001:db8::2"]).matches(&record));
        assert!(!live(60, &["2001:db8::1", "2001:db8::2"]).matches(&record));
        let alias = LiveRecord {
            is_alias: true,
            ..live(60, &["2001:db8::1"])
        };
        assert!(!alias.matches(&record));
    }

    #[test]
    fn record_sets_carry_name_type_ttl_and_values() {
        let set = record_set(&desired(&["2001:db8::1"])).unwrap();
        assert_eq!(set.name(), "a.example.com.");
        assert_eq!(set.r#type(), &RrType::Aaaa);
        assert_eq!(set.ttl(), Some(60));
        assert_eq!(set.resource_records()[0].value(), "2001:db8::1");
    }
}
