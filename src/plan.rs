//! The pure plan: which records should exist, given the configuration, the
//! instance's facts and the names of the hosted zones.
//!
//! Nothing here does I/O, so every rule about what may be published is
//! tested without a socket. The agent loop compares one plan with the last
//! one it wrote and sends only the difference.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::{Config, RecordSpec, RecordType, Routing, ValueSource, ZoneId, ZoneRef};
use crate::dns::DnsName;
use crate::metadata::InstanceFacts;
use crate::template::RenderError;

/// A hosted zone as Route 53 holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub id: ZoneId,
    pub name: DnsName,
    /// A private hosted zone, answered only inside its VPCs.
    pub private: bool,
}

/// Each configured zone, resolved.
pub type Zones = BTreeMap<ZoneRef, Zone>;

/// A record set's routing policy once rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Simple,
    MultiValue,
    Weighted(u8),
    /// A policy the agent does not write (latency, geolocation, failover...),
    /// seen on a live record.
    Other,
}

impl Policy {
    pub fn kind(self) -> &'static str {
        match self {
            Policy::Simple => "simple",
            Policy::MultiValue => "multivalue",
            Policy::Weighted(_) => "weighted",
            Policy::Other => "another routing policy",
        }
    }
}

/// One record set as the agent wants it to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredRecord {
    pub zone_id: ZoneId,
    pub name: DnsName,
    pub record_type: RecordType,
    pub set_identifier: Option<String>,
    pub policy: Policy,
    pub ttl: u32,
    /// The record's values in the text form Route 53 stores.
    pub values: Vec<String>,
    /// Whether a record this instance does not own may be overwritten.
    pub takeover: bool,
}

/// Where Route 53 holds a record set: zone, name, type and set identifier.
pub type RecordKey<'r> = (&'r ZoneId, &'r DnsName, RecordType, Option<&'r str>);

impl DesiredRecord {
    pub fn key(&self) -> RecordKey<'_> {
        (
            &self.zone_id,
            &self.name,
            self.record_type,
            self.set_identifier.as_deref(),
        )
    }
}

impl fmt::Display for DesiredRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        show_set(f, self.key())
    }
}

/// A record set as Route 53 keys and routes it, without values: where a
/// record would be written, when the value it needs is missing. Having no
/// values, it cannot be written; deleting it by its marker needs none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSet {
    pub zone_id: ZoneId,
    pub name: DnsName,
    pub record_type: RecordType,
    pub set_identifier: Option<String>,
    pub policy: Policy,
    pub ttl: u32,
}

impl RecordSet {
    pub fn key(&self) -> RecordKey<'_> {
        (
            &self.zone_id,
            &self.name,
            self.record_type,
            self.set_identifier.as_deref(),
        )
    }
}

impl From<&DesiredRecord> for RecordSet {
    fn from(record: &DesiredRecord) -> Self {
        RecordSet {
            zone_id: record.zone_id.clone(),
            name: record.name.clone(),
            record_type: record.record_type,
            set_identifier: record.set_identifier.clone(),
            policy: record.policy,
            ttl: record.ttl,
        }
    }
}

impl fmt::Display for RecordSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        show_set(f, self.key())
    }
}

/// A record set for people: `name type (set id)`.
fn show_set(f: &mut fmt::Formatter<'_>, (_, name, record_type, set): RecordKey<'_>) -> fmt::Result {
    write!(f, "{name} {record_type}")?;
    if let Some(set) = set {
        write!(f, " (set {set})")?;
    }
    Ok(())
}

/// Which record of a configured `[[record]]` an entry of the plan is: the
/// record itself, or the PTR record that `reverse_zone_id` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub index: usize,
    pub ptr: bool,
}

/// What the plan says about one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// The record can be written as given.
    Ready(DesiredRecord),
    /// Not writable yet, but it may become so without a configuration change
    /// (an Elastic IP associated later, a tag added by Auto Scaling).
    Waiting { why: String, lacks: Lacks },
    /// Cannot be written until the instance or the configuration changes.
    Failed(PlanError),
}

/// What a waiting record lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lacks {
    /// A tag its name or set identifier needs: which record set it is, is
    /// not known.
    Name,
    /// Its value: instance metadata answered that the instance has none
    /// (404), such as a public address not associated yet, or released. A
    /// metadata outage never comes here: a read that fails fails the whole
    /// pass before anything is planned. `set` is the record set the record
    /// would be written to, when its name is known (a tag may be missing
    /// too; a PTR record's name is the missing private address).
    Value { set: Option<RecordSet> },
}

