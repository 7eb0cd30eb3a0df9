//! What the instance knows about itself, read from the instance metadata
//! service (IMDSv2 only).
//!
//! The SDK's IMDS client ([`aws_config::imds::Client`]) owns the protocol: it
//! fetches and refreshes the session token, retries 5xx and 401 answers, and
//! honours `AWS_EC2_METADATA_SERVICE_ENDPOINT` and `_MODE`. It does not drop
//! a token that IMDS stopped accepting (after an IMDS restart, say): it keeps
//! sending it until the token's own TTL runs out, up to six hours. So when a
//! read still ends in 401, [`Metadata::read`] builds a new client, which
//! fetches a new token, and tries the pass once more. This module owns
//! what the answers mean: which paths to read, what a 404 says, and that every
//! body is checked before it can reach a record (an HTML error page is not an
//! address).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use aws_config::imds::client::error::ImdsError;

use crate::config::{Config, ValueSource};
use crate::dns::{DnsName, check_hostname_label};
use crate::ecs::{EcsError, TaskFacts, TaskMetadata};
use crate::retry::{Class, Classify};
use crate::template::{Field, FieldValues};

/// How much of an unexpected body an error may quote.
const BODY_EXCERPT_LEN: usize = 60;

/// The facts the records are made from, read in one pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceFacts {
    /// Empty, like `region` and `az`, when the configuration needs nothing
    /// from instance metadata (an ECS task using only task values).
    pub instance_id: String,
    pub region: String,
    pub az: String,
    /// `None` when the instance has no such address (IMDS answered 404).
    pub local_ipv4: Option<Ipv4Addr>,
    pub public_ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// The first of the names IMDS lists (it may list several).
    pub local_hostname: Option<DnsName>,
    pub public_hostname: Option<DnsName>,
    /// Why the instance is leaving service, when a lifecycle notice says so
    /// (a spot interruption, an Auto Scaling target state other than
    /// InService).
    pub leaving: Option<String>,
    /// `None` when instance metadata tags are not enabled, or not needed.
    pub tags: Option<BTreeMap<String, String>>,
    /// The ECS task, when the configuration uses task values.
    pub task: Option<TaskFacts>,
    /// Why the task metadata could not be read, when it was needed: only
    /// the records that use task values fail, the others are written.
    pub task_error: Option<String>,
    /// Values IMDS answered with something that is not what the path holds
    /// (an error page where an address belongs), with the error naming the
    /// path. The value itself is `None` above; only the records that use it
    /// fail, the others are written.
    pub bad_values: Vec<(ValueSource, String)>,
}

impl InstanceFacts {
    /// Where the facts come from, for people: the instance, and the task.
    pub fn describe(&self) -> String {
        let task = self
            .task
            .as_ref()
            .map(|task| format!("ECS task {} in cluster {}", task.task_id, task.cluster));
        let instance = (!self.instance_id.is_empty()).then(|| {
            format!(
                "instance {} in {} ({})",
                self.instance_id, self.az, self.region
            )
        });
        match (instance, task) {
            (Some(instance), Some(task)) => format!("{task} on {instance}"),
            (Some(instance), None) => instance,
            (None, Some(task)) => task,
            (None, None) => "nothing (no value needs instance or task metadata)".into(),
        }
    }

    /// Who owns the records this agent writes, as its markers say: the ECS
    /// task when the agent serves a task (several tasks share one
    /// instance), the instance otherwise.
    pub fn owner_id(&self) -> &str {
        match &self.task {
            Some(task) => &task.task_id,
            None => &self.instance_id,
        }
    }
}

impl FieldValues for InstanceFacts {
    fn instance_id(&self) -> &str {
        &self.instance_id
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn az(&self) -> &str {
        &self.az
    }
    fn tags(&self) -> Option<&BTreeMap<String, String>> {
        self.tags.as_ref()
    }
    fn task(&self) -> Option<(&str, &str)> {
        self.task
            .as_ref()
            .map(|task| (task.task_id.as_str(), task.cluster.as_str()))
    }
}

/// Which optional paths the configuration uses. Reading only those keeps each
/// poll to a handful of requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Whether anything comes from instance metadata at all.
    pub imds: bool,
    /// Whether anything comes from the ECS task metadata endpoint.
    pub task: bool,
    pub local_ipv4: bool,
    pub public_ipv4: bool,
    pub ipv6: bool,
    pub local_hostname: bool,
    pub public_hostname: bool,
    /// Lifecycle notices to read: `spot/instance-action`,
    /// `autoscaling/target-lifecycle-state`.
    pub spot: bool,
    pub autoscaling: bool,
    /// Tag keys used by name templates.
    pub tag_keys: Vec<String>,
}

