//! `doctor`: checks, one by one, what the agent needs in order to work on
//! this machine, and explains each answer in plain words.
//!
//! The checks follow the order in which the agent itself would trip on
//! them: instance metadata (IMDSv2), instance tags, AWS credentials, the
//! hosted zones and whether each is of the kind its records call for, the
//! Route 53 read calls, and finally the names the records would take.
//! Doctor never writes to Route 53, so it cannot prove that
//! ChangeResourceRecordSets is allowed; `iam-policy` prints the policy that
//! allows it.
//!
//! Doctor loads the standard AWS settings itself, the same way the agent's
//! Route 53 client does, because the credentials check needs the loaded
//! settings and not only a client.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{Config, Drain, ValueSource, ZoneRef};
use crate::http;
use crate::metadata::{InstanceFacts, Metadata, Needs};
use crate::plan::{self, Planned, Zones};
use crate::route53::{self, Route53, Route53Error};

/// How long any one check may take before it counts as failed. The SDK's
/// IMDS client gives up on a silent endpoint after about five seconds (four
/// attempts of one second each); this only guards against a hang.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// A change id Route 53 never hands out (its ids are shorter), asked about
/// to learn whether GetChange is allowed without following a real change.
const PROBE_CHANGE_ID: &str = "CROUTE53AGENTDOCTORPROBE";

/// How many characters of the access key id may be shown: enough to tell a
/// long-term key (`AKIA`) from a temporary one (`ASIA`), no more.
const KEY_ID_SHOWN: usize = 4;

/// The verdict of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, and worth knowing (a public address in a private zone).
    Note,
    /// Works for now, but something deserves attention (a tag not yet set).
    Warn,
    /// Would stop the agent from working.
    Fail,
    /// Not checked, because an earlier check failed.
    Skipped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Note => "note",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        })
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    pub check: &'static str,
    pub explanation: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4}  {:<12} {}",
            self.status.to_string(),
            self.check,
            self.explanation
        )
    }
}

/// Every finding, in the order the checks ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when nothing found would stop the agent from working.
    pub fn passed(&self) -> bool {
        self.findings
            .iter()
            .all(|finding| matches!(finding.status, Status::Ok | Status::Note | Status::Warn))
    }

    fn add(&mut self, status: Status, check: &'static str, explanation: impl Into<String>) {
        self.findings.push(Finding {
            status,
            check,
            explanation: explanation.into(),
        });
    }
}

/// Runs every check against this machine's IMDS and Route 53.
pub async fn run(config: &Config) -> Report {
    let mut report = Report::default();
    let needs = Needs::of(config);

    let http_client = http::client();
    let facts = check_metadata(&needs, http_client.clone(), &mut report).await;
    check_tags(&needs, facts.as_ref(), &mut report);

    let shared = route53::load_aws_settings(http_client).await;
    check_credentials(&shared, &mut report).await;

    let route53 = Route53::from_settings(&shared, config.request_timeout);
    let zones = check_zones(&route53, config, &mut report).await;
    check_zone_kinds(config, &zones, &mut report);
    check_record_reads(&route53, &zones, &mut report).await;
    check_get_change(&route53, config, &mut report).await;
    check_names(config, facts.as_ref(), &zones, &mut report);
    report
}

/// Runs `check`, turning a hang into a failure.
async fn bounded<T>(check: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer within {}",
                humantime::format_duration(CHECK_TIMEOUT)
            ))
        })
}

async fn check_metadata(
    needs: &Needs,
    http_client: SharedHttpClient,
    report: &mut Report,
) -> Option<InstanceFacts> {
    let mut metadata = Metadata::from_env(http_client);
    let read = bounded(async { metadata.read(needs).await.map_err(|e| e.to_string()) }).await;
    match read {
        Ok(facts) => {
            let explanation = match needs.imds {
                true => format!("IMDSv2 answers: {}", facts.describe()),
                false => format!(
                    "not needed: only ECS task values are used ({})",
                    facts.describe()
                ),
            };
            report.add(Status::Ok, "imds", explanation);
            Some(facts)
        }
        Err(why) => {
            report.add(
                Status::Fail,
                "imds",
                format!(
                    "the instance metadata cannot be read, so no name or address is known: {why}"
                ),
            );
            None
        }
    }
}