/// Why a configured record cannot be written.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("record `{template}`: {source}")]
    Render {
        template: String,
        #[source]
        source: RenderError,
    },
    #[error("record `{template}`: the hosted zone {zone} is not known")]
    UnknownZone { template: String, zone: ZoneRef },
    #[error("record `{template}`: hosted zone {zone} could not be looked up: {why}")]
    ZoneUnavailable {
        template: String,
        zone: ZoneRef,
        why: String,
    },
    #[error("record `{template}`: {name} lies outside hosted zone {zone_id} ({zone})")]
    OutsideZone {
        template: String,
        name: DnsName,
        zone_id: ZoneId,
        zone: DnsName,
    },
    #[error("record `{template}`: {detail}")]
    Value { template: String, detail: String },
    #[error(
        "record `{template}`: every name it can render ends in `{suffix}`, which lies outside \
         hosted zone {zone_id} ({zone})"
    )]
    TemplateOutsideZone {
        template: String,
        suffix: String,
        zone_id: ZoneId,
        zone: DnsName,
    },
    #[error("record `{template}` renders to {record}, which clashes with record[{other}]: {why}")]
    Clash {
        template: String,
        record: String,
        other: usize,
        why: &'static str,
    },
    #[error(
        "record `{template}`: {name} is the apex of its hosted zone, where a CNAME cannot be \
         (the apex holds the zone's SOA and NS records)"
    )]
    CnameAtApex { template: String, name: DnsName },
}

/// Checks, before any write, that every template can only render to names
/// inside its zone. Fields fill whole labels and literal text is fixed, so
/// the template's shape decides this for every instance alike. (PTR names
/// depend on the address, so the plan checks those.) A record whose zone is
/// not in `zones` (its lookup failed) is not checked here: the plan sets it
/// aside.
pub fn check_zones(config: &Config, zones: &Zones) -> Result<(), PlanError> {
    for spec in &config.records {
        let Some(zone) = zones.get(&spec.zone) else {
            continue;
        };
        if let Ok(shape) = spec.name.shape()
            && !shape.is_within(&zone.name)
        {
            return Err(PlanError::TemplateOutsideZone {
                template: spec.name.to_string(),
                suffix: spec.name.fixed_suffix().to_string(),
                zone_id: zone.id.clone(),
                zone: zone.name.clone(),
            });
        }
    }
    Ok(())
}

/// Works out every configured record from the facts, in configuration
/// order: each `[[record]]`, then its PTR record if it asks for one.
pub fn plan(config: &Config, facts: &InstanceFacts, zones: &Zones) -> Vec<(Slot, Planned)> {
    plan_since(config, facts, zones, &[])
}

/// [`plan`], for facts read again: `had` are the values instance metadata
/// gave at an earlier read, so that a record waiting for one says that
/// the instance no longer has it, not that it has none yet.
pub fn plan_since(
    config: &Config,
    facts: &InstanceFacts,
    zones: &Zones,
    had: &[ValueSource],
) -> Vec<(Slot, Planned)> {
    let mut claimed: Vec<(DesiredRecord, usize)> = Vec::new();
    let mut entries = Vec::new();
    for (index, spec) in config.records.iter().enumerate() {
        let main = plan_one(spec, facts, zones, had);
        let ptr = spec.reverse_zone.as_ref().map(|reverse| match &main {
            Planned::Ready(record) => plan_ptr(spec, record, facts, reverse, zones, had),
            // A PTR record's value is the record's name, and its name the
            // private address that the record's value is.
            Planned::Waiting { why, lacks } => Planned::Waiting {
                why: why.clone(),
                lacks: match lacks {
                    Lacks::Name => Lacks::Name,
                    Lacks::Value { .. } => Lacks::Value { set: None },
                },
            },
            Planned::Failed(why) => Planned::Failed(why.clone()),
        });
        let slots = std::iter::once((Slot { index, ptr: false }, main))
            .chain(ptr.map(|ptr| (Slot { index, ptr: true }, ptr)));
        for (slot, planned) in slots {
            entries.push((slot, claim(&mut claimed, spec, slot, planned)));
        }
    }
    entries
}

