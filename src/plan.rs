//! The pure plan: which records should exist, given the configuration, the
//! instance's facts and the names of the hosted zones.
//!
//! Nothing here does I/O, so every rule about what may be published is
//! tested without a socket. The agent loop compares one plan with the last
//! one it wrote and sends only the difference.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::{Config, RecordSpec, RecordType, ValueSource, ZoneId};
use crate::dns::DnsName;
use crate::metadata::InstanceFacts;
use crate::template::RenderError;

/// The name of each hosted zone the configuration uses, as Route 53 holds it.
pub type ZoneNames = BTreeMap<ZoneId, DnsName>;

/// One record set as the agent wants it to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredRecord {
    pub zone_id: ZoneId,
    pub name: DnsName,
    pub record_type: RecordType,
    pub ttl: u32,
    /// The record's values in the text form Route 53 stores.
    pub values: Vec<String>,
}

impl DesiredRecord {
    /// The key under which Route 53 holds this record set in its zone.
    pub fn key(&self) -> (&ZoneId, &DnsName, RecordType) {
        (&self.zone_id, &self.name, self.record_type)
    }
}

impl fmt::Display for DesiredRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.record_type)
    }
}

/// What the plan says about one configured record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// The record can be written as given.
    Ready(DesiredRecord),
    /// Not writable yet, but it may become so without a configuration change
    /// (an Elastic IP associated later, a tag added by Auto Scaling).
    Waiting(String),
    /// Cannot be written until the instance or the configuration changes.
    Failed(PlanError),
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
    #[error("record `{template}`: the hosted zone {zone_id} is not known")]
    UnknownZone { template: String, zone_id: ZoneId },
    #[error("record `{template}`: {name} lies outside hosted zone {zone_id} ({zone})")]
    OutsideZone {
        template: String,
        name: DnsName,
        zone_id: ZoneId,
        zone: DnsName,
    },
    #[error(
        "record `{template}` renders to {name} {record_type}, which record[{other}] also writes"
    )]
    Clash {
        template: String,
        name: DnsName,
        record_type: RecordType,
        other: usize,
    },
}

/// Checks, before any write, that every template can only render to names
/// inside its zone. Fields fill whole labels and literal text is fixed, so
/// the template's shape decides this for every instance alike.
pub fn check_zones(config: &Config, zones: &ZoneNames) -> Result<(), PlanError> {
    for spec in &config.records {
        let zone = zone_of(spec, zones)?;
        // The shape parsed when the configuration was loaded.
        if let Ok(shape) = spec.name.shape()
            && !shape.is_within(zone)
        {
            return Err(outside(spec, shape, zone));
        }
    }
    Ok(())
}

/// Works out every configured record from the facts. The result has one entry
/// per configured record, in configuration order.
pub fn plan(config: &Config, facts: &InstanceFacts, zones: &ZoneNames) -> Vec<Planned> {
    let mut claimed: BTreeMap<(ZoneId, DnsName, RecordType), usize> = BTreeMap::new();
    config
        .records
        .iter()
        .enumerate()
        .map(|(index, spec)| match plan_one(spec, facts, zones) {
            Planned::Ready(record) => {
                let key = (
                    record.zone_id.clone(),
                    record.name.clone(),
                    record.record_type,
                );
                match claimed.get(&key) {
                    Some(&other) => Planned::Failed(PlanError::Clash {
                        template: spec.name.to_string(),
                        name: record.name,
                        record_type: record.record_type,
                        other,
                    }),
                    None => {
                        claimed.insert(key, index);
                        Planned::Ready(record)
                    }
                }
            }
            other => other,
        })
        .collect()
}

fn plan_one(spec: &RecordSpec, facts: &InstanceFacts, zones: &ZoneNames) -> Planned {
    let name = match spec.name.render(facts) {
        Ok(name) => name,
        Err(RenderError::TagMissing { key }) => {
            return Planned::Waiting(format!("the instance has no tag `{key}` yet"));
        }
        Err(source) => {
            return Planned::Failed(PlanError::Render {
                template: spec.name.to_string(),
                source,
            });
        }
    };
    let zone = match zone_of(spec, zones) {
        Ok(zone) => zone,
        Err(error) => return Planned::Failed(error),
    };
    if !name.is_within(zone) {
        return Planned::Failed(outside(spec, name, zone));
    }
    let Some(value) = value_of(spec.value, facts) else {
        return Planned::Waiting(format!("the instance has no {} address yet", spec.value));
    };
    Planned::Ready(DesiredRecord {
        zone_id: spec.zone_id.clone(),
        name,
        record_type: spec.record_type,
        ttl: spec.ttl,
        values: vec![value],
    })
}

fn value_of(source: ValueSource, facts: &InstanceFacts) -> Option<String> {
    match source {
        ValueSource::LocalIpv4 => facts.local_ipv4.map(|ip| ip.to_string()),
        ValueSource::PublicIpv4 => facts.public_ipv4.map(|ip| ip.to_string()),
        ValueSource::Ipv6 => facts.ipv6.map(|ip| ip.to_string()),
    }
}

fn zone_of<'z>(spec: &RecordSpec, zones: &'z ZoneNames) -> Result<&'z DnsName, PlanError> {
    zones
        .get(&spec.zone_id)
        .ok_or_else(|| PlanError::UnknownZone {
            template: spec.name.to_string(),
            zone_id: spec.zone_id.clone(),
        })
}