fn check_tags(needs: &Needs, facts: Option<&InstanceFacts>, report: &mut Report) {
    if needs.tag_keys.is_empty() {
        report.add(
            Status::Ok,
            "tags",
            "no name uses an instance tag, so metadata tags are not needed",
        );
        return;
    }
    let keys = needs.tag_keys.join(", ");
    let Some(facts) = facts else {
        report.add(
            Status::Skipped,
            "tags",
            format!("names use tag(s) {keys}; not checked without instance metadata"),
        );
        return;
    };
    let Some(tags) = &facts.tags else {
        report.add(
            Status::Fail,
            "tags",
            format!(
                "names use tag(s) {keys}, but instance metadata tags are not enabled on \
                 this instance; enable them with `aws ec2 modify-instance-metadata-options \
                 --instance-id {} --instance-metadata-tags enabled` (or \
                 InstanceMetadataTags=enabled in the launch template)",
                facts.instance_id
            ),
        );
        return;
    };
    let missing: Vec<&str> = needs
        .tag_keys
        .iter()
        .map(String::as_str)
        .filter(|key| !tags.contains_key(*key))
        .collect();
    if missing.is_empty() {
        let found: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        report.add(Status::Ok, "tags", format!("found {}", found.join(", ")));
    } else {
        report.add(
            Status::Warn,
            "tags",
            format!(
                "the instance has no tag {} yet; its records wait until the tag is set",
                missing.join(", ")
            ),
        );
    }
}

async fn check_credentials(shared: &SdkConfig, report: &mut Report) {
    let Some(provider) = shared.credentials_provider() else {
        report.add(
            Status::Fail,
            "credentials",
            "no AWS credentials provider is configured",
        );
        return;
    };
    let found = bounded(async {
        provider
            .provide_credentials()
            .await
            .map_err(|error| crate::error_chain(&error))
    })
    .await;
    match found {
        Ok(credentials) => report.add(
            Status::Ok,
            "credentials",
            describe_credentials(&credentials),
        ),
        Err(why) => report.add(
            Status::Fail,
            "credentials",
            format!(
                "no AWS credentials found (on EC2, attach an instance profile with a role \
                 that has the `iam-policy` policy): {why}"
            ),
        ),
    }
}

/// Where the credentials came from and the start of the key id; never the
/// secret or the session token.
fn describe_credentials(credentials: &Credentials) -> String {
    let source = credentials
        .get_property::<Vec<AwsCredentialFeature>>()
        .and_then(|features| features.iter().find_map(source_name))
        .unwrap_or("the default credentials chain");
    let key_id: String = credentials
        .access_key_id()
        .chars()
        .take(KEY_ID_SHOWN)
        .collect();
    let kind = if credentials.session_token().is_some() {
        "temporary"
    } else {
        "long-term"
    };
    format!("{kind} credentials from {source} (access key id {key_id}…)")
}

fn source_name(feature: &AwsCredentialFeature) -> Option<&'static str> {
    use AwsCredentialFeature as F;
    Some(match feature {
        F::CredentialsEnvVars => "environment variables",
        F::CredentialsImds => "the instance profile (IMDS)",
        F::CredentialsHttp => "the container credentials endpoint",
        F::CredentialsEnvVarsStsWebIdToken | F::CredentialsStsAssumeRoleWebId => {
            "a web identity token"
        }
        F::CredentialsProfile
        | F::CredentialsProfileSourceProfile
        | F::CredentialsProfileNamedProvider
        | F::CredentialsProfileStsWebIdToken
        | F::CredentialsProfileProcess
        | F::CredentialsProfileSso
        | F::CredentialsProfileLogin => "an AWS config profile",
        F::CredentialsSso => "an SSO session",
        F::CredentialsProcess => "a credential process",
        F::CredentialsStsAssumeRole => "an assumed role",
        _ => return None,
    })
}

