//! Route 53: the only module that talks to it.
//!
//! It finds hosted zones, reads the live record sets at a name, and sends
//! change batches. What may be written or deleted is decided elsewhere
//! ([`crate::owner`]); this module only turns those decisions into calls and
//! Route 53's answers into [`LiveSet`]s. Errors keep Route 53's own error
//! code and message, since "service error" tells nobody what to fix.
//!
//! Retries: none here. The SDK client is built with its retries switched
//! off, so each method makes exactly one attempt, cut off after
//! `request_timeout`; every error carries its [`Class`], and the agent
//! retries retryable ones through [`crate::retry::Retry`], the only layer
//! that does. (The SDK's default of 3 attempts would multiply with ours and
//! still give up during a throttled fleet boot.)

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_route53::Client;
use aws_sdk_route53::config::Region;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{RecordType, ZoneId, ZoneRef};
use crate::dns::DnsName;
use crate::owner::LiveSet;
use crate::plan::{DesiredRecord, Policy, Zone};
use crate::retry::{self, Class, Classify};

/// Route 53's control plane lives in us-east-1 in the commercial partition.
const HOME_REGION: &str = "us-east-1";
/// Time to set up a connection to Route 53, within `request_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Record sets asked for per ListResourceRecordSets page (Route 53 allows
/// up to 300). One page covers a name unless a fleet shares it.
const PAGE_AT_NAME: i32 = 100;

/// Route 53's code for a zone that does not exist; also used when no zone
/// has the configured name.
pub const NO_SUCH_HOSTED_ZONE: &str = "NoSuchHostedZone";
/// Several zones have the configured name and `private` does not pick one.
pub const AMBIGUOUS_HOSTED_ZONE: &str = "AmbiguousHostedZone";

/// A Route 53 call that failed.
#[derive(Debug, thiserror::Error)]
#[error("Route 53 {action} on {target} failed: {detail}")]
pub struct Route53Error {
    pub action: &'static str,
    /// The hosted zone, or the zone name looked up.
    pub target: String,
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

    fn is_busy(&self) -> bool {
        retry::is_busy_code(self.code.as_deref())
    }
}

impl Route53Error {
    /// An answer Route 53 gave that no retry will change.
    pub fn new(action: &'static str, target: impl ToString, detail: String) -> Self {
        Route53Error {
            action,
            target: target.to_string(),
            code: None,
            detail,
            class: Class::Final,
        }
    }

    /// An answer that says the configuration must change: named with the
    /// service's own code where one fits.
    fn config(action: &'static str, target: impl ToString, code: &str, detail: String) -> Self {
        Route53Error {
            code: Some(code.to_string()),
            ..Route53Error::new(action, target, detail)
        }
    }

    /// True when the configuration, not the moment, is at fault: the zone
    /// does not exist or cannot be told apart from another.
    pub fn is_config(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(NO_SUCH_HOSTED_ZONE | AMBIGUOUS_HOSTED_ZONE)
        )
    }

    /// A batch Route 53 rejected as wrong for the zone's current state:
    /// someone changed the records between our read and our write.
    pub fn is_invalid_change_batch(&self) -> bool {
        self.code.as_deref() == Some("InvalidChangeBatch")
    }
}

