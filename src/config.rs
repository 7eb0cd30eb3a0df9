//! The configuration file: reading it, rejecting what is unknown, and checking
//! every rule before the agent opens a socket.
//!
//! Deserialisation turns each value into a checked type (a hosted zone id, a
//! name template, a record type); one validation pass (`RawConfig::validate`)
//! then applies the rules that span fields. Every error names the file and
//! the key to fix.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::dns::DnsName;
use crate::retry::{self, Backoff};
use crate::template::{Field, LabelTemplate, NameTemplate};

/// Where the agent looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/route53-agent/config.toml";
/// How often instance metadata is read again.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How long deregistration may take at shutdown. ECS (`stopTimeout`) and
/// Kubernetes (`terminationGracePeriodSeconds`) both send SIGKILL 30 s after
/// SIGTERM by default; 20 s leaves room for the rest of the container.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Record TTL in seconds when a record does not set one.
pub const DEFAULT_TTL: u32 = 60;
/// How long one Route 53 request may take before it is abandoned and
/// retried. Route 53 answers a change in well under a second; this only
/// catches a network that swallows requests.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Polling faster than this gains nothing and spends the instance's
/// link-local packet budget (about 1024 packets per second per interface).
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(3600);
const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(600);
/// Upper bound for `boot_jitter`, `backoff_cap` and `request_timeout`.
const MAX_FAULT_DURATION: Duration = Duration::from_secs(600);
/// Route 53 accepts TTLs from 0 to 2^31 - 1 seconds.
const MAX_TTL: u32 = 2_147_483_647;

/// The first labels of every ownership marker's name, unless configured.
pub const DEFAULT_OWNER_PREFIX: &str = "_route53-agent";

/// A checked configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub poll_interval: Duration,
    pub shutdown_timeout: Duration,
    /// Labels put before `<type>.<record name>` to name each record's
    /// ownership marker (a TXT record). Markers name the instance only, so
    /// each agent on one instance needs its own prefix (see
    /// `registrar::Registrar::gc`).
    pub owner_prefix: String,
    /// Whether `run` removes, after its first registration, records whose
    /// marker names this instance but that no configured record produces.
    /// It does so only when that registration found records of an earlier
    /// run (see `agent::Agent::step`), so a fresh instance never lists the
    /// zone.
    pub gc_at_start: bool,
    /// The longest random delay before the first write.
    pub boot_jitter: Duration,
    /// How long to wait between attempts at a retryable Route 53 call.
    pub backoff: Backoff,
    /// How long one Route 53 request may take.
    pub request_timeout: Duration,
    /// Whether `run` waits for each change to be INSYNC (and reports ready
    /// only then).
    pub wait_insync: bool,
    pub drain: Drain,
    /// Which lifecycle notices make the agent deregister before the
    /// platform takes the instance away.
    pub lifecycle: Lifecycle,
    pub records: Vec<RecordSpec>,
}

/// The `[lifecycle]` table: which notices from instance metadata deregister
/// the agent early. Both are on unless turned off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifecycle {
    /// `spot/instance-action`: a spot interruption, about two minutes ahead.
    pub spot: bool,
    /// `autoscaling/target-lifecycle-state` of Terminated, Standby, Detached
    /// or Warmed:*; back to InService registers again.
    pub autoscaling: bool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            spot: true,
            autoscaling: true,
        }
    }
}

/// What deregistration waits for after the deletes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Drain {
    /// Exit as soon as Route 53 accepted the deletes.
    #[default]
    None,
    /// Wait until the deletes are INSYNC, then for the longest TTL, so that
    /// resolvers have stopped handing out the address before the process
    /// (and whatever serves beside it) goes away.
    Ttl,
}

/// One `[[record]]` table, with defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSpec {
    pub zone: ZoneRef,
    pub name: NameTemplate,
    pub record_type: RecordType,
    pub value: ValueSource,
    pub ttl: u32,
    pub routing: Routing,
    /// Overwrite a record at the name that this instance does not own.
    pub takeover: bool,
    /// Where to write a PTR record for the address, if anywhere.
    pub reverse_zone: Option<ZoneRef>,
}

impl RecordSpec {
    /// Every template field the record reads: its name's and its set
    /// identifier's.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        let set_identifier = self.routing.set_identifier().into_iter();
        self.name
            .fields()
            .chain(set_identifier.flat_map(LabelTemplate::fields))
    }
}