/// Looks up every configured zone, by id or by name and kind.
async fn check_zones(route53: &Route53, config: &Config, report: &mut Report) -> Zones {
    let mut zones = Zones::new();
    for zone_ref in config.zones() {
        let found = bounded(async { route53.zone(zone_ref).await.map_err(|e| explain(&e)) }).await;
        match found {
            Ok(zone) => {
                report.add(
                    Status::Ok,
                    "zone",
                    match zone_ref {
                        ZoneRef::Id(_) => format!("hosted zone {} is {}", zone.id, zone.name),
                        ZoneRef::Name { .. } => format!("hosted zone {zone_ref} is {}", zone.id),
                    },
                );
                zones.insert(zone_ref.clone(), zone);
            }
            Err(why) => report.add(
                Status::Fail,
                "zone",
                format!("hosted zone {zone_ref}: {why}"),
            ),
        }
    }
    zones
}

/// Whether each record's zone is of the kind its value calls for: a
/// private address in a public zone is published to the world (a warning),
/// a public address in a private zone is seen only inside its VPCs (a
/// note). PTR records are left out: their zone is the reverse zone.
fn check_zone_kinds(config: &Config, zones: &Zones, report: &mut Report) {
    for spec in &config.records {
        let Some(zone) = zones.get(&spec.zone) else {
            continue;
        };
        let kind = if zone.private { "private" } else { "public" };
        let private_value = matches!(
            spec.value,
            ValueSource::LocalIpv4 | ValueSource::LocalHostname | ValueSource::TaskIpv4
        );
        let public_value = matches!(
            spec.value,
            ValueSource::PublicIpv4 | ValueSource::PublicHostname
        );
        let publishes = format!(
            "record `{}` publishes {} in {kind} hosted zone {} ({})",
            spec.name, spec.value, zone.id, zone.name
        );
        match (zone.private, private_value, public_value) {
            (false, true, _) => report.add(
                Status::Warn,
                "kind",
                format!(
                    "{publishes}: a private address, published for anyone to resolve; use a \
                     private hosted zone unless that is meant"
                ),
            ),
            (true, _, true) => report.add(
                Status::Note,
                "kind",
                format!("{publishes}: a public address, seen only inside the zone's VPCs"),
            ),
            _ => report.add(Status::Ok, "kind", publishes),
        }
    }
}

/// Reads the record sets at every found zone's apex.
async fn check_record_reads(route53: &Route53, zones: &Zones, report: &mut Report) {
    for zone in zones.values() {
        let listed = bounded(async {
            route53
                .sets_at(&zone.id, &zone.name)
                .await
                .map_err(|e| explain(&e))
        })
        .await;
        match listed {
            Ok(_) => report.add(
                Status::Ok,
                "route53",
                format!("ListResourceRecordSets allowed on {}", zone.id),
            ),
            Err(why) => report.add(Status::Fail, "route53", format!("{}: {why}", zone.id)),
        }
    }
}

/// Whether GetChange is allowed, asked about a change that cannot exist:
/// `NoSuchChange` means the call was allowed. Only `wait_insync`,
/// `drain = "ttl"` and `register --wait` need it, so without those a denial
/// is a warning.
async fn check_get_change(route53: &Route53, config: &Config, report: &mut Report) {
    let probed = bounded(async { Ok(route53.probe_get_change(PROBE_CHANGE_ID).await) }).await;
    let error = match probed {
        Ok(Ok(())) => None,
        Ok(Err(error)) if error.code.as_deref() == Some("NoSuchChange") => None,
        Ok(Err(error)) => Some(error),
        Err(why) => {
            report.add(Status::Fail, "route53", format!("GetChange: {why}"));
            return;
        }
    };
    let Some(error) = error else {
        report.add(
            Status::Ok,
            "route53",
            "GetChange allowed (asked about a change that cannot exist)",
        );
        return;
    };
    let denied = matches!(
        error.code.as_deref(),
        Some("AccessDenied" | "AccessDeniedException")
    );
    let needed = config.wait_insync || config.drain == Drain::Ttl;
    let status = if denied && !needed {
        Status::Warn
    } else {
        Status::Fail
    };
    let explanation = if denied {
        format!(
            "{}; wait_insync, drain = \"ttl\" and register --wait follow changes with it",
            explain(&error)
        )
    } else {
        explain(&error)
    };
    report.add(status, "route53", explanation);
}