impl Needs {
    pub fn of(config: &Config) -> Self {
        let mut needs = Needs {
            spot: config.lifecycle.spot,
            autoscaling: config.lifecycle.autoscaling,
            ..Needs::default()
        };
        for record in &config.records {
            match record.value {
                ValueSource::TaskIpv4 => needs.task = true,
                ValueSource::LocalIpv4 => needs.local_ipv4 = true,
                ValueSource::PublicIpv4 => needs.public_ipv4 = true,
                ValueSource::Ipv6 => needs.ipv6 = true,
                ValueSource::LocalHostname => needs.local_hostname = true,
                ValueSource::PublicHostname => needs.public_hostname = true,
            }
            for field in record.fields() {
                match field {
                    Field::Tag(key) if !needs.tag_keys.contains(key) => {
                        needs.tag_keys.push(key.clone())
                    }
                    _ => {}
                }
                match field.is_task() {
                    true => needs.task = true,
                    false => needs.imds = true,
                }
            }
        }
        needs.imds |= needs.local_ipv4
            || needs.public_ipv4
            || needs.ipv6
            || needs.local_hostname
            || needs.public_hostname;
        // Lifecycle notices are the instance's; a task sidecar that needs
        // nothing else from IMDS (which ECS may block for awsvpc tasks)
        // learns that it is stopping from its SIGTERM instead.
        if !needs.imds {
            needs.spot = false;
            needs.autoscaling = false;
        }
        needs
    }
}

/// Why the metadata could not be read, or could not be believed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Task(#[from] EcsError),
    #[error("cannot read {path} from the instance metadata service: {detail}")]
    Fetch {
        path: String,
        detail: String,
        #[source]
        source: Box<ImdsError>,
    },
    #[error("instance metadata {path} is missing (404); is this an EC2 instance?")]
    Missing { path: String },
    #[error(
        "instance metadata {path} answered {excerpt:?}, which is not an {kind} address; \
         nothing was published from it"
    )]
    NotAnAddress {
        path: String,
        kind: &'static str,
        excerpt: String,
    },
    #[error(
        "instance metadata {path} answered {excerpt:?}, which is not a plausible {what}; \
         nothing was published from it"
    )]
    Implausible {
        path: String,
        what: &'static str,
        excerpt: String,
    },
}

impl MetadataError {
    fn is_unauthorized(&self) -> bool {
        matches!(self, MetadataError::Fetch { source, .. }
            if matches!(source.as_ref(), ImdsError::ErrorResponse(response)
                if response.response().status().as_u16() == 401))
    }
}

/// Which failed reads are worth another attempt. `run` reads again at its
/// next poll whatever the failure; this is for `register`, which must end
/// registered and so tries again while that can help.
///
/// - IMDS not answering (refused or timed-out connections, 5xx after the
///   SDK client's own attempts, a token it stopped accepting) may mend: at
///   boot the network or IMDS may not be up yet. Retryable.
/// - A token PUT that IMDS never answers is the container hop-limit
///   symptom, and a 403 means IMDS is switched off or the request went
///   through a proxy: instance settings, which asking again does not
///   change. Final.
/// - An answer that is there but wrong stays wrong: an identity path
///   missing (not EC2, or an endpoint that is not IMDS) or garbage where
///   the instance id, region or zone belongs. Final. (Garbage in a value,
///   tags switched off and an unreadable ECS task fail only the records
///   that use them: none of these reaches here.)
impl Classify for MetadataError {
    fn class(&self) -> Class {
        match self {
            MetadataError::Fetch { source, .. } => match source.as_ref() {
                ImdsError::FailedToLoadToken(_) if token_put_timed_out(source) => Class::Final,
                ImdsError::ErrorResponse(response)
                    if response.response().status().as_u16() == 403 =>
                {
                    Class::Final
                }
                _ => Class::Retryable,
            },
            MetadataError::Task(_)
            | MetadataError::Missing { .. }
            | MetadataError::NotAnAddress { .. }
            | MetadataError::Implausible { .. } => Class::Final,
        }
    }
}