fn outside(spec: &RecordSpec, name: DnsName, zone: &DnsName) -> PlanError {
    PlanError::OutsideZone {
        template: spec.name.to_string(),
        name,
        zone_id: spec.zone_id.clone(),
        zone: zone.clone(),
    }
}

/// Groups records into change batches: one batch per zone and name, so that
/// the A and AAAA records of one name change together and a problem with one
/// name never holds back another.
pub fn batches<'r>(
    records: impl IntoIterator<Item = &'r DesiredRecord>,
) -> BTreeMap<(ZoneId, DnsName), Vec<&'r DesiredRecord>> {
    let mut batches: BTreeMap<(ZoneId, DnsName), Vec<&DesiredRecord>> = BTreeMap::new();
    for record in records {
        batches
            .entry((record.zone_id.clone(), record.name.clone()))
            .or_default()
            .push(record);
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
            tags: Some(BTreeMap::from([("Name".into(), "web-1".into())])),
        }
    }

    fn zones() -> ZoneNames {
        BTreeMap::from([
            (
                ZoneId::parse("ZA").unwrap(),
                DnsName::parse("example.com").unwrap(),
            ),
            (
                ZoneId::parse("ZB").unwrap(),
                DnsName::parse("example.org").unwrap(),
            ),
        ])
    }

    fn config(text: &str) -> Config {
        Config::from_toml(text).unwrap()
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
            ttl: 30,
            values: vec!["10.0.0.10".into()],
        };
        assert_eq!(planned[0], Planned::Ready(expected_a));
        let Planned::Ready(aaaa) = &planned[1] else {
            panic!("AAAA not ready: {:?}", planned[1]);
        };
        assert_eq!(aaaa.values, ["2001:db8::10"]);
        assert_eq!(aaaa.ttl, 60);
    }

    #[test]
    fn a_missing_public_address_waits() {
        let config = config(
            "[[record]]\nzone_id = \"ZA\"\nname = \"pub.example.com\"\nvalue = \"public-ipv4\"",
        );
        let planned = plan(&config, &facts(), &zones());
        assert!(
            matches!(&planned[0], Planned::Waiting(why) if why.contains("public-ipv4")),
            "{planned:?}"
        );
        let mut later = facts();
        later.public_ipv4 = Some(Ipv4Addr::new(203, 0, 113, 7));
        let planned = plan(&config, &later, &zones());
        assert!(matches!(&planned[0], Planned::Ready(r) if r.values == ["203.0.113.7"]));
    }

    #[test]
    fn tag_problems_fail_or_wait() {
        let config = config("[[record]]\nzone_id = \"ZA\"\nname = \"{tag:Name}.example.com\"");
        let mut facts = facts();
        facts.tags = Some(BTreeMap::new());
        assert!(matches!(
            plan(&config, &facts, &zones())[0],
            Planned::Waiting(_)
        ));

        facts.tags = None;
        let planned = plan(&config, &facts, &zones());
        assert!(matches!(
            &planned[0],
            Planned::Failed(PlanError::Render {
                source: RenderError::TagsDisabled { .. },
                ..
            })
        ));

        facts.tags = Some(BTreeMap::from([("Name".into(), "web_1!".into())]));
        let planned = plan(&config, &facts, &zones());
        let Planned::Failed(error) = &planned[0] else {
            panic!("expected a failure: {planned:?}");
        };
        assert!(error.to_string().contains("tag `Name`"), "{error}");
    }

    #[test]
    fn names_outside_their_zone_are_refused_before_any_write() {
        let config = config("[[record]]\nzone_id = \"ZA\"\nname = \"{tag:Name}.example.org\"");
        let error = check_zones(&config, &zones()).unwrap_err();
        assert!(matches!(error, PlanError::OutsideZone { .. }));
        assert!(
            error.to_string().contains("outside hosted zone ZA"),
            "{error}"
        );
        assert!(matches!(
            plan(&config, &facts(), &zones())[0],
            Planned::Failed(PlanError::OutsideZone { .. })
        ));
        let inside = config_in_zone();
        assert_eq!(check_zones(&inside, &zones()), Ok(()));
    }

    fn config_in_zone() -> Config {
        config("[[record]]\nzone_id = \"ZB\"\nname = \"{tag:Name}.example.org\"")
    }

    #[test]
    fn an_unknown_zone_is_reported() {
        let config = config("[[record]]\nzone_id = \"ZC\"\nname = \"a.example.com\"");
        assert!(matches!(
            check_zones(&config, &zones()),
            Err(PlanError::UnknownZone { .. })
        ));
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
        assert!(matches!(planned[0], Planned::Ready(_)));
        assert!(matches!(
            planned[1],
            Planned::Failed(PlanError::Clash { other: 0, .. })
        ));
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
        let ready: Vec<&DesiredRecord> = planned
            .iter()
            .filter_map(|p| match p {
                Planned::Ready(r) => Some(r),
                _ => None,
            })
            .collect();
        let grouped = batches(ready);
        assert_eq!(grouped.len(), 2);
        let first = grouped.values().next().unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(
            names(first.iter().copied()),
            "a.example.com. A, a.example.com. AAAA"
        );
    }
}