fn check_names(config: &Config, facts: Option<&InstanceFacts>, zones: &Zones, report: &mut Report) {
    let Some(facts) = facts else {
        // Without facts the names cannot be rendered, but whether every
        // template can only land inside its zone is known already.
        match plan::check_zones(config, zones) {
            Ok(()) => report.add(
                Status::Skipped,
                "names",
                "every name fits its zone; rendered names need the instance metadata",
            ),
            Err(error) => report.add(Status::Fail, "names", error.to_string()),
        }
        return;
    };
    for (slot, planned) in plan::plan(config, facts, zones) {
        let spec = &config.records[slot.index];
        match planned {
            Planned::Ready(record) => report.add(
                Status::Ok,
                "names",
                format!(
                    "{} {} -> {} in zone {}",
                    record.name,
                    record.record_type,
                    record.values.join(" "),
                    record.zone_id
                ),
            ),
            Planned::Waiting { why, .. } => {
                report.add(Status::Warn, "names", format!("`{}`: {why}", spec.name))
            }
            Planned::Failed(error) => report.add(Status::Fail, "names", error.to_string()),
        }
    }
}

/// A failed Route 53 call in plain words, keeping the service's own code.
fn explain(error: &Route53Error) -> String {
    let advice = match error.code.as_deref() {
        Some("NoSuchHostedZone") => "check zone_id or zone in the configuration",
        Some("AmbiguousHostedZone") => "set private = true or false beside zone",
        Some("AccessDenied" | "AccessDeniedException") => {
            "the credentials may not make this call; attach the policy `iam-policy` prints"
        }
        Some("InvalidInput") => "Route 53 refused the zone id",
        _ => "",
    };
    if advice.is_empty() {
        error.to_string()
    } else {
        format!("{error}: {advice}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ZoneId, ZoneRef};
    use crate::dns::DnsName;
    use crate::plan::Zone;

    fn finding(status: Status) -> Finding {
        Finding {
            status,
            check: "imds",
            explanation: "why".into(),
        }
    }

    #[test]
    fn warnings_pass_and_failures_or_skips_do_not() {
        let mut report = Report::default();
        report.findings.push(finding(Status::Ok));
        report.findings.push(finding(Status::Warn));
        report.findings.push(finding(Status::Note));
        assert!(report.passed());
        report.findings.push(finding(Status::Skipped));
        assert!(!report.passed());
        report.findings[3] = finding(Status::Fail);
        assert!(!report.passed());
    }

    #[test]
    fn a_line_starts_with_its_status() {
        assert_eq!(finding(Status::Fail).to_string(), "FAIL  imds         why");
    }

    #[test]
    fn credentials_show_their_source_and_no_secret() {
        let mut credentials = Credentials::new(
            "AKIAEXAMPLEKEYID1234",
            "secret-that-must-not-show",
            Some("session-token-that-must-not-show".into()),
            None,
            "test",
        );
        credentials
            .get_property_mut_or_default::<Vec<AwsCredentialFeature>>()
            .push(AwsCredentialFeature::CredentialsEnvVars);
        let text = describe_credentials(&credentials);
        assert_eq!(
            text,
            "temporary credentials from environment variables (access key id AKIA…)"
        );
        assert!(!text.contains("secret") && !text.contains("session-token"));
        assert!(!text.contains("EXAMPLE"));
    }

    #[test]
    fn names_check_uses_the_zone_fit_when_metadata_is_missing() {
        let config = Config::from_toml(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.elsewhere.example.org"
            "#,
        )
        .unwrap();
        let id = ZoneId::parse("ZA").unwrap();
        let zones = Zones::from([(
            ZoneRef::Id(id.clone()),
            Zone {
                id,
                name: DnsName::parse("example.com").unwrap(),
                private: false,
            },
        )]);
        let mut report = Report::default();
        check_names(&config, None, &zones, &mut report);
        assert_eq!(report.findings[0].status, Status::Fail);
        assert!(
            report.findings[0]
                .explanation
                .contains("outside hosted zone"),
            "{:?}",
            report.findings
        );
    }
}