/// Reads instance facts through the SDK's IMDSv2 client.
#[derive(Clone, Debug)]
pub struct Metadata {
    client: aws_config::imds::Client,
    task: TaskMetadata,
}

impl Metadata {
    /// A client configured from the standard AWS settings
    /// (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, `..._ENDPOINT_MODE`).
    pub fn from_env() -> Self {
        Metadata {
            client: aws_config::imds::Client::builder().build(),
            task: TaskMetadata::from_env(),
        }
    }

    /// Reads every fact `needs` asks for. A pass that ends in 401 is tried
    /// once more with a new session token.
    pub async fn read(&mut self, needs: &Needs) -> Result<InstanceFacts, MetadataError> {
        match self.read_once(needs).await {
            Err(error) if error.is_unauthorized() => {
                tracing::debug!("IMDS refused the session token; fetching a new one");
                self.client = aws_config::imds::Client::builder().build();
                self.read_once(needs).await
            }
            other => other,
        }
    }

    async fn read_once(&self, needs: &Needs) -> Result<InstanceFacts, MetadataError> {
        let (task, task_error) = match needs.task {
            true => match self.task.read().await {
                Ok(task) => (Some(task), None),
                Err(error) => (None, Some(error.to_string())),
            },
            false => (None, None),
        };
        if !needs.imds {
            return Ok(InstanceFacts {
                instance_id: String::new(),
                region: String::new(),
                az: String::new(),
                local_ipv4: None,
                public_ipv4: None,
                ipv6: None,
                local_hostname: None,
                public_hostname: None,
                leaving: None,
                tags: None,
                task,
                task_error,
                bad_values: Vec::new(),
            });
        }
        let instance_id = self.required("instance-id").await?;
        check_plain(&instance_id, "instance-id", "instance id")?;
        let region = self.required("placement/region").await?;
        check_plain(&region, "placement/region", "region")?;
        let az = self.required("placement/availability-zone").await?;
        check_plain(&az, "placement/availability-zone", "availability zone")?;

        // A garbage value fails only the records that use it; a path that
        // cannot be read at all fails the pass, and the records stay as
        // they are.
        let mut bad = Vec::new();
        let local_ipv4 = self.address_if(needs.local_ipv4, "local-ipv4").await;
        let local_ipv4 = set_aside(&mut bad, ValueSource::LocalIpv4, local_ipv4)?;
        let public_ipv4 = self.address_if(needs.public_ipv4, "public-ipv4").await;
        let public_ipv4 = set_aside(&mut bad, ValueSource::PublicIpv4, public_ipv4)?;
        let ipv6 = self.address_if(needs.ipv6, "ipv6").await;
        let ipv6 = set_aside(&mut bad, ValueSource::Ipv6, ipv6)?;
        let local_hostname = self
            .hostname_if(needs.local_hostname, "local-hostname")
            .await;
        let local_hostname = set_aside(&mut bad, ValueSource::LocalHostname, local_hostname)?;
        let public_hostname = self
            .hostname_if(needs.public_hostname, "public-hostname")
            .await;
        let public_hostname = set_aside(&mut bad, ValueSource::PublicHostname, public_hostname)?;
        let tags = if needs.tag_keys.is_empty() {
            None
        } else {
            self.tags(&needs.tag_keys).await?
        };
        let spot = match needs.spot {
            true => self.optional("spot/instance-action").await?,
            false => None,
        };
        let target_state = match needs.autoscaling {
            true => self.optional("autoscaling/target-lifecycle-state").await?,
            false => None,
        };

        Ok(InstanceFacts {
            instance_id,
            region,
            az,
            local_ipv4,
            public_ipv4,
            ipv6,
            local_hostname,
            public_hostname,
            leaving: leaving(spot.as_deref(), target_state.as_deref()),
            tags,
            task,
            task_error,
            bad_values: bad,
        })
    }