/// A change in a batch: what to do to which record set.
#[derive(Clone, Debug)]
pub enum Write<'a> {
    /// CREATE the record set (fails if something is there already).
    Create(&'a DesiredRecord),
    /// UPSERT the record set, keeping the health check someone attached to
    /// it, if any.
    Upsert {
        record: &'a DesiredRecord,
        health_check_id: Option<&'a str>,
    },
    /// UPSERT a simple TXT record set with these (quoted) values.
    Txt {
        name: &'a DnsName,
        values: Vec<String>,
        ttl: u32,
    },
    /// CREATE a simple TXT record set (fails if one is there already).
    CreateTxt {
        name: &'a DnsName,
        values: Vec<String>,
        ttl: u32,
    },
    /// DELETE a live record set, with its exact live values.
    Delete(&'a LiveSet),
}

/// The standard AWS settings (credentials chain, endpoint overrides,
/// region), with Route 53's home region as the last resort, all over
/// `http_client` (see [`crate::http`]).
pub async fn load_aws_settings(http_client: SharedHttpClient) -> SdkConfig {
    // The region is left to the loader's own default chain, not given as a
    // provider: only the loader hands that chain's IMDS lookup our client.
    let settings = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client.clone())
        .load()
        .await;
    if settings.region().is_some() {
        return settings;
    }
    // Nothing names a region: load again with the home region, so that the
    // credential providers get it too.
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .region(Region::new(HOME_REGION))
        .load()
        .await
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
    pub async fn from_env(request_timeout: Duration, http_client: SharedHttpClient) -> Self {
        Route53::from_settings(&load_aws_settings(http_client).await, request_timeout)
    }

    /// A client from settings already loaded with [`load_aws_settings`].
    pub fn from_settings(shared: &SdkConfig, request_timeout: Duration) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(request_timeout))
            .operation_attempt_timeout(request_timeout)
            .operation_timeout(request_timeout)
            .build();
        let config = aws_sdk_route53::config::Builder::from(shared)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .build();
        Route53 {
            client: Client::from_conf(config),
        }
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

    /// GetChange for a change id that cannot exist, to learn whether the
    /// call is allowed at all: Route 53 answers `NoSuchChange` when it is,
    /// and `AccessDenied` when it is not. For `doctor`.
    pub async fn probe_get_change(&self, change_id: &str) -> Result<(), Route53Error> {
        self.client
            .get_change()
            .id(change_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| call_error("GetChange", change_id, error))
    }

    /// Resolves a configured zone: GetHostedZone for an id,
    /// ListHostedZonesByName (every page, exact name) for a name.
    pub async fn zone(&self, zone: &ZoneRef) -> Result<Zone, Route53Error> {
        match zone {
            ZoneRef::Id(id) => self.zone_by_id(id).await,
            ZoneRef::Name { name, private } => self.zone_by_name(name, *private).await,
        }
    }

    async fn zone_by_id(&self, zone_id: &ZoneId) -> Result<Zone, Route53Error> {
        let output = self
            .client
            .get_hosted_zone()
            .id(zone_id.as_str())
            .send()
            .await
            .map_err(|error| call_error("GetHostedZone", zone_id, error))?;
        let zone = output.hosted_zone().ok_or_else(|| {
            Route53Error::new(
                "GetHostedZone",
                zone_id,
                "the answer held no hosted zone".into(),
            )
        })?;
        Ok(Zone {
            id: zone_id.clone(),
            name: DnsName::from_route53(zone.name()),
            private: zone.config().is_some_and(|config| config.private_zone()),
        })
    }

    async fn zone_by_name(
        &self,
        name: &DnsName,
        private: Option<bool>,
    ) -> Result<Zone, Route53Error> {
        let action = "ListHostedZonesByName";
        let mut candidates = Vec::new();
        let mut next: Option<(String, Option<String>)> = Some((name.to_string(), None));
        while let Some((dns_name, zone_id)) = next.take() {
            let output = self
                .client
                .list_hosted_zones_by_name()
                .dns_name(dns_name)
                .set_hosted_zone_id(zone_id)
                .send()
                .await
                .map_err(|error| call_error(action, name, error))?;
            let mut past_the_name = false;
            for zone in output.hosted_zones() {
                if DnsName::from_route53(zone.name()) != *name {
                    past_the_name = true;
                    continue;
                }
                let is_private = zone.config().is_some_and(|config| config.private_zone());
                candidates.push((bare_zone_id(zone.id()), is_private));
            }
            if output.is_truncated() && !past_the_name {
                next = output.next_dns_name().map(|dns| {
                    (
                        dns.to_string(),
                        output.next_hosted_zone_id().map(str::to_string),
                    )
                });
            }
        }
        let matching: Vec<&(String, bool)> = candidates
            .iter()
            .filter(|(_, is_private)| private.is_none_or(|wanted| wanted == *is_private))
            .collect();
        let kind = |is_private: bool| if is_private { "private" } else { "public" };
        match matching.as_slice() {
            [(id, is_private)] => Ok(Zone {
                id: ZoneId::parse(id).map_err(|detail| Route53Error::new(action, name, detail))?,
                name: name.clone(),
                private: *is_private,
            }),
            [] => Err(Route53Error::config(
                action,
                name,
                NO_SUCH_HOSTED_ZONE,
                format!(
                    "no {}hosted zone is named {name}",
                    private.map(|p| format!("{} ", kind(p))).unwrap_or_default()
                ),
            )),
            several => Err(Route53Error::config(
                action,
                name,
                AMBIGUOUS_HOSTED_ZONE,
                format!(
                    "{} hosted zones are named {name} ({}); set private = true or false, or \
                     use zone_id",
                    several.len(),
                    several
                        .iter()
                        .map(|(id, is_private)| format!("{id} {}", kind(*is_private)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Every live record set at exactly `name`, of every type.
    ///
    /// ListResourceRecordSets starts *at* the given name and returns whatever
    /// follows, so the answer is filtered by name, and paging stops at the
    /// first set past it.
    pub async fn sets_at(
        &self,
        zone_id: &ZoneId,
        name: &DnsName,
    ) -> Result<Vec<LiveSet>, Route53Error> {
        let mut sets = Vec::new();
        let mut start = Some((name.to_string(), None, None));
        while let Some((start_name, start_type, start_identifier)) = start.take() {
            let output = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id.as_str())
                .start_record_name(start_name)
                .set_start_record_type(start_type)
                .set_start_record_identifier(start_identifier)
                .max_items(PAGE_AT_NAME)
                .send()
                .await
                .map_err(|error| call_error("ListResourceRecordSets", zone_id, error))?;
            let page: Vec<LiveSet> = output.resource_record_sets().iter().map(live_set).collect();
            let past_the_name = page.iter().any(|set| set.name != *name);
            sets.extend(page.into_iter().filter(|set| set.name == *name));
            if output.is_truncated() && !past_the_name {
                start = output.next_record_name().map(|next| {
                    (
                        next.to_string(),
                        output.next_record_type().cloned(),
                        output.next_record_identifier().map(str::to_string),
                    )
                });
            }
        }
        Ok(sets)
    }

    /// Every record set in the zone, following every page.
    pub async fn all_sets(&self, zone_id: &ZoneId) -> Result<Vec<LiveSet>, Route53Error> {
        let mut sets = Vec::new();
        let mut start: Option<(String, Option<RrType>, Option<String>)> = None;
        loop {
            let mut request = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id.as_str());
            if let Some((name, kind, identifier)) = start.take() {
                request = request
                    .start_record_name(name)
                    .set_start_record_type(kind)
                    .set_start_record_identifier(identifier);
            }
            let output = request
                .send()
                .await
                .map_err(|error| call_error("ListResourceRecordSets", zone_id, error))?;
            sets.extend(output.resource_record_sets().iter().map(live_set));
            if !output.is_truncated() {
                return Ok(sets);
            }
            let Some(next) = output.next_record_name() else {
                return Ok(sets);
            };
            start = Some((
                next.to_string(),
                output.next_record_type().cloned(),
                output.next_record_identifier().map(str::to_string),
            ));
        }
    }

    /// Sends `writes` as one change batch to `zone_id`: all of them happen,
    /// or none. Returns the change id.
    pub async fn apply(
        &self,
        zone_id: &ZoneId,
        writes: &[Write<'_>],
    ) -> Result<String, Route53Error> {
        let changes = writes
            .iter()
            .map(change)
            .collect::<Result<Vec<_>, _>>()
            .and_then(|changes| ChangeBatch::builder().set_changes(Some(changes)).build())
            .map_err(|error| {
                Route53Error::new(
                    "ChangeResourceRecordSets",
                    zone_id,
                    format!("the change batch could not be built: {error}"),
                )
            })?;
        let output = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id.as_str())
            .change_batch(changes)
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

fn change(write: &Write<'_>) -> Result<Change, BuildError> {
    let (action, set) = match write {
        Write::Create(record) => (ChangeAction::Create, desired_set(record, None)?),
        Write::Upsert {
            record,
            health_check_id,
        } => (
            ChangeAction::Upsert,
            desired_set(record, health_check_id.map(str::to_string))?,
        ),
        Write::Txt { name, values, ttl } => (ChangeAction::Upsert, txt_set(name, values, *ttl)?),
        Write::CreateTxt { name, values, ttl } => {
            (ChangeAction::Create, txt_set(name, values, *ttl)?)
        }
        Write::Delete(live) => (ChangeAction::Delete, live_to_set(live)?),
    };
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
}

fn txt_set(name: &DnsName, values: &[String], ttl: u32) -> Result<ResourceRecordSet, BuildError> {
    ResourceRecordSet::builder()
        .name(name.as_str())
        .r#type(RrType::Txt)
        .ttl(i64::from(ttl))
        .set_resource_records(Some(resource_records(values)?))
        .build()
}

fn desired_set(
    record: &DesiredRecord,
    health_check_id: Option<String>,
) -> Result<ResourceRecordSet, BuildError> {
    let builder = ResourceRecordSet::builder()
        .name(record.name.as_str())
        .r#type(rr_type(record.record_type))
        .ttl(i64::from(record.ttl))
        .set_resource_records(Some(resource_records(&record.values)?))
        .set_set_identifier(record.set_identifier.clone())
        .set_health_check_id(health_check_id);
    with_policy(builder, record.policy).build()
}

/// A DELETE must repeat the live set exactly: name, type, set identifier,
/// routing policy (weight, multivalue), TTL, health check and every value.
/// Sets with fields this does not carry (an alias target, failover,
/// latency, geolocation or CIDR routing) are never the agent's to delete:
/// see [`LiveSet::could_be_ours`].
fn live_to_set(live: &LiveSet) -> Result<ResourceRecordSet, BuildError> {
    let builder = ResourceRecordSet::builder()
        .name(live.name.as_str())
        .r#type(RrType::from(live.record_type.as_str()))
        .set_ttl(live.ttl)
        .set_resource_records(Some(resource_records(&live.values)?))
        .set_set_identifier(live.set_identifier.clone())
        .set_health_check_id(live.health_check_id.clone());
    with_policy(builder, live.policy).build()
}

fn with_policy(
    builder: aws_sdk_route53::types::builders::ResourceRecordSetBuilder,
    policy: Policy,
) -> aws_sdk_route53::types::builders::ResourceRecordSetBuilder {
    match policy {
        Policy::MultiValue => builder.multi_value_answer(true),
        Policy::Weighted(weight) => builder.weight(i64::from(weight)),
        Policy::Simple | Policy::Other => builder,
    }
}

fn resource_records(values: &[String]) -> Result<Vec<ResourceRecord>, BuildError> {
    values
        .iter()
        .map(|value| ResourceRecord::builder().value(value).build())
        .collect()
}

fn live_set(set: &ResourceRecordSet) -> LiveSet {
    let routed_otherwise = set.failover().is_some()
        || set.region().is_some()
        || set.geo_location().is_some()
        || set.geo_proximity_location().is_some()
        || set.cidr_routing_config().is_some()
        || set.traffic_policy_instance_id().is_some();
    let policy = match (set.weight(), set.multi_value_answer(), set.set_identifier()) {
        _ if routed_otherwise => Policy::Other,
        (Some(weight), _, _) => u8::try_from(weight).map_or(Policy::Other, Policy::Weighted),
        (None, Some(true), _) => Policy::MultiValue,
        (None, _, Some(_)) => Policy::Other,
        (None, _, None) => Policy::Simple,
    };
    LiveSet {
        name: DnsName::from_route53(set.name()),
        record_type: set.r#type().as_str().to_string(),
        set_identifier: set.set_identifier().map(str::to_string),
        policy,
        ttl: set.ttl(),
        values: set
            .resource_records()
            .iter()
            .map(|value| value.value().to_string())
            .collect(),
        is_alias: set.alias_target().is_some(),
        health_check_id: set.health_check_id().map(str::to_string),
    }
}

fn rr_type(record_type: RecordType) -> RrType {
    RrType::from(record_type.as_str())
}

/// `/hostedzone/Z123` → `Z123`.
fn bare_zone_id(id: &str) -> String {
    id.trim_start_matches("/hostedzone/").to_string()
}

fn call_error<E>(action: &'static str, target: impl ToString, error: SdkError<E>) -> Route53Error
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
        _ => crate::error_chain(&error),
    };
    Route53Error {
        action,
        target: target.to_string(),
        code,
        detail,
        class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(policy: Policy, set: Option<&str>) -> DesiredRecord {
        DesiredRecord {
            zone_id: ZoneId::parse("ZA").unwrap(),
            name: DnsName::parse("a.example.com").unwrap(),
            record_type: RecordType::Aaaa,
            set_identifier: set.map(str::to_string),
            policy,
            ttl: 60,
            values: vec!["2001:db8::1".into()],
            takeover: false,
        }
    }

    #[test]
    fn record_sets_carry_name_type_ttl_values_and_policy() {
        let set = desired_set(&desired(Policy::Simple, None), None).unwrap();
        assert_eq!(set.name(), "a.example.com.");
        assert_eq!(set.r#type(), &RrType::Aaaa);
        assert_eq!(set.ttl(), Some(60));
        assert_eq!(set.resource_records()[0].value(), "2001:db8::1");
        assert_eq!(set.set_identifier(), None);

        let set = desired_set(&desired(Policy::Weighted(7), Some("i-1")), None).unwrap();
        assert_eq!(set.weight(), Some(7));
        assert_eq!(set.set_identifier(), Some("i-1"));
        let set = desired_set(&desired(Policy::MultiValue, Some("i-1")), None).unwrap();
        assert_eq!(set.multi_value_answer(), Some(true));
    }

    #[test]
    fn live_sets_read_back_as_they_were_written() {
        for policy in [Policy::Simple, Policy::MultiValue, Policy::Weighted(3)] {
            let set_id = (policy != Policy::Simple).then_some("i-1");
            let record = desired(policy, set_id);
            let live = live_set(&desired_set(&record, Some("hc-1".into())).unwrap());
            assert!(live.holds(&record), "{policy:?}: {live:?}");
            assert!(live.is_set_of(&record));
            assert!(live.could_be_ours());
            assert_eq!(live.health_check_id.as_deref(), Some("hc-1"));
            let again = live_to_set(&live).unwrap();
            assert_eq!(live_set(&again), live);
        }
    }

    #[test]
    fn an_upsert_keeps_the_health_check_it_is_given() {
        let record = desired(Policy::MultiValue, Some("i-1"));
        let upsert = change(&Write::Upsert {
            record: &record,
            health_check_id: Some("hc-1"),
        })
        .unwrap();
        assert_eq!(upsert.action(), &ChangeAction::Upsert);
        let set = upsert.resource_record_set().unwrap();
        assert_eq!(set.health_check_id(), Some("hc-1"));
        let create = change(&Write::Create(&record)).unwrap();
        assert_eq!(
            create.resource_record_set().unwrap().health_check_id(),
            None
        );
    }

    #[test]
    fn markers_are_upserted_or_created_as_asked() {
        let name = DnsName::parse("_route53-agent.a.example.com").unwrap();
        let values = vec!["\"heritage=route53-agent,instance=i-1,type=A\"".to_string()];
        let upsert = change(&Write::Txt {
            name: &name,
            values: values.clone(),
            ttl: 60,
        })
        .unwrap();
        assert_eq!(upsert.action(), &ChangeAction::Upsert);
        let create = change(&Write::CreateTxt {
            name: &name,
            values,
            ttl: 60,
        })
        .unwrap();
        assert_eq!(create.action(), &ChangeAction::Create);
        let set = create.resource_record_set().unwrap();
        assert_eq!(set.r#type(), &RrType::Txt);
        assert_eq!(set.ttl(), Some(60));
    }

    #[test]
    fn sets_routed_in_ways_the_agent_does_not_write_are_never_ours() {
        use aws_sdk_route53::types::{AliasTarget, GeoLocation, ResourceRecordSetFailover};

        let base = || {
            ResourceRecordSet::builder()
                .name("a.example.com.")
                .r#type(RrType::A)
                .set_identifier("i-1")
                .ttl(60)
                .resource_records(ResourceRecord::builder().value("10.0.0.1").build().unwrap())
        };
        let failover = base().failover(ResourceRecordSetFailover::Primary);
        let geo = base().geo_location(GeoLocation::builder().country_code("DE").build());
        let latency = base().region(aws_sdk_route53::types::ResourceRecordSetRegion::EuWest1);
        let alias = ResourceRecordSet::builder()
            .name("a.example.com.")
            .r#type(RrType::A)
            .alias_target(
                AliasTarget::builder()
                    .hosted_zone_id("ZA")
                    .dns_name("b.example.com.")
                    .evaluate_target_health(false)
                    .build()
                    .unwrap(),
            );
        for builder in [failover, geo, latency, alias] {
            let live = live_set(&builder.build().unwrap());
            assert!(!live.could_be_ours(), "{live:?}");
        }
        let weighted = live_set(&base().weight(3).build().unwrap());
        assert!(weighted.could_be_ours());
    }

    #[test]
    fn escaped_names_are_decoded() {
        let set = ResourceRecordSet::builder()
            .name("\\052.Example.com.")
            .r#type(RrType::A)
            .build()
            .unwrap();
        assert_eq!(live_set(&set).name.as_str(), "*.example.com.");
    }
}