/// Two entries rendering to one record set would overwrite each other.
/// Accepts a ready record unless one planned before it, rendered for this
/// instance, clashes with it at the same name: the same record set twice,
/// or a pair Route 53 would refuse in one zone. The configuration check
/// catches such pairs among fixed names; templates can still meet once
/// rendered (`{tag:Name}` rendering to a name another record spells out).
fn claim(
    claimed: &mut Vec<(DesiredRecord, usize)>,
    spec: &RecordSpec,
    slot: Slot,
    planned: Planned,
) -> Planned {
    let Planned::Ready(record) = planned else {
        return planned;
    };
    let clash = claimed
        .iter()
        .find_map(|(other, index)| Some((clash(&record, other)?, *index)));
    if let Some((why, other)) = clash {
        return Planned::Failed(PlanError::Clash {
            template: spec.name.to_string(),
            record: record.to_string(),
            other,
            why,
        });
    }
    claimed.push((record.clone(), slot.index));
    Planned::Ready(record)
}

/// Why Route 53 would not hold both records, if it would not.
fn clash(record: &DesiredRecord, other: &DesiredRecord) -> Option<&'static str> {
    if record.zone_id != other.zone_id || record.name != other.name {
        return None;
    }
    if record.key() == other.key() {
        return Some("both write this record set");
    }
    if record.record_type == RecordType::Cname || other.record_type == RecordType::Cname {
        return Some("a CNAME cannot share its name with any other record");
    }
    if record.record_type != other.record_type {
        return None;
    }
    if record.policy.kind() != other.policy.kind() {
        return Some("records of one name and type must share a routing policy");
    }
    if matches!(record.policy, Policy::Weighted(_)) && record.ttl != other.ttl {
        return Some("weighted records of one name and type must share a TTL");
    }
    None
}

fn plan_one(
    spec: &RecordSpec,
    facts: &InstanceFacts,
    zones: &Zones,
    had: &[ValueSource],
) -> Planned {
    if let Some(why) = facts.task_error.as_ref().filter(|_| uses_task(spec)) {
        return Planned::Failed(PlanError::Value {
            template: spec.name.to_string(),
            detail: why.clone(),
        });
    }
    if let Some((_, why)) = facts
        .bad_values
        .iter()
        .find(|(source, _)| *source == spec.value)
    {
        return Planned::Failed(PlanError::Value {
            template: spec.name.to_string(),
            detail: why.clone(),
        });
    }
    let value = value_of(spec.value, facts);
    let render_failed = |source: RenderError| match source {
        RenderError::TagMissing { key } if value.is_some() => Planned::Waiting {
            why: format!("the instance has no tag `{key}` yet"),
            lacks: Lacks::Name,
        },
        RenderError::TagMissing { key } => Planned::Waiting {
            why: format!("{}, nor tag `{key}`", no_value(spec.value, had)),
            lacks: Lacks::Value { set: None },
        },
        source => Planned::Failed(PlanError::Render {
            template: spec.name.to_string(),
            source,
        }),
    };
    let name = match spec.name.render(facts) {
        Ok(name) => name,
        Err(source) => return render_failed(source),
    };
    let set_identifier = match spec.routing.set_identifier().map(|t| t.render(facts)) {
        None => None,
        Some(Ok(set)) => Some(set),
        Some(Err(source)) => return render_failed(source),
    };
    let zone = match zone_of(spec, &spec.zone, zones) {
        Ok(zone) => zone,
        Err(error) => return Planned::Failed(error),
    };
    if !name.is_within(&zone.name) {
        return Planned::Failed(outside(spec, name, zone));
    }
    if spec.record_type == RecordType::Cname && name == zone.name {
        return Planned::Failed(PlanError::CnameAtApex {
            template: spec.name.to_string(),
            name,
        });
    }
    if let Some(mode) = task_network_mode(spec.value, facts) {
        return Planned::Failed(PlanError::Value {
            template: spec.name.to_string(),
            detail: format!(
                "value task-ipv4 needs a task in awsvpc network mode, and this one uses {mode}: \
                 its address is the instance's (use local-ipv4)"
            ),
        });
    }
    let Some(value) = value else {
        let set = RecordSet {
            zone_id: zone.id.clone(),
            name,
            record_type: spec.record_type,
            set_identifier,
            policy: policy(&spec.routing),
            ttl: spec.ttl,
        };
        return Planned::Waiting {
            why: no_value(spec.value, had),
            lacks: Lacks::Value { set: Some(set) },
        };
    };
    Planned::Ready(DesiredRecord {
        zone_id: zone.id.clone(),
        name,
        record_type: spec.record_type,
        set_identifier,
        policy: policy(&spec.routing),
        ttl: spec.ttl,
        values: vec![value],
        takeover: spec.takeover,
    })
}