/// How a hosted zone is named in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ZoneRef {
    Id(ZoneId),
    /// Found with ListHostedZonesByName; `private` picks between a public and
    /// a private zone of the same name.
    Name {
        name: DnsName,
        private: Option<bool>,
    },
}

/// A record set's routing policy. Records that share a name and type must
/// all be simple, or all carry a set identifier with the same policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routing {
    Simple,
    MultiValue {
        set_identifier: LabelTemplate,
    },
    Weighted {
        set_identifier: LabelTemplate,
        weight: u8,
    },
}

/// A hosted zone id without the `/hostedzone/` prefix, e.g. `Z0123456789ABC`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ZoneId(String);

/// The record types the agent writes. A, AAAA and CNAME are configured;
/// PTR records follow from `reverse_zone_id`, and TXT records are the
/// agent's own ownership markers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
    Ptr,
    Txt,
}

/// Where a record's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueSource {
    LocalIpv4,
    PublicIpv4,
    Ipv6,
    LocalHostname,
    PublicHostname,
    /// The ECS task's own address in `awsvpc` mode.
    TaskIpv4,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ConfigError {
    /// True when there is no file at the path: the usual first slip, a
    /// config written elsewhere than where the agent looks.
    pub fn is_missing_file(&self) -> bool {
        matches!(self, ConfigError::Read { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound)
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|error| match error {
            ConfigText::Parse(source) => ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            },
            ConfigText::Invalid(message) => ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            },
        })
    }

    /// Parses and validates configuration text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigText> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|error| ConfigText::Parse(Box::new(error)))?;
        raw.validate().map_err(ConfigText::Invalid)
    }

    /// The distinct hosted zones the records (and their PTR records) live in.
    pub fn zones(&self) -> BTreeSet<&ZoneRef> {
        self.records
            .iter()
            .flat_map(|record| std::iter::once(&record.zone).chain(&record.reverse_zone))
            .collect()
    }
}

/// An error in configuration text, before a path is attached to it.
#[derive(Debug)]
pub enum ConfigText {
    Parse(Box<toml::de::Error>),
    Invalid(String),
}

impl fmt::Display for ConfigText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigText::Parse(error) => write!(f, "{error}"),
            ConfigText::Invalid(message) => f.write_str(message),
        }
    }
}

impl ZoneId {
    /// Accepts `Z123...` or `/hostedzone/Z123...`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let id = text.strip_prefix("/hostedzone/").unwrap_or(text);
        let plausible = !id.is_empty()
            && id.len() <= 32
            && id
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if plausible {
            Ok(ZoneId(id.to_string()))
        } else {
            Err(format!(
                "{text:?} is not a hosted zone id (expected capital letters and digits, \
                 like Z0123456789ABCDEFGHIJ)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ZoneId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ZoneId::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ZoneRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZoneRef::Id(id) => write!(f, "{id}"),
            ZoneRef::Name {
                name,
                private: None,
            } => write!(f, "{name}"),
            ZoneRef::Name {
                name,
                private: Some(true),
            } => write!(f, "{name} (private)"),
            ZoneRef::Name {
                name,
                private: Some(false),
            } => write!(f, "{name} (public)"),
        }
    }
}

impl Routing {
    pub fn set_identifier(&self) -> Option<&LabelTemplate> {
        match self {
            Routing::Simple => None,
            Routing::MultiValue { set_identifier } | Routing::Weighted { set_identifier, .. } => {
                Some(set_identifier)
            }
        }
    }

    /// The policy's name, for errors about mixing policies.
    pub fn kind(&self) -> &'static str {
        match self {
            Routing::Simple => "simple",
            Routing::MultiValue { .. } => "multivalue",
            Routing::Weighted { .. } => "weighted",
        }
    }
}

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Ptr => "PTR",
            RecordType::Txt => "TXT",
        }
    }

    /// "an A record", "a CNAME record": the article the type takes when it
    /// is read aloud.
    fn article(self) -> &'static str {
        match self {
            RecordType::A | RecordType::Aaaa => "an",
            _ => "a",
        }
    }

    fn default_value(self) -> ValueSource {
        match self {
            RecordType::Aaaa => ValueSource::Ipv6,
            RecordType::Cname => ValueSource::LocalHostname,
            _ => ValueSource::LocalIpv4,
        }
    }
}