    /// GET one path; `Ok(None)` on 404.
    async fn optional(&self, path: &str) -> Result<Option<String>, MetadataError> {
        match self.client.get(format!("/latest/meta-data/{path}")).await {
            Ok(body) => Ok(Some(String::from(body).trim().to_string())),
            Err(ImdsError::ErrorResponse(response))
                if response.response().status().as_u16() == 404 =>
            {
                Ok(None)
            }
            Err(source) => Err(MetadataError::Fetch {
                path: path.to_string(),
                detail: describe(&source),
                source: Box::new(source),
            }),
        }
    }

    async fn required(&self, path: &str) -> Result<String, MetadataError> {
        self.optional(path)
            .await?
            .ok_or_else(|| MetadataError::Missing {
                path: path.to_string(),
            })
    }

    async fn address_if<A: FromStr>(
        &self,
        wanted: bool,
        path: &str,
    ) -> Result<Option<A>, MetadataError> {
        if !wanted {
            return Ok(None);
        }
        match self.optional(path).await? {
            None => Ok(None),
            Some(body) => parse_address(path, &body).map(Some),
        }
    }

    async fn hostname_if(
        &self,
        wanted: bool,
        path: &str,
    ) -> Result<Option<DnsName>, MetadataError> {
        if !wanted {
            return Ok(None);
        }
        match self.optional(path).await? {
            None => Ok(None),
            Some(body) => parse_hostname(path, &body).map(Some),
        }
    }

    /// Reads the wanted tags. `Ok(None)` when metadata tags are not enabled:
    /// IMDS then answers 404 for the whole `tags/instance` tree.
    async fn tags(
        &self,
        keys: &[String],
    ) -> Result<Option<BTreeMap<String, String>>, MetadataError> {
        let Some(listing) = self.optional("tags/instance").await? else {
            return Ok(None);
        };
        let present: Vec<&str> = listing.lines().map(str::trim).collect();
        let mut tags = BTreeMap::new();
        for key in keys.iter().filter(|key| present.contains(&key.as_str())) {
            // A tag removed between the listing and this read is simply absent.
            if let Some(value) = self.optional(&format!("tags/instance/{key}")).await? {
                tags.insert(key.clone(), value);
            }
        }
        Ok(Some(tags))
    }
}

/// Keeps a value that IMDS answered with garbage out of the facts and notes
/// why, so that only the records using it fail. Other failures (IMDS did
/// not answer) are returned as they are.
fn set_aside<T>(
    bad_values: &mut Vec<(ValueSource, String)>,
    source: ValueSource,
    read: Result<Option<T>, MetadataError>,
) -> Result<Option<T>, MetadataError> {
    match read {
        Err(error @ (MetadataError::NotAnAddress { .. } | MetadataError::Implausible { .. })) => {
            bad_values.push((source, error.to_string()));
            Ok(None)
        }
        other => other,
    }
}

/// Parses an address body, refusing anything else (an error page, a list).
fn parse_address<A: FromStr>(path: &str, body: &str) -> Result<A, MetadataError> {
    body.parse().map_err(|_| MetadataError::NotAnAddress {
        path: path.to_string(),
        kind: if path == "ipv6" { "IPv6" } else { "IPv4" },
        excerpt: excerpt(body),
    })
}

/// Reads the lifecycle notices: why the instance is leaving service, if it
/// is. A spot notice is JSON (`{"action": "terminate", "time": "..."}`); one
/// that does not parse is not believed, since deregistering on a garbled
/// answer would take a healthy instance out of DNS. Auto Scaling's target
/// states that mean "out of service" are Terminated, Standby, Detached and
/// Warmed:* (a warm pool); InService, and states not known here, keep the
/// records.
pub fn leaving(spot: Option<&str>, target_state: Option<&str>) -> Option<String> {
    if let Some(notice) = spot.and_then(spot_notice) {
        return Some(notice);
    }
    let state = target_state?.trim();
    let out_of_service =
        matches!(state, "Terminated" | "Standby" | "Detached") || state.starts_with("Warmed:");
    out_of_service.then(|| format!("Auto Scaling target lifecycle state is {state}"))
}