/// The PTR record for a record's private address, pointing back at its name.
fn plan_ptr(
    spec: &RecordSpec,
    record: &DesiredRecord,
    facts: &InstanceFacts,
    reverse: &ZoneRef,
    zones: &Zones,
    had: &[ValueSource],
) -> Planned {
    let Some(ip) = facts.local_ipv4 else {
        return Planned::Waiting {
            why: no_value(ValueSource::LocalIpv4, had),
            lacks: Lacks::Value { set: None },
        };
    };
    let zone = match zone_of(spec, reverse, zones) {
        Ok(zone) => zone,
        Err(error) => return Planned::Failed(error),
    };
    let name = DnsName::reverse_of(ip);
    if !name.is_within(&zone.name) {
        return Planned::Failed(outside(spec, name, zone));
    }
    Planned::Ready(DesiredRecord {
        zone_id: zone.id.clone(),
        name,
        record_type: RecordType::Ptr,
        set_identifier: None,
        policy: Policy::Simple,
        ttl: record.ttl,
        values: vec![record.name.to_string()],
        takeover: spec.takeover,
    })
}

fn policy(routing: &Routing) -> Policy {
    match routing {
        Routing::Simple => Policy::Simple,
        Routing::MultiValue { .. } => Policy::MultiValue,
        Routing::Weighted { weight, .. } => Policy::Weighted(*weight),
    }
}

/// True when the record needs the ECS task metadata.
fn uses_task(spec: &RecordSpec) -> bool {
    spec.value == ValueSource::TaskIpv4 || spec.fields().any(|field| field.is_task())
}

/// The network mode of a task that cannot give `task-ipv4`, if so.
fn task_network_mode(source: ValueSource, facts: &InstanceFacts) -> Option<&str> {
    let mode = facts.task.as_ref()?.network_mode.as_deref()?;
    (source == ValueSource::TaskIpv4 && mode != "awsvpc").then_some(mode)
}

/// Why a record waits for a value instance metadata does not give.
fn no_value(source: ValueSource, had: &[ValueSource]) -> String {
    if had.contains(&source) {
        format!("the instance no longer has {source}")
    } else {
        format!("the instance has no {source} yet")
    }
}

/// True when the facts hold a value from `source`.
pub fn has_value(source: ValueSource, facts: &InstanceFacts) -> bool {
    value_of(source, facts).is_some()
}

fn value_of(source: ValueSource, facts: &InstanceFacts) -> Option<String> {
    match source {
        ValueSource::LocalIpv4 => facts.local_ipv4.map(|ip| ip.to_string()),
        ValueSource::PublicIpv4 => facts.public_ipv4.map(|ip| ip.to_string()),
        ValueSource::Ipv6 => facts.ipv6.map(|ip| ip.to_string()),
        ValueSource::LocalHostname => facts.local_hostname.as_ref().map(ToString::to_string),
        ValueSource::PublicHostname => facts.public_hostname.as_ref().map(ToString::to_string),
        ValueSource::TaskIpv4 => facts
            .task
            .as_ref()
            .and_then(|task| task.ipv4)
            .map(|ip| ip.to_string()),
    }
}

fn zone_of<'z>(spec: &RecordSpec, zone: &ZoneRef, zones: &'z Zones) -> Result<&'z Zone, PlanError> {
    zones.get(zone).ok_or_else(|| PlanError::UnknownZone {
        template: spec.name.to_string(),
        zone: zone.clone(),
    })
}

fn outside(spec: &RecordSpec, name: DnsName, zone: &Zone) -> PlanError {
    PlanError::OutsideZone {
        template: spec.name.to_string(),
        name,
        zone_id: zone.id.clone(),
        zone: zone.name.clone(),
    }
}