/// In any case, as people write DNS types. The error lists only the types a
/// record may be configured with; PTR and TXT parse so that validation can
/// say where they come from instead.
impl<'de> Deserialize<'de> for RecordType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.to_ascii_uppercase().as_str() {
            "A" => Ok(RecordType::A),
            "AAAA" => Ok(RecordType::Aaaa),
            "CNAME" => Ok(RecordType::Cname),
            "PTR" => Ok(RecordType::Ptr),
            "TXT" => Ok(RecordType::Txt),
            _ => Err(serde::de::Error::custom(format!(
                "unknown record type `{text}`, expected A, AAAA or CNAME"
            ))),
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ValueSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueSource::LocalIpv4 => "local-ipv4",
            ValueSource::PublicIpv4 => "public-ipv4",
            ValueSource::Ipv6 => "ipv6",
            ValueSource::LocalHostname => "local-hostname",
            ValueSource::PublicHostname => "public-hostname",
            ValueSource::TaskIpv4 => "task-ipv4",
        }
    }

    fn fits(self, record_type: RecordType) -> bool {
        match self {
            ValueSource::LocalIpv4 | ValueSource::PublicIpv4 | ValueSource::TaskIpv4 => {
                record_type == RecordType::A
            }
            ValueSource::Ipv6 => record_type == RecordType::Aaaa,
            ValueSource::LocalHostname | ValueSource::PublicHostname => {
                record_type == RecordType::Cname
            }
        }
    }
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, deserialize_with = "duration")]
    poll_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    shutdown_timeout: Option<Duration>,
    owner_prefix: Option<String>,
    gc_at_start: Option<bool>,
    #[serde(default, deserialize_with = "duration")]
    boot_jitter: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    backoff_base: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    backoff_cap: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    request_timeout: Option<Duration>,
    #[serde(default)]
    wait_insync: bool,
    #[serde(default)]
    drain: Drain,
    #[serde(default)]
    lifecycle: Lifecycle,
    #[serde(default, rename = "record", deserialize_with = "records")]
    records: Vec<RawRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    zone_id: Option<ZoneId>,
    zone: Option<String>,
    private: Option<bool>,
    name: NameTemplate,
    #[serde(rename = "type", default)]
    record_type: Option<RecordType>,
    value: Option<ValueSource>,
    /// Wider than the checked type, so that a value out of range gets the
    /// range in its error rather than serde's "expected u32".
    ttl: Option<i64>,
    set_identifier: Option<LabelTemplate>,
    #[serde(default)]
    multivalue: bool,
    /// As `ttl`: checked against 0 to 255 in `validate`.
    weight: Option<i64>,
    #[serde(default)]
    takeover: bool,
    reverse_zone_id: Option<ZoneId>,
}

fn duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map(Some).map_err(|error| {
        serde::de::Error::custom(format!("{text:?} is not a duration like \"5s\": {error}"))
    })
}

/// `[[record]]` tables: an array of them. `[record]`, a single table, is
/// the usual slip, and serde would only say "invalid type: map, expected a
/// sequence".
fn records<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<RawRecord>, D::Error> {
    struct Records;

    impl<'de> serde::de::Visitor<'de> for Records {
        type Value = Vec<RawRecord>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("[[record]] tables")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(serde::de::Error::custom(
                "`[record]` is a single table; write each record as `[[record]]`, with two \
                 brackets, even when there is only one",
            ))
        }
    }

    deserializer.deserialize_seq(Records)
}

impl RawConfig {
    fn validate(self) -> Result<Config, String> {
        let poll_interval = self.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL);
        if !(MIN_POLL_INTERVAL..=MAX_POLL_INTERVAL).contains(&poll_interval) {
            return Err(format!(
                "poll_interval must lie between {} and {}",
                humantime::format_duration(MIN_POLL_INTERVAL),
                humantime::format_duration(MAX_POLL_INTERVAL)
            ));
        }
        let shutdown_timeout = self.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
        if shutdown_timeout.is_zero() || shutdown_timeout > MAX_SHUTDOWN_TIMEOUT {
            return Err(format!(
                "shutdown_timeout must be above zero and at most {}",
                humantime::format_duration(MAX_SHUTDOWN_TIMEOUT)
            ));
        }
        let faults = self.fault_settings()?;
        if self.records.is_empty() {
            return Err("no [[record]] is configured; the agent would have nothing to do".into());
        }
        let records = self
            .records
            .into_iter()
            .enumerate()
            .map(|(index, raw)| raw.validate(index))
            .collect::<Result<Vec<_>, _>>()?;
        check_no_duplicates(&records)?;
        check_shared_names(&records)?;
        let owner_prefix = self
            .owner_prefix
            .unwrap_or_else(|| DEFAULT_OWNER_PREFIX.to_string());
        check_owner_prefix(&owner_prefix)?;
        check_drain(faults.drain, shutdown_timeout, &records)?;
        Ok(Config {
            poll_interval,
            shutdown_timeout,
            owner_prefix: owner_prefix.trim_end_matches('.').to_ascii_lowercase(),
            gc_at_start: self.gc_at_start.unwrap_or(true),
            boot_jitter: faults.boot_jitter,
            backoff: faults.backoff,
            request_timeout: faults.request_timeout,
            wait_insync: faults.wait_insync,
            drain: faults.drain,
            lifecycle: self.lifecycle,
            records,
        })
    }
}