fn spot_notice(body: &str) -> Option<String> {
    let notice: serde_json::Value = serde_json::from_str(body).ok()?;
    let action = notice.get("action")?.as_str()?;
    let time = notice
        .get("time")
        .and_then(|time| time.as_str())
        .unwrap_or("soon");
    Some(format!("spot interruption notice: {action} at {time}"))
}

/// A hostname body may list several names separated by spaces: the first is
/// the instance's own. Every word must be a plausible host name, so that an
/// error page ("Service Unavailable", "404 - Not Found") is refused whole
/// instead of being cut down to a first word that happens to parse as a
/// name.
fn parse_hostname(path: &str, body: &str) -> Result<DnsName, MetadataError> {
    let mut names = body.split_whitespace().map(plausible_hostname);
    match (names.next(), names.all(|name| name.is_some())) {
        (Some(Some(first)), true) => Ok(first),
        _ => Err(MetadataError::Implausible {
            path: path.to_string(),
            what: "host name",
            excerpt: excerpt(body),
        }),
    }
}

/// A host name as IMDS gives them (`ip-10-0-0-10.ec2.internal`): two labels
/// or more, each of letters, digits and inner hyphens.
fn plausible_hostname(word: &str) -> Option<DnsName> {
    let labels: Vec<&str> = word.trim_end_matches('.').split('.').collect();
    let plausible = labels.len() >= 2
        && labels
            .iter()
            .all(|label| check_hostname_label(label).is_ok());
    plausible.then(|| DnsName::parse(word).ok()).flatten()
}

/// Identity values are single tokens: letters, digits and hyphens.
fn check_plain(value: &str, path: &str, what: &'static str) -> Result<(), MetadataError> {
    let plain = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if plain {
        Ok(())
    } else {
        Err(MetadataError::Implausible {
            path: path.to_string(),
            what,
            excerpt: excerpt(value),
        })
    }
}

fn excerpt(body: &str) -> String {
    body.chars().take(BODY_EXCERPT_LEN).collect()
}

/// Explains an IMDS failure in terms a person can act on.
fn describe(error: &ImdsError) -> String {
    match error {
        ImdsError::FailedToLoadToken(_) if token_put_timed_out(error) => {
            "the IMDSv2 session token request (PUT) was never answered; from a container on \
            a bridge network this usually means the instance's metadata hop limit is 1: set \
            it to 2 (aws ec2 modify-instance-metadata-options --http-put-response-hop-limit \
            2) or use host networking"
                .to_string()
        }
        ImdsError::FailedToLoadToken(_) => "no IMDSv2 session token could be obtained; check \
            that the instance metadata service is enabled on the instance (aws ec2 \
            modify-instance-metadata-options --http-endpoint enabled) and, if it is set, that \
            AWS_EC2_METADATA_SERVICE_ENDPOINT is right (off EC2 there is no instance metadata \
            service)"
            .to_string(),
        ImdsError::ErrorResponse(response) => {
            format!("HTTP {}", response.response().status().as_u16())
        }
        ImdsError::IoError(_) => "the endpoint did not answer (is IMDS enabled, and is \
            AWS_EC2_METADATA_SERVICE_ENDPOINT right?)"
            .to_string(),
        other => crate::error_chain(other),
    }
}