/// The records the facts describe, for a person, when the hosted zones
/// are not known (yet): each configured record's name and type (its set
/// identifier too), and its PTR record. A name that cannot be rendered is
/// shown as its template.
pub fn described(config: &Config, facts: &InstanceFacts) -> String {
    let mut described = BTreeSet::new();
    for spec in &config.records {
        let name = match spec.name.render(facts) {
            Ok(name) => name.to_string(),
            Err(_) => spec.name.to_string(),
        };
        let set = match spec.routing.set_identifier().map(|set| set.render(facts)) {
            Some(Ok(set)) => format!(" (set {set})"),
            Some(Err(_)) | None => String::new(),
        };
        described.insert(format!("{name} {}{set}", spec.record_type));
        if let (Some(_), Some(ip)) = (&spec.reverse_zone, facts.local_ipv4) {
            described.insert(format!("{} {}", DnsName::reverse_of(ip), RecordType::Ptr));
        }
    }
    described.into_iter().collect::<Vec<_>>().join(", ")
}

/// Groups records into change batches: one batch per zone and name, so that
/// the A and AAAA records of one name change together and a problem with one
/// name never holds back another.
pub fn batches<'r, T>(
    records: impl IntoIterator<Item = (T, &'r DesiredRecord)>,
) -> BTreeMap<(ZoneId, DnsName), Vec<(T, &'r DesiredRecord)>> {
    let mut batches: BTreeMap<(ZoneId, DnsName), Vec<(T, &DesiredRecord)>> = BTreeMap::new();
    for (tag, record) in records {
        batches
            .entry((record.zone_id.clone(), record.name.clone()))
            .or_default()
            .push((tag, record));
    }
    batches
}