/// The settings for faults and Route 53 limits, checked.
struct FaultSettings {
    boot_jitter: Duration,
    backoff: Backoff,
    request_timeout: Duration,
    wait_insync: bool,
    drain: Drain,
}

impl RawConfig {
    fn fault_settings(&self) -> Result<FaultSettings, String> {
        let boot_jitter = self.boot_jitter.unwrap_or(retry::DEFAULT_BOOT_JITTER);
        let backoff = Backoff {
            base: self.backoff_base.unwrap_or(retry::DEFAULT_BACKOFF_BASE),
            cap: self.backoff_cap.unwrap_or(retry::DEFAULT_BACKOFF_CAP),
        };
        let request_timeout = self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let max = humantime::format_duration(MAX_FAULT_DURATION);
        if boot_jitter > MAX_FAULT_DURATION {
            return Err(format!("boot_jitter must be at most {max}"));
        }
        if backoff.base.is_zero() || backoff.cap < backoff.base || backoff.cap > MAX_FAULT_DURATION
        {
            return Err(format!(
                "backoff_base must be above zero, and backoff_cap at least backoff_base and at \
                 most {max}"
            ));
        }
        if request_timeout.is_zero() || request_timeout > MAX_FAULT_DURATION {
            return Err(format!(
                "request_timeout must be above zero and at most {max}"
            ));
        }
        Ok(FaultSettings {
            boot_jitter,
            backoff,
            request_timeout,
            wait_insync: self.wait_insync,
            drain: self.drain,
        })
    }
}

/// Draining waits a record's TTL inside `shutdown_timeout`; a TTL that does
/// not fit would be cut short on every shutdown.
fn check_drain(
    drain: Drain,
    shutdown_timeout: Duration,
    records: &[RecordSpec],
) -> Result<(), String> {
    if drain != Drain::Ttl {
        return Ok(());
    }
    match records.iter().max_by_key(|record| record.ttl) {
        Some(record) if Duration::from_secs(u64::from(record.ttl)) >= shutdown_timeout => {
            Err(format!(
                "drain = \"ttl\" waits for the TTL of {} ({} s) at shutdown, which needs a \
                 longer shutdown_timeout (now {}); raise it or lower the TTL",
                record.name,
                record.ttl,
                humantime::format_duration(shutdown_timeout)
            ))
        }
        _ => Ok(()),
    }
}

impl RawRecord {
    fn validate(self, index: usize) -> Result<RecordSpec, String> {
        let at = |message: String| format!("record[{index}] ({}): {message}", self.name);
        let record_type = self.record_type.unwrap_or(RecordType::A);
        if matches!(record_type, RecordType::Ptr | RecordType::Txt) {
            return Err(at(format!(
                "type {record_type} is not configured directly (PTR records come from \
                 reverse_zone_id; TXT records are the agent's ownership markers)"
            )));
        }
        let value = self.value.unwrap_or(record_type.default_value());
        if !value.fits(record_type) {
            return Err(at(format!(
                "value {value} cannot fill {} {record_type} record",
                record_type.article()
            )));
        }
        let ttl = match self.ttl {
            None => DEFAULT_TTL,
            Some(ttl) => u32::try_from(ttl)
                .ok()
                .filter(|ttl| *ttl <= MAX_TTL)
                .ok_or_else(|| at(format!("ttl {ttl} is outside 0 to {MAX_TTL} seconds")))?,
        };
        let weight = match self.weight {
            None => None,
            Some(weight) => Some(
                u8::try_from(weight)
                    .map_err(|_| at(format!("weight {weight} is outside 0 to 255")))?,
            ),
        };
        let zone =
            zone_ref(self.zone_id.clone(), self.zone.as_deref(), self.private).map_err(at)?;
        check_within_named_zone(&self.name, &zone).map_err(at)?;
        let routing = routing(self.set_identifier.clone(), self.multivalue, weight).map_err(at)?;
        if record_type == RecordType::Cname && routing != Routing::Simple {
            return Err(at("a CNAME record is written as a simple record; remove \
                 set_identifier, multivalue and weight"
                .into()));
        }
        if self.reverse_zone_id.is_some() && value != ValueSource::LocalIpv4 {
            return Err(at(
                "reverse_zone_id writes PTR records for private addresses: it needs \
                 value = \"local-ipv4\""
                    .into(),
            ));
        }
        Ok(RecordSpec {
            zone,
            name: self.name,
            record_type,
            value,
            ttl,
            routing,
            takeover: self.takeover,
            reverse_zone: self.reverse_zone_id.map(ZoneRef::Id),
        })
    }
}