/// Whether the token PUT reached IMDS and its answer never came back: the
/// hop-limit symptom (from a container, the answer is dropped on the way,
/// while GETs are answered 401 at once). A connection that was refused or
/// never made is something else: IMDS switched off, a wrong endpoint, or
/// no EC2 at all. The SDK tells the two timeouts apart only in its text:
/// "HTTP read timeout occurred after 1s" against "HTTP connect timeout".
fn token_put_timed_out(error: &ImdsError) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.to_string().starts_with("HTTP read timeout") {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn addresses_are_validated() {
        let ok: Ipv4Addr = parse_address("local-ipv4", "10.1.2.3").unwrap();
        assert_eq!(ok, Ipv4Addr::new(10, 1, 2, 3));
        let html = "<html><body>404 - Not Found</body></html>";
        let error = parse_address::<Ipv4Addr>("local-ipv4", html).unwrap_err();
        assert!(error.to_string().contains("not an IPv4 address"), "{error}");
        assert!(parse_address::<Ipv4Addr>("public-ipv4", "10.0.0.1 10.0.0.2").is_err());
        assert!(parse_address::<Ipv6Addr>("ipv6", "10.0.0.1").is_err());
        let v6: Ipv6Addr = parse_address("ipv6", "2001:db8::1").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::1");
    }

    #[test]
    fn lifecycle_notices_say_when_the_instance_leaves() {
        assert_eq!(leaving(None, None), None);
        assert_eq!(leaving(None, Some("InService")), None);
        assert_eq!(leaving(None, Some("Pending:Wait")), None);
        for state in ["Terminated", "Standby", "Detached", "Warmed:Stopped"] {
            let why = leaving(None, Some(state)).unwrap();
            assert!(why.contains(state), "{why}");
        }
        let notice = r#"{"action": "terminate", "time": "2026-12-03T20:10:00Z"}"#;
        assert_eq!(
            leaving(Some(notice), Some("InService")).as_deref(),
            Some("spot interruption notice: terminate at 2026-12-03T20:10:00Z")
        );
        assert_eq!(leaving(Some("<html>oops</html>"), None), None);
        assert_eq!(leaving(Some("{}"), None), None);
    }

    #[test]
    fn hostnames_take_the_first_name() {
        let name = parse_hostname(
            "local-hostname",
            "ip-10-0-0-10.ec2.internal ip-10-0-0-10.example.corp",
        )
        .unwrap();
        assert_eq!(name.as_str(), "ip-10-0-0-10.ec2.internal.");
        let name = parse_hostname(
            "public-hostname",
            "ec2-203-0-113-7.compute-1.amazonaws.com\n",
        );
        assert_eq!(
            name.unwrap().as_str(),
            "ec2-203-0-113-7.compute-1.amazonaws.com."
        );
    }

    #[test]
    fn hostname_bodies_that_are_not_all_host_names_are_refused() {
        for body in [
            "Service Unavailable",
            "404 - Not Found",
            "not_a host!",
            "<html>oops</html>",
            "",
            "localhost",
            "ip-10-0-0-10.ec2.internal <html>",
            "*.ec2.internal",
            "-ip.ec2.internal",
            "ip_10.ec2.internal",
        ] {
            let error = parse_hostname("local-hostname", body).unwrap_err();
            assert!(
                error.to_string().contains("not a plausible host name"),
                "{body:?}: {error}"
            );
        }
    }

    #[test]
    fn answers_that_are_wrong_are_final_for_register() {
        let missing = MetadataError::Missing {
            path: "instance-id".into(),
        };
        assert_eq!(missing.class(), Class::Final);
        let garbage = check_plain("<html>", "instance-id", "instance id").unwrap_err();
        assert_eq!(garbage.class(), Class::Final);
    }

    #[test]
    fn identity_values_are_plain_tokens() {
        assert!(check_plain("i-0123456789abcdef0", "instance-id", "instance id").is_ok());
        assert!(check_plain("<html>", "instance-id", "instance id").is_err());
        assert!(check_plain("", "placement/region", "region").is_err());
    }

    #[test]
    fn needs_follow_the_config() {
        let config = Config::from_toml(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.example.com"
            value = "public-ipv4"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}-{tag:Env}.example.com"
            type = "AAAA"
            "#,
        )
        .unwrap();
        let needs = Needs::of(&config);
        assert!(needs.public_ipv4 && needs.ipv6 && !needs.local_ipv4);
        assert_eq!(needs.tag_keys, ["Name", "Env"]);
        assert!(needs.imds && !needs.task && needs.spot);

        let task_only = Config::from_toml(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "{task_id}.{cluster}.example.com"
            value = "task-ipv4"
            "#,
        )
        .unwrap();
        let needs = Needs::of(&task_only);
        assert!(needs.task && !needs.imds && !needs.spot && !needs.autoscaling);
    }
}
