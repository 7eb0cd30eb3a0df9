//! `doctor`: checks, one by one, what the agent needs in order to work on
//! this machine, and explains each answer in plain words.
//!
//! The checks follow the order in which the agent itself would trip on
//! them: instance metadata (IMDSv2), instance tags, AWS credentials, the
//! hosted zones and the Route 53 read calls, and finally the names the
//! records would take. Doctor never writes to Route 53, so it cannot prove
//! that ChangeResourceRecordSets is allowed; `iam-policy` prints the policy
//! that allows it.
//!
//! Doctor loads the standard AWS settings itself, the same way the agent's
//! Route 53 client does, because the credentials check needs the loaded
//! settings and not only a client.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::SdkConfig;
use aws_config::meta::region::RegionProviderChain;
use aws_credential_types::Credentials;
use aws_credential_types::credential_feature::AwsCredentialFeature;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::Region;
use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::config::Config;
use crate::dns::DnsName;
use crate::metadata::{InstanceFacts, Metadata, Needs};
use crate::plan::{self, Planned, ZoneNames};

/// How long any one check may take before it counts as failed. The SDK's
/// IMDS client gives up on a silent endpoint after about five seconds (four
/// attempts of one second each); this only guards against a hang.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Route 53's control plane region, used when no region is configured.
const HOME_REGION: &str = "us-east-1";

/// How many characters of the access key id may be shown: enough to tell a
/// long-term key (`AKIA`) from a temporary one (`ASIA`), no more.
const KEY_ID_SHOWN: usize = 4;

/// The verdict of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
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
            .all(|finding| matches!(finding.status, Status::Ok | Status::Warn))
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

    let facts = check_metadata(&needs, &mut report).await;
    check_tags(&needs, facts.as_ref(), &mut report);

    let shared = load_aws_settings().await;
    check_credentials(&shared, &mut report).await;

    let client = Client::new(&shared);
    let zones = check_zones(&client, config, &mut report).await;
    check_record_reads(&client, &zones, &mut report).await;
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

async fn check_metadata(needs: &Needs, report: &mut Report) -> Option<InstanceFacts> {
    let mut metadata = Metadata::from_env();
    let read = bounded(async { metadata.read(needs).await.map_err(|e| e.to_string()) }).await;
    match read {
        Ok(facts) => {
            report.add(
                Status::Ok,
                "imds",
                format!(
                    "IMDSv2 answers: instance {} in {} ({})",
                    facts.instance_id, facts.az, facts.region
                ),
            );
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

/// The standard AWS settings, with Route 53's home region as the last
/// resort, as the agent loads them.
async fn load_aws_settings() -> SdkConfig {
    let region = RegionProviderChain::default_provider().or_else(Region::new(HOME_REGION));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await
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
            .map_err(|error| DisplayErrorContext(&error).to_string())
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

/// GetHostedZone on every configured zone.
async fn check_zones(client: &Client, config: &Config, report: &mut Report) -> ZoneNames {
    let mut zones = ZoneNames::new();
    for zone_id in config.zone_ids() {
        let found = bounded(async {
            client
                .get_hosted_zone()
                .id(zone_id.as_str())
                .send()
                .await
                .map_err(|error| explain_call("GetHostedZone", error))
        })
        .await;
        let zone = match found {
            Ok(output) => output.hosted_zone().cloned(),
            Err(why) => {
                report.add(
                    Status::Fail,
                    "zone",
                    format!("hosted zone {zone_id}: {why}"),
                );
                continue;
            }
        };
        let Some(zone) = zone else {
            report.add(
                Status::Fail,
                "zone",
                format!("hosted zone {zone_id}: GetHostedZone answered without a zone"),
            );
            continue;
        };
        let private = zone.config().is_some_and(|config| config.private_zone());
        let name = DnsName::from_route53(zone.name());
        // When the configuration can say which kind of zone it expects,
        // compare it here.
        report.add(
            Status::Ok,
            "zone",
            format!(
                "hosted zone {zone_id} is {name} ({})",
                if private { "private" } else { "public" }
            ),
        );
        zones.insert(zone_id.clone(), name);
    }
    zones
}

/// ListResourceRecordSets (one item) on every zone that was found.
async fn check_record_reads(client: &Client, zones: &ZoneNames, report: &mut Report) {
    for zone_id in zones.keys() {
        let listed = bounded(async {
            client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id.as_str())
                .max_items(1)
                .send()
                .await
                .map_err(|error| explain_call("ListResourceRecordSets", error))
        })
        .await;
        match listed {
            Ok(_) => report.add(
                Status::Ok,
                "route53",
                format!("GetHostedZone and ListResourceRecordSets allowed on {zone_id}"),
            ),
            Err(why) => report.add(Status::Fail, "route53", format!("{zone_id}: {why}")),
        }
    }
}

fn check_names(
    config: &Config,
    facts: Option<&InstanceFacts>,
    zones: &ZoneNames,
    report: &mut Report,
) {
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
    for (spec, planned) in config.records.iter().zip(plan::plan(config, facts, zones)) {
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
            Planned::Waiting(why) => {
                report.add(Status::Warn, "names", format!("`{}`: {why}", spec.name))
            }
            Planned::Failed(error) => report.add(Status::Fail, "names", error.to_string()),
        }
    }
}

/// A failed Route 53 call in plain words, keeping the service's own code.
fn explain_call<E>(action: &str, error: SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let service = error.as_service_error();
    let code = service.and_then(|e| e.code()).unwrap_or_default();
    let message = service.and_then(|e| e.message()).unwrap_or_default();
    let advice = match code {
        "NoSuchHostedZone" => "no hosted zone has this id; check zone_id in the configuration",
        "AccessDenied" | "AccessDeniedException" => {
            "the credentials may not make this call; attach the policy `iam-policy` prints"
        }
        "InvalidInput" => "Route 53 refused the zone id",
        _ if code.is_empty() => {
            return format!(
                "{action} did not reach Route 53: {}",
                DisplayErrorContext(&error)
            );
        }
        _ => "",
    };
    let mut text = format!("{action} failed with {code}");
    if !message.is_empty() {
        text.push_str(&format!(" ({message})"));
    }
    if !advice.is_empty() {
        text.push_str(&format!(": {advice}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ZoneId;

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
        assert!(report.passed());
        report.findings.push(finding(Status::Skipped));
        assert!(!report.passed());
        report.findings[2] = finding(Status::Fail);
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
        let mut zones = ZoneNames::new();
        zones.insert(
            ZoneId::parse("ZA").unwrap(),
            DnsName::parse("example.com").unwrap(),
        );
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