fn zone_ref(
    id: Option<ZoneId>,
    name: Option<&str>,
    private: Option<bool>,
) -> Result<ZoneRef, String> {
    match (id, name) {
        (Some(_), Some(_)) => Err("set zone_id or zone, not both".into()),
        (None, None) => Err("needs zone_id, or zone (the hosted zone's name)".into()),
        (Some(_), None) if private.is_some() => {
            Err("private goes with zone (a name); a zone_id is already exact".into())
        }
        (Some(id), None) => Ok(ZoneRef::Id(id)),
        (None, Some(name)) => DnsName::parse(name)
            .map(|name| ZoneRef::Name { name, private })
            .map_err(|error| format!("zone {name:?} is not a domain name: {error}")),
    }
}

/// A zone given by name is in the file, so a name that can only lie
/// outside it is refused here, before any network call. (A zone given by id
/// has its name looked up first; `plan::check_zones` checks those.) Fields
/// fill whole labels, so the template's shape decides for every instance.
fn check_within_named_zone(name: &NameTemplate, zone: &ZoneRef) -> Result<(), String> {
    let ZoneRef::Name {
        name: zone_name, ..
    } = zone
    else {
        return Ok(());
    };
    match name.shape() {
        Ok(shape) if !shape.is_within(zone_name) => Err(match name.fields().next() {
            None => format!("{shape} lies outside hosted zone {zone_name}"),
            Some(_) => format!(
                "every name it can render ends in `{}`, which lies outside hosted zone \
                 {zone_name}",
                name.fixed_suffix()
            ),
        }),
        _ => Ok(()),
    }
}

fn routing(
    set_identifier: Option<LabelTemplate>,
    multivalue: bool,
    weight: Option<u8>,
) -> Result<Routing, String> {
    match (set_identifier, multivalue, weight) {
        (None, false, None) => Ok(Routing::Simple),
        (Some(set_identifier), true, None) => Ok(Routing::MultiValue { set_identifier }),
        (Some(set_identifier), false, Some(weight)) => Ok(Routing::Weighted {
            set_identifier,
            weight,
        }),
        (Some(_), true, Some(_)) => Err("choose multivalue = true or weight, not both".into()),
        (Some(_), false, None) => {
            Err("set_identifier needs a routing policy: multivalue = true, or weight = N".into())
        }
        (None, _, _) => Err(
            "multivalue and weight need set_identifier (for example \"{instance_id}\"), so \
             that each instance owns its own record set"
                .into(),
        ),
    }
}

/// The prefix is one or more labels that the agent puts before each marker.
fn check_owner_prefix(prefix: &str) -> Result<(), String> {
    let trimmed = prefix.trim_end_matches('.');
    let valid = !trimmed.is_empty()
        && trimmed.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "owner_prefix {prefix:?} must be one or more DNS labels, like \"{DEFAULT_OWNER_PREFIX}\""
        ))
    }
}

/// Two records with the same zone, name, type and set identifier would
/// overwrite each other on every poll.
fn check_no_duplicates(records: &[RecordSpec]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (index, record) in records.iter().enumerate() {
        let key = (
            &record.zone,
            name_key(&record.name),
            record.record_type,
            record.routing.set_identifier().map(LabelTemplate::as_str),
        );
        if !seen.insert(key) {
            return Err(format!(
                "record[{index}] repeats {} {} in zone {}; each name, type and set \
                 identifier may be configured once",
                record.name, record.record_type, record.zone
            ));
        }
    }
    Ok(())
}