/// The names in `records`, for logs and errors.
pub fn names<'r>(records: impl IntoIterator<Item = &'r DesiredRecord>) -> String {
    let names: BTreeSet<String> = records.into_iter().map(ToString::to_string).collect();
    names.into_iter().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn facts() -> InstanceFacts {
        InstanceFacts {
            instance_id: "i-0abc".into(),
            region: "us-east-1".into(),
            az: "us-east-1a".into(),
            local_ipv4: Some(Ipv4Addr::new(10, 0, 0, 10)),
            public_ipv4: None,
            ipv6: Some("2001:db8::10".parse::<Ipv6Addr>().unwrap()),
            local_hostname: Some(DnsName::parse("ip-10-0-0-10.ec2.internal").unwrap()),
            public_hostname: None,
            leaving: None,
            tags: Some(BTreeMap::from([("Name".into(), "web-1".into())])),
            task: None,
            task_error: None,
            bad_values: Vec::new(),
        }
    }

    fn zone(id: &str, name: &str) -> (ZoneRef, Zone) {
        let id = ZoneId::parse(id).unwrap();
        (
            ZoneRef::Id(id.clone()),
            Zone {
                id,
                name: DnsName::parse(name).unwrap(),
                private: false,
            },
        )
    }

    fn zones() -> Zones {
        BTreeMap::from([
            zone("ZA", "example.com"),
            zone("ZB", "example.org"),
            zone("ZREV", "0.10.in-addr.arpa"),
        ])
    }

    fn config(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    fn ready(planned: &[(Slot, Planned)], at: usize) -> &DesiredRecord {
        match &planned[at].1 {
            Planned::Ready(record) => record,
            other => panic!("entry {at} is not ready: {other:?}"),
        }
    }

    #[test]
    fn renders_a_and_aaaa_from_facts() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.internal.example.com"
            ttl = 30
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.internal.example.com"
            type = "AAAA"
            "#,
        );
        let planned = plan(&config, &facts(), &zones());
        let expected_a = DesiredRecord {
            zone_id: ZoneId::parse("ZA").unwrap(),
            name: DnsName::parse("web-1.internal.example.com").unwrap(),
            record_type: RecordType::A,
            set_identifier: None,
            policy: Policy::Simple,
            ttl: 30,
            values: vec!["10.0.0.10".into()],
            takeover: false,
        };
        assert_eq!(
            planned[0],
            (
                Slot {
                    index: 0,
                    ptr: false
                },
                Planned::Ready(expected_a)
            )
        );
        let aaaa = ready(&planned, 1);
        assert_eq!(aaaa.values, ["2001:db8::10"]);
        assert_eq!(aaaa.ttl, 60);
    }

    #[test]
    fn a_missing_public_address_waits_with_its_record_set_known() {
        let config = config(
            "[[record]]\nzone_id = \"ZA\"\nname = \"pub.example.com\"\nvalue = \"public-ipv4\"\n\
             ttl = 300\nset_identifier = \"{instance_id}\"\nweight = 3",
        );
        let planned = plan(&config, &facts(), &zones());
        let Planned::Waiting { why, lacks } = &planned[0].1 else {
            panic!("expected a wait: {planned:?}");
        };
        assert_eq!(why, "the instance has no public-ipv4 yet");
        let set = RecordSet {
            zone_id: ZoneId::parse("ZA").unwrap(),
            name: DnsName::parse("pub.example.com").unwrap(),
            record_type: RecordType::A,
            set_identifier: Some("i-0abc".into()),
            policy: Policy::Weighted(3),
            ttl: 300,
        };
        assert_eq!(lacks, &Lacks::Value { set: Some(set) });
        let mut later = facts();
        later.public_ipv4 = Some(Ipv4Addr::new(203, 0, 113, 7));
        let planned = plan(&config, &later, &zones());
        assert_eq!(ready(&planned, 0).values, ["203.0.113.7"]);

        // Released again: the instance had one, and no longer has.
        let planned = plan_since(&config, &facts(), &zones(), &[ValueSource::PublicIpv4]);
        assert!(
            matches!(&planned[0].1, Planned::Waiting { why, .. }
                if why == "the instance no longer has public-ipv4"),
            "{planned:?}"
        );
    }

    #[test]
    fn tag_problems_fail_or_wait() {
        let config = config("[[record]]\nzone_id = \"ZA\"\nname = \"{tag:Name}.example.com\"");
        let mut facts = facts();
        facts.tags = Some(BTreeMap::new());
        assert!(matches!(
            plan(&config, &facts, &zones())[0].1,
            Planned::Waiting {
                lacks: Lacks::Name,
                ..
            }
        ));

        facts.tags = None;
        let planned = plan(&config, &facts, &zones());
        assert!(matches!(
            &planned[0].1,
            Planned::Failed(PlanError::Render {
                source: RenderError::TagsDisabled { .. },
                ..
            })
        ));

        facts.tags = Some(BTreeMap::from([("Name".into(), "web_1!".into())]));
        let planned = plan(&config, &facts, &zones());
        let Planned::Failed(error) = &planned[0].1 else {
            panic!("expected a failure: {planned:?}");
        };
        assert!(error.to_string().contains("tag `Name`"), "{error}");
    }

    #[test]
    fn a_missing_value_and_tag_lack_the_value_without_a_record_set() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.example.com"
            reverse_zone_id = "ZREV"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.pub.example.com"
            value = "public-ipv4"
            "#,
        );
        let mut facts = facts();
        facts.tags = Some(BTreeMap::new());
        let planned = plan(&config, &facts, &zones());
        // The tag alone: the address is there, only the name is unknown.
        for at in [0, 1] {
            assert!(
                matches!(
                    &planned[at].1,
                    Planned::Waiting {
                        lacks: Lacks::Name,
                        ..
                    }
                ),
                "{planned:?}"
            );
        }
        let Planned::Waiting { why, lacks } = &planned[2].1 else {
            panic!("expected a wait: {planned:?}");
        };
        assert_eq!(why, "the instance has no public-ipv4 yet, nor tag `Name`");
        assert_eq!(lacks, &Lacks::Value { set: None });

        // Without its private address a record and its PTR lack their value;
        // the PTR's name is that address, so its record set is not known.
        facts.tags = Some(BTreeMap::from([("Name".into(), "web-1".into())]));
        facts.local_ipv4 = None;
        let planned = plan(&config, &facts, &zones());
        assert!(
            matches!(
                &planned[0].1,
                Planned::Waiting {
                    lacks: Lacks::Value { set: Some(_) },
                    ..
                }
            ),
            "{planned:?}"
        );
        assert!(
            matches!(
                &planned[1].1,
                Planned::Waiting {
                    lacks: Lacks::Value { set: None },
                    ..
                }
            ),
            "{planned:?}"
        );
    }

    #[test]
    fn names_outside_their_zone_are_refused_before_any_write() {
        let config = config("[[record]]\nzone_id = \"ZA\"\nname = \"{tag:Name}.example.org\"");
        let error = check_zones(&config, &zones()).unwrap_err();
        assert!(matches!(error, PlanError::TemplateOutsideZone { .. }));
        let message = error.to_string();
        assert!(message.contains("ends in `.example.org`"), "{message}");
        assert!(message.contains("outside hosted zone ZA"), "{message}");
        assert!(matches!(
            plan(&config, &facts(), &zones())[0].1,
            Planned::Failed(PlanError::OutsideZone { .. })
        ));
        let inside =
            Config::from_toml("[[record]]\nzone_id = \"ZB\"\nname = \"{tag:Name}.example.org\"")
                .unwrap();
        assert_eq!(check_zones(&inside, &zones()), Ok(()));
    }

    #[test]
    fn a_record_of_an_unknown_zone_is_set_aside_by_the_plan() {
        let config = config(
            "[[record]]\nzone_id = \"ZC\"\nname = \"a.example.com\"\n\
             [[record]]\nzone_id = \"ZA\"\nname = \"b.example.com\"",
        );
        assert_eq!(check_zones(&config, &zones()), Ok(()));
        let planned = plan(&config, &facts(), &zones());
        assert!(matches!(
            planned[0].1,
            Planned::Failed(PlanError::UnknownZone { .. })
        ));
        assert!(matches!(planned[1].1, Planned::Ready(_)));
    }

    #[test]
    fn two_records_rendering_alike_clash() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.example.com"
            [[record]]
            zone_id = "ZA"
            name = "web-1.example.com"
            "#,
        );
        let planned = plan(&config, &facts(), &zones());
        assert!(matches!(planned[0].1, Planned::Ready(_)));
        assert!(matches!(
            planned[1].1,
            Planned::Failed(PlanError::Clash { other: 0, .. })
        ));
    }

    #[test]
    fn a_cname_rendering_onto_another_records_name_clashes() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "web-1.example.com"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.example.com"
            type = "CNAME"
            "#,
        );
        let planned = plan(&config, &facts(), &zones());
        assert!(matches!(planned[0].1, Planned::Ready(_)));
        let Planned::Failed(error) = &planned[1].1 else {
            panic!("expected a clash, got {:?}", planned[1].1);
        };
        assert!(
            error.to_string().contains("a CNAME cannot share its name"),
            "{error}"
        );
    }

    #[test]
    fn weighted_records_rendering_alike_must_share_a_ttl() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.example.com"
            set_identifier = "{instance_id}"
            weight = 1
            ttl = 60
            [[record]]
            zone_id = "ZA"
            name = "web-1.example.com"
            set_identifier = "{az}"
            weight = 1
            ttl = 30
            "#,
        );
        let planned = plan(&config, &facts(), &zones());
        assert!(matches!(planned[0].1, Planned::Ready(_)));
        let Planned::Failed(error) = &planned[1].1 else {
            panic!("expected a clash, got {:?}", planned[1].1);
        };
        assert!(error.to_string().contains("share a TTL"), "{error}");
    }

    #[test]
    fn a_cname_at_the_zone_apex_is_refused() {
        let config =
            config("[[record]]\nzone_id = \"ZA\"\nname = \"example.com\"\ntype = \"CNAME\"");
        let planned = plan(&config, &facts(), &zones());
        assert!(matches!(
            planned[0].1,
            Planned::Failed(PlanError::CnameAtApex { .. })
        ));
    }

    #[test]
    fn shared_names_carry_set_identifier_and_policy() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "fleet.example.com"
            set_identifier = "{instance_id}"
            multivalue = true
            [[record]]
            zone_id = "ZA"
            name = "canary.example.com"
            set_identifier = "{az}-{instance_id}"
            weight = 5
            "#,
        );
        let planned = plan(&config, &facts(), &zones());
        let multi = ready(&planned, 0);
        assert_eq!(multi.set_identifier.as_deref(), Some("i-0abc"));
        assert_eq!(multi.policy, Policy::MultiValue);
        assert_eq!(multi.to_string(), "fleet.example.com. A (set i-0abc)");
        let weighted = ready(&planned, 1);
        assert_eq!(
            weighted.set_identifier.as_deref(),
            Some("us-east-1a-i-0abc")
        );
        assert_eq!(weighted.policy, Policy::Weighted(5));
    }

    #[test]
    fn cname_points_at_the_first_host_name() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "www.example.com"
            type = "CNAME"
            [[record]]
            zone_id = "ZA"
            name = "pub.example.com"
            type = "CNAME"
            value = "public-hostname"
            "#,
        );
        let planned = plan(&config, &facts(), &zones());
        assert_eq!(ready(&planned, 0).values, ["ip-10-0-0-10.ec2.internal."]);
        assert!(matches!(
            &planned[1].1,
            Planned::Waiting { why, lacks: Lacks::Value { set: Some(_) } }
                if why.contains("public-hostname")
        ));
    }

    #[test]
    fn a_garbage_value_fails_only_the_records_that_use_it() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "www.example.com"
            type = "CNAME"
            value = "public-hostname"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.example.com"
            "#,
        );
        let mut facts = facts();
        facts.bad_values = vec![(
            ValueSource::PublicHostname,
            "instance metadata public-hostname answered \"Service Unavailable\"".into(),
        )];
        let planned = plan(&config, &facts, &zones());
        let Planned::Failed(error) = &planned[0].1 else {
            panic!("expected a failure, got {:?}", planned[0].1);
        };
        assert!(error.to_string().contains("public-hostname"), "{error}");
        assert_eq!(ready(&planned, 1).values, ["10.0.0.10"]);
    }

    #[test]
    fn ptr_records_point_back_at_the_name() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.example.com"
            reverse_zone_id = "ZREV"
            "#,
        );
        let planned = plan(&config, &facts(), &zones());
        assert_eq!(planned.len(), 2);
        assert_eq!(
            planned[1].0,
            Slot {
                index: 0,
                ptr: true
            }
        );
        let ptr = ready(&planned, 1);
        assert_eq!(ptr.name.as_str(), "10.0.0.10.in-addr.arpa.");
        assert_eq!(ptr.record_type, RecordType::Ptr);
        assert_eq!(ptr.values, ["web-1.example.com."]);
        assert_eq!(ptr.zone_id.as_str(), "ZREV");

        let mut elsewhere = facts();
        elsewhere.local_ipv4 = Some(Ipv4Addr::new(192, 168, 1, 1));
        let planned = plan(&config, &elsewhere, &zones());
        assert!(matches!(
            planned[1].1,
            Planned::Failed(PlanError::OutsideZone { .. })
        ));
    }

    #[test]
    fn task_records_take_the_tasks_address_in_awsvpc_mode_only() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "{task_id}.{cluster}.example.com"
            value = "task-ipv4"
            "#,
        );
        let mut facts = facts();
        facts.task = Some(crate::ecs::TaskFacts {
            task_id: "158d1c8083dd49d6b527399fd6414f5c".into(),
            cluster: "web".into(),
            ipv4: Some(Ipv4Addr::new(10, 0, 2, 106)),
            network_mode: Some("awsvpc".into()),
        });
        let planned = plan(&config, &facts, &zones());
        let record = ready(&planned, 0);
        assert_eq!(
            record.name.as_str(),
            "158d1c8083dd49d6b527399fd6414f5c.web.example.com."
        );
        assert_eq!(record.values, ["10.0.2.106"]);
        assert_eq!(facts.owner_id(), "158d1c8083dd49d6b527399fd6414f5c");

        if let Some(task) = facts.task.as_mut() {
            task.network_mode = Some("bridge".into());
        }
        let planned = plan(&config, &facts, &zones());
        assert!(
            matches!(&planned[0].1, Planned::Failed(PlanError::Value { detail, .. }) if detail.contains("awsvpc"))
        );
    }

    #[test]
    fn described_records_need_no_zones() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "{tag:Name}.example.com"
            reverse_zone_id = "ZREV"
            [[record]]
            zone_id = "ZA"
            name = "fleet.example.com"
            set_identifier = "{instance_id}"
            multivalue = true
            [[record]]
            zone_id = "ZA"
            name = "{tag:Role}.example.com"
            type = "AAAA"
            "#,
        );
        assert_eq!(
            described(&config, &facts()),
            "10.0.0.10.in-addr.arpa. PTR, fleet.example.com. A (set i-0abc), \
             web-1.example.com. A, {tag:Role}.example.com AAAA"
        );
    }

    #[test]
    fn batches_group_by_zone_and_name() {
        let config = config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "a.example.com"
            [[record]]
            zone_id = "ZA"
            name = "a.example.com"
            type = "AAAA"
            [[record]]
            zone_id = "ZA"
            name = "b.example.com"
            "#,
        );
        let planned = plan(&config, &facts(), &zones());
        let ready: Vec<(Slot, &DesiredRecord)> = planned
            .iter()
            .filter_map(|(slot, p)| match p {
                Planned::Ready(r) => Some((*slot, r)),
                _ => None,
            })
            .collect();
        let grouped = batches(ready);
        assert_eq!(grouped.len(), 2);
        let first = grouped.values().next().unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(
            names(first.iter().map(|(_, r)| *r)),
            "a.example.com. A, a.example.com. AAAA"
        );
    }
}