/// Records that share a name must agree on what Route 53 requires of them:
/// a CNAME stands alone at its name, records of one name and type share a
/// routing policy, and weighted ones also a TTL.
fn check_shared_names(records: &[RecordSpec]) -> Result<(), String> {
    for (index, record) in records.iter().enumerate() {
        for (other_index, other) in records.iter().enumerate().take(index) {
            if record.zone != other.zone || name_key(&record.name) != name_key(&other.name) {
                continue;
            }
            let clash = |why: &str| {
                format!(
                    "record[{index}] and record[{other_index}] share the name {}: {why}",
                    record.name
                )
            };
            if record.record_type == RecordType::Cname || other.record_type == RecordType::Cname {
                return Err(clash("a CNAME cannot share its name with any other record"));
            }
            if record.record_type == other.record_type
                && record.routing.kind() != other.routing.kind()
            {
                return Err(clash(&format!(
                    "records of one name and type must share a routing policy, not {} and {}",
                    other.routing.kind(),
                    record.routing.kind()
                )));
            }
            let both_weighted = matches!(record.routing, Routing::Weighted { .. })
                && matches!(other.routing, Routing::Weighted { .. });
            if record.record_type == other.record_type && both_weighted && record.ttl != other.ttl {
                return Err(clash(&format!(
                    "weighted records of one name and type must share a TTL, not {} and {}",
                    other.ttl, record.ttl
                )));
            }
        }
    }
    Ok(())
}

/// A template compared as a name: case and the trailing dot do not count.
fn name_key(template: &NameTemplate) -> String {
    template.as_str().trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::from_toml(text).map_err(|error| error.to_string())
    }

    const MINIMAL: &str = r#"
        [[record]]
        zone_id = "Z0123456789ABCDEFGHIJ"
        name = "{tag:Name}.internal.example.com"
    "#;

    #[test]
    fn defaults_fill_a_minimal_record() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.poll_interval, DEFAULT_POLL_INTERVAL);
        assert_eq!(config.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
        let record = &config.records[0];
        assert_eq!(record.record_type, RecordType::A);
        assert_eq!(record.value, ValueSource::LocalIpv4);
        assert_eq!(record.ttl, DEFAULT_TTL);
        assert_eq!(
            record.zone,
            ZoneRef::Id(ZoneId::parse("Z0123456789ABCDEFGHIJ").unwrap())
        );
        assert_eq!(record.routing, Routing::Simple);
        assert_eq!(config.owner_prefix, DEFAULT_OWNER_PREFIX);
        assert!(config.gc_at_start);
    }

    #[test]
    fn aaaa_defaults_to_ipv6_and_durations_parse() {
        let config = parse(
            r#"
            poll_interval = "2s"
            shutdown_timeout = "1m"
            [[record]]
            zone_id = "/hostedzone/ZABC"
            name = "{instance_id}.example.com."
            type = "AAAA"
            ttl = 30
            "#,
        )
        .unwrap();
        assert_eq!(config.poll_interval, Duration::from_secs(2));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(60));
        assert_eq!(config.records[0].value, ValueSource::Ipv6);
        assert_eq!(
            config.records[0].zone,
            ZoneRef::Id(ZoneId::parse("ZABC").unwrap())
        );
    }

    #[test]
    fn fault_keys_default_and_parse() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.boot_jitter, retry::DEFAULT_BOOT_JITTER);
        assert_eq!(config.backoff, Backoff::default());
        assert_eq!(config.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert!(!config.wait_insync);
        assert_eq!(config.drain, Drain::None);

        let config = parse(&format!(
            "boot_jitter = \"0s\"\nbackoff_base = \"200ms\"\nbackoff_cap = \"2s\"\n\
             shutdown_timeout = \"2m\"\nwait_insync = true\ndrain = \"ttl\"\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(config.boot_jitter, Duration::ZERO);
        assert_eq!(config.backoff.base, Duration::from_millis(200));
        assert_eq!(config.backoff.cap, Duration::from_secs(2));
        assert!(config.wait_insync);
        assert_eq!(config.drain, Drain::Ttl);
    }

    #[test]
    fn drain_ttl_needs_room_inside_the_shutdown_timeout() {
        let error = parse(&format!("drain = \"ttl\"\n{MINIMAL}")).unwrap_err();
        assert!(error.contains("needs a longer shutdown_timeout"), "{error}");
        let error = parse(&format!("backoff_base = \"0s\"\n{MINIMAL}")).unwrap_err();
        assert!(error.contains("backoff_base must be above zero"), "{error}");
    }

    #[test]
    fn lifecycle_notices_are_on_unless_turned_off() {
        assert_eq!(parse(MINIMAL).unwrap().lifecycle, Lifecycle::default());
        let config = parse(&format!("[lifecycle]\nspot = false\n{MINIMAL}")).unwrap();
        assert!(!config.lifecycle.spot && config.lifecycle.autoscaling);
        let error = parse(&format!("[lifecycle]\nspots = false\n{MINIMAL}")).unwrap_err();
        assert!(error.contains("unknown field `spots`"), "{error}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = parse(&format!("{MINIMAL}\nweigth = 3\n")).unwrap_err();
        assert!(error.contains("unknown field `weigth`"), "{error}");
        let error = parse("pol_interval = \"5s\"\n").unwrap_err();
        assert!(error.contains("unknown field `pol_interval`"), "{error}");
    }

    #[test]
    fn value_must_fit_the_type() {
        let error = parse(&format!(
            "{MINIMAL}\ntype = \"AAAA\"\nvalue = \"local-ipv4\"\n"
        ))
        .unwrap_err();
        assert!(error.contains("record[0]"), "{error}");
        assert!(error.contains("local-ipv4 cannot fill an AAAA"), "{error}");
        let error = parse(&format!("{MINIMAL}\ntype = \"CNAME\"\nvalue = \"ipv6\"\n")).unwrap_err();
        assert!(error.contains("ipv6 cannot fill a CNAME"), "{error}");
    }

    #[test]
    fn bad_values_are_refused() {
        for (text, expected) in [
            (
                "[[record]]\nzone_id = \"z-lower\"\nname = \"a.example.com\"",
                "hosted zone id",
            ),
            (
                "[[record]]\nzone_id = \"ZA\"\nname = \"{nope}.example.com\"",
                "unknown field `{nope}`",
            ),
            (
                "[[record]]\nzone_id = \"ZA\"\nname = \"a.example.com\"\ntype = \"MX\"",
                "unknown record type `MX`, expected A, AAAA or CNAME",
            ),
            (
                "[[record]]\nzone_id = \"ZA\"\nname = \"a.example.com\"\nvalue = \"eth0\"",
                "unknown variant `eth0`",
            ),
            (
                "poll_interval = \"soon\"\n[[record]]\nzone_id = \"ZA\"\nname = \"a.example.com\"",
                "not a duration",
            ),
            (
                "poll_interval = \"10ms\"\n[[record]]\nzone_id = \"ZA\"\nname = \"a.example.com\"",
                "poll_interval must lie",
            ),
            (
                "shutdown_timeout = \"0s\"\n[[record]]\nzone_id = \"ZA\"\nname = \"a.example.com\"",
                "shutdown_timeout",
            ),
            ("poll_interval = \"5s\"\n", "no [[record]]"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn record_types_parse_in_any_case() {
        for (written, expected) in [("a", RecordType::A), ("Aaaa", RecordType::Aaaa)] {
            let config = parse(&format!("{MINIMAL}\ntype = \"{written}\"\n")).unwrap();
            assert_eq!(config.records[0].record_type, expected);
        }
        let config = parse(&format!("{MINIMAL}\ntype = \"cname\"\nttl = 5\n")).unwrap();
        assert_eq!(config.records[0].record_type, RecordType::Cname);
    }

    #[test]
    fn a_single_record_table_is_explained() {
        let error = parse("[record]\nzone_id = \"ZA\"\nname = \"a.example.com\"\n").unwrap_err();
        assert!(
            error.contains("write each record as `[[record]]`"),
            "{error}"
        );
    }

    #[test]
    fn duplicates_are_refused_whatever_the_case_or_dot() {
        let error = parse(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "web.example.com"
            [[record]]
            zone_id = "ZA"
            name = "WEB.example.com."
            "#,
        )
        .unwrap_err();
        assert!(error.contains("record[1] repeats"), "{error}");
    }

    #[test]
    fn zone_ids_are_distinct() {
        let config = parse(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "a.example.com"
            [[record]]
            zone_id = "ZA"
            name = "a.example.com"
            type = "AAAA"
            [[record]]
            zone_id = "ZB"
            name = "b.example.org"
            "#,
        )
        .unwrap();
        assert_eq!(config.zones().len(), 2);
    }

    #[test]
    fn zones_by_name_and_routing_policies() {
        let config = parse(
            r#"
            owner_prefix = "_owner.fleet."
            gc_at_start = false
            [[record]]
            zone = "Example.com."
            private = true
            name = "web.example.com"
            set_identifier = "{instance_id}"
            multivalue = true
            [[record]]
            zone = "example.com"
            private = true
            name = "api.example.com"
            set_identifier = "{instance_id}"
            weight = 10
            takeover = true
            [[record]]
            zone_id = "ZA"
            name = "{instance_id}.example.com"
            reverse_zone_id = "ZREV"
            [[record]]
            zone_id = "ZA"
            name = "c.example.com"
            type = "CNAME"
            value = "public-hostname"
            "#,
        )
        .unwrap();
        assert_eq!(config.owner_prefix, "_owner.fleet");
        assert!(!config.gc_at_start);
        let zone = ZoneRef::Name {
            name: DnsName::parse("example.com").unwrap(),
            private: Some(true),
        };
        assert_eq!(config.records[0].zone, zone);
        assert_eq!(config.records[0].routing.kind(), "multivalue");
        assert!(matches!(
            config.records[1].routing,
            Routing::Weighted { weight: 10, .. }
        ));
        assert!(config.records[1].takeover);
        assert_eq!(
            config.records[2].reverse_zone,
            Some(ZoneRef::Id(ZoneId::parse("ZREV").unwrap()))
        );
        assert_eq!(config.records[3].value, ValueSource::PublicHostname);
        assert_eq!(config.zones().len(), 3);
    }

    #[test]
    fn routing_and_zone_mistakes_are_explained() {
        let record = |extra: &str| format!("[[record]]\nname = \"web.example.com\"\n{extra}\n");
        for (extra, expected) in [
            ("zone_id = \"ZA\"\nzone = \"example.com\"", "not both"),
            ("", "needs zone_id, or zone"),
            ("zone_id = \"ZA\"\nprivate = true", "private goes with zone"),
            (
                "zone_id = \"ZA\"\nset_identifier = \"{instance_id}\"",
                "needs a routing policy",
            ),
            ("zone_id = \"ZA\"\nmultivalue = true", "need set_identifier"),
            ("zone_id = \"ZA\"\nweight = 3", "need set_identifier"),
            (
                "zone_id = \"ZA\"\nset_identifier = \"a\"\nweight = 3\nmultivalue = true",
                "not both",
            ),
            (
                "zone_id = \"ZA\"\nset_identifier = \"{instance_id}.x\"\nweight = 1",
                "one DNS label",
            ),
            (
                "zone_id = \"ZA\"\ntype = \"CNAME\"\nset_identifier = \"a\"\nweight = 1",
                "simple record",
            ),
            ("zone_id = \"ZA\"\ntype = \"PTR\"", "reverse_zone_id"),
            (
                "zone_id = \"ZA\"\ntype = \"AAAA\"\nreverse_zone_id = \"ZR\"",
                "local-ipv4",
            ),
            (
                "zone_id = \"ZA\"\nweight = 300\nset_identifier = \"a\"",
                "weight",
            ),
        ] {
            let error = parse(&record(extra)).unwrap_err();
            assert!(error.contains(expected), "{extra}: {error}");
        }
        let error = parse(&format!(
            "owner_prefix = \"a b\"\n{}",
            record("zone_id = \"ZA\"")
        ))
        .unwrap_err();
        assert!(error.contains("owner_prefix"), "{error}");
    }

    #[test]
    fn names_outside_a_zone_given_by_name_are_refused() {
        let record =
            |name: &str| format!("[[record]]\nzone = \"example.com\"\nname = \"{name}\"\n");
        let error = parse(&record("a.other.org")).unwrap_err();
        assert!(error.contains("record[0] (a.other.org)"), "{error}");
        assert!(
            error.contains("a.other.org. lies outside hosted zone example.com."),
            "{error}"
        );
        let error = parse(&record("{tag:Name}.example.com.other.org")).unwrap_err();
        assert!(
            error.contains("ends in `.example.com.other.org`"),
            "{error}"
        );
        for inside in ["example.com", "a.Example.COM.", "{tag:Name}.example.com"] {
            assert!(parse(&record(inside)).is_ok(), "{inside}");
        }
    }

    #[test]
    fn shared_names_must_agree() {
        let error = parse(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "www.example.com"
            type = "CNAME"
            [[record]]
            zone_id = "ZA"
            name = "www.example.com"
            "#,
        )
        .unwrap_err();
        assert!(error.contains("a CNAME cannot share"), "{error}");
        let error = parse(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "web.example.com"
            [[record]]
            zone_id = "ZA"
            name = "web.example.com"
            set_identifier = "{instance_id}"
            multivalue = true
            "#,
        )
        .unwrap_err();
        assert!(error.contains("must share a routing policy"), "{error}");
    }
}
