//! Ownership: which records are this instance's, and whether it may write or
//! delete what is live.
//!
//! Every record the agent writes has a companion TXT record, its *marker*,
//! written in the same change batch. The marker's name is the record's name
//! with `<owner_prefix>.<type>[-<set identifier>]` put before it, so it never
//! shares a name with the record (a CNAME may not share its name with
//! anything). Its one value reads
//! `"heritage=route53-agent,instance=<id>,type=<TYPE>[,set=<set id>]"`.
//!
//! Everything here is pure: Route 53 answers come in as [`LiveSet`]s, and the
//! functions say what the agent may do with them.

use std::fmt;

use crate::config::RecordType;
use crate::dns::{DnsName, NameError};
use crate::plan::{DesiredRecord, Policy};

/// The `heritage` every marker carries, so that markers of other tools (or
/// other TXT records under the prefix) are never taken for ours.
pub const HERITAGE: &str = "route53-agent";

/// A record set as it is live in a zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSet {
    pub name: DnsName,
    /// As Route 53 names it: `A`, `TXT`, `MX`...
    pub record_type: String,
    pub set_identifier: Option<String>,
    pub policy: Policy,
    pub ttl: Option<i64>,
    pub values: Vec<String>,
    pub is_alias: bool,
    /// A health check someone attached to the set (the agent never sets
    /// one): a DELETE must repeat it, and an update of our own set keeps it.
    pub health_check_id: Option<String>,
}

impl LiveSet {
    /// True when the live set holds exactly what `record` describes.
    pub fn holds(&self, record: &DesiredRecord) -> bool {
        !self.is_alias
            && self.is(record.record_type)
            && self.policy == record.policy
            && self.ttl == Some(i64::from(record.ttl))
            && normalised(&self.values) == normalised(&record.values)
    }
}

impl LiveSet {
    pub fn is(&self, record_type: RecordType) -> bool {
        self.record_type == record_type.as_str()
    }

    /// False for a set with fields the agent never writes: an alias target,
    /// or a routing policy other than simple, multivalue and weighted
    /// (failover, latency, geolocation, CIDR, a traffic policy). Someone
    /// else made or changed such a set, whatever marker is beside it.
    pub fn could_be_ours(&self) -> bool {
        !self.is_alias && self.policy != Policy::Other
    }

    /// True when this is the set `record` would write: same name, type and
    /// set identifier.
    pub fn is_set_of(&self, record: &DesiredRecord) -> bool {
        self.name == record.name
            && self.is(record.record_type)
            && self.set_identifier == record.set_identifier
    }
}

impl fmt::Display for LiveSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_alias {
            return write!(f, "{} {} (an alias)", self.name, self.record_type);
        }
        let ttl = self.ttl.map_or("-".to_string(), |ttl| ttl.to_string());
        write!(
            f,
            "{} {} TTL {ttl} {}",
            self.name,
            self.record_type,
            self.values.join(" ")
        )
    }
}

/// Values compared as Route 53 would: addresses by value (an IPv6 address
/// has many spellings), names without case or trailing dot, in any order.
fn normalised(values: &[String]) -> Vec<String> {
    let mut values: Vec<String> = values
        .iter()
        .map(|value| match value.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => value.trim_end_matches('.').to_ascii_lowercase(),
        })
        .collect();
    values.sort();
    values
}

/// What a marker says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub instance_id: String,
    pub record_type: RecordType,
    pub set_identifier: Option<String>,
}

impl Marker {
    /// The marker this instance writes beside `record`.
    pub fn for_record(instance_id: &str, record: &DesiredRecord) -> Marker {
        Marker {
            instance_id: instance_id.to_string(),
            record_type: record.record_type,
            set_identifier: record.set_identifier.clone(),
        }
    }

    /// The TXT value, quoted as Route 53 wants it.
    pub fn txt_value(&self) -> String {
        let set = self
            .set_identifier
            .as_ref()
            .map(|set| format!(",set={set}"))
            .unwrap_or_default();
        format!(
            "\"heritage={HERITAGE},instance={},type={}{set}\"",
            self.instance_id, self.record_type
        )
    }

    /// Reads a TXT value back; `None` for anything that is not our marker.
    pub fn parse(value: &str) -> Option<Marker> {
        let text = value.trim().strip_prefix('"')?.strip_suffix('"')?;
        let mut heritage = None;
        let mut instance_id = None;
        let mut record_type = None;
        let mut set_identifier = None;
        for pair in text.split(',') {
            let (key, value) = pair.split_once('=')?;
            match key {
                "heritage" => heritage = Some(value),
                "instance" => instance_id = Some(value.to_string()),
                "type" => record_type = parse_type(value),
                "set" => set_identifier = Some(value.to_string()),
                _ => {}
            }
        }
        if heritage != Some(HERITAGE) {
            return None;
        }
        Some(Marker {
            instance_id: instance_id.filter(|id| !id.is_empty())?,
            record_type: record_type?,
            set_identifier,
        })
    }
}

fn parse_type(text: &str) -> Option<RecordType> {
    [
        RecordType::A,
        RecordType::Aaaa,
        RecordType::Cname,
        RecordType::Ptr,
    ]
    .into_iter()
    .find(|kind| kind.as_str() == text)
}

/// The marker's name for a record: `<prefix>.<type>[-<set>].<name>`.
pub fn marker_name(prefix: &str, record: &DesiredRecord) -> Result<DnsName, NameError> {
    let kind = record.record_type.as_str().to_ascii_lowercase();
    let label = match &record.set_identifier {
        Some(set) => format!("{kind}-{}", set.to_ascii_lowercase()),
        None => kind,
    };
    record.name.prefixed(&format!("{prefix}.{label}"))
}

/// The record a marker found in a zone stands for: its name less the prefix
/// and the type label. `None` when the name is not a marker's name.
pub fn marked_name(prefix: &str, marker_name: &DnsName) -> Option<DnsName> {
    let rest = marker_name.without_prefix(prefix)?;
    let type_label = rest.first_label().to_string();
    rest.without_prefix(&type_label)
}

/// Who owns what is live at a record's exact name, type and set identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// No record there.
    Nobody,
    /// Our marker is beside it.
    Us,
    /// Another instance's marker is beside it.
    Instance(String),
    /// A record with no marker: made by a person or another tool.
    Unmarked,
}

/// Reads ownership from the live record and the live marker's values. A
/// record the agent could not have written (see [`LiveSet::could_be_ours`])
/// counts as unmarked, whatever the marker says.
pub fn owner(
    record: Option<&LiveSet>,
    marker_values: &[String],
    instance_id: &str,
    wanted: &DesiredRecord,
) -> Owner {
    match record {
        None => return Owner::Nobody,
        Some(live) if !live.could_be_ours() => return Owner::Unmarked,
        Some(_) => {}
    }
    let marker = marker_values
        .iter()
        .find_map(|value| Marker::parse(value))
        .filter(|marker| {
            marker.record_type == wanted.record_type
                && marker.set_identifier == wanted.set_identifier
        });
    match marker {
        Some(marker) if marker.instance_id == instance_id => Owner::Us,
        Some(marker) => Owner::Instance(marker.instance_id),
        None => Owner::Unmarked,
    }
}

/// What the agent may do about a record it wants to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing there: CREATE it, so that a racing writer fails instead of
    /// being overwritten.
    Create,
    /// Ours already (perhaps from before a hard stop): UPSERT it.
    Update,
    /// Not ours, but the configuration says to take it: UPSERT it and move
    /// the marker to this instance.
    TakeOver { from: String },
    /// Leave it.
    Refuse(String),
}

/// Decides from the owner of the live record. A PTR record names an address,
/// and a private address belongs to one instance at a time, so a PTR marked
/// by another instance is stale and is taken without `takeover`.
pub fn decide(owner: &Owner, record: &DesiredRecord) -> Decision {
    match owner {
        Owner::Nobody => Decision::Create,
        Owner::Us => Decision::Update,
        Owner::Instance(other) if record.takeover || record.record_type == RecordType::Ptr => {
            Decision::TakeOver {
                from: format!("instance {other}"),
            }
        }
        Owner::Unmarked if record.takeover => Decision::TakeOver {
            from: "an unmarked record (made by a person or another tool)".into(),
        },
        Owner::Instance(other) => Decision::Refuse(format!(
            "{record} belongs to instance {other}; set takeover = true to take it"
        )),
        Owner::Unmarked => Decision::Refuse(format!(
            "{record} already exists and is not marked as route53-agent's (a person or another \
             tool made it); set takeover = true to overwrite it"
        )),
    }
}

/// Route 53 rejects a batch that mixes routing policies under one name and
/// type, a weighted set whose TTL differs from its siblings', and a CNAME
/// beside anything else. `others` are the live sets at the record's name,
/// less the record's own. Returns why the record cannot be written.
pub fn conflict(record: &DesiredRecord, others: &[LiveSet]) -> Option<String> {
    for other in others.iter().filter(|other| other.name == record.name) {
        if record.record_type == RecordType::Cname || other.is(RecordType::Cname) {
            if !other.is(record.record_type) || other.set_identifier.is_some() {
                return Some(format!(
                    "{record} cannot be written: {other} is at the same name, and a CNAME \
                     shares its name with nothing"
                ));
            }
            continue;
        }
        if !other.is(record.record_type) {
            continue;
        }
        if other.policy.kind() != record.policy.kind() {
            return Some(format!(
                "{record} is {} but {other} is {}; records of one name and type must share \
                 a routing policy",
                record.policy.kind(),
                other.policy.kind()
            ));
        }
        if matches!(record.policy, Policy::Weighted(_)) && other.ttl != Some(i64::from(record.ttl))
        {
            return Some(format!(
                "{record} has TTL {} but {other} does not; weighted records of one name share a \
                 TTL",
                record.ttl
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ZoneId;

    fn record(policy: Policy, set: Option<&str>) -> DesiredRecord {
        DesiredRecord {
            zone_id: ZoneId::parse("ZA").unwrap(),
            name: DnsName::parse("web.example.com").unwrap(),
            record_type: RecordType::A,
            set_identifier: set.map(str::to_string),
            policy,
            ttl: 60,
            values: vec!["10.0.0.10".into()],
            takeover: false,
        }
    }

    fn live(record_type: RecordType, policy: Policy, set: Option<&str>, ttl: i64) -> LiveSet {
        LiveSet {
            name: DnsName::parse("web.example.com").unwrap(),
            record_type: record_type.as_str().to_string(),
            set_identifier: set.map(str::to_string),
            policy,
            ttl: Some(ttl),
            values: vec!["10.0.0.99".into()],
            is_alias: false,
            health_check_id: None,
        }
    }

    #[test]
    fn markers_round_trip_and_ignore_strangers() {
        let marker = Marker {
            instance_id: "i-0abc".into(),
            record_type: RecordType::Aaaa,
            set_identifier: Some("i-0abc".into()),
        };
        let text = marker.txt_value();
        assert_eq!(
            text,
            "\"heritage=route53-agent,instance=i-0abc,type=AAAA,set=i-0abc\""
        );
        assert_eq!(Marker::parse(&text), Some(marker));
        assert_eq!(Marker::parse("\"v=spf1 -all\""), None);
        assert_eq!(Marker::parse("\"heritage=external-dns,owner=x\""), None);
        assert_eq!(
            Marker::parse("heritage=route53-agent,instance=i-1,type=A"),
            None
        );
        assert_eq!(
            Marker::parse("\"heritage=route53-agent,instance=,type=A\""),
            None
        );
    }

    #[test]
    fn marker_names_carry_type_and_set() {
        let simple = record(Policy::Simple, None);
        let name = marker_name("_route53-agent", &simple).unwrap();
        assert_eq!(name.as_str(), "_route53-agent.a.web.example.com.");
        assert_eq!(
            marked_name("_route53-agent", &name),
            Some(simple.name.clone())
        );
        let shared = record(Policy::MultiValue, Some("i-0ABC"));
        let name = marker_name("_route53-agent", &shared).unwrap();
        assert_eq!(name.as_str(), "_route53-agent.a-i-0abc.web.example.com.");
        assert_eq!(marked_name("_route53-agent", &name), Some(shared.name));
        assert_eq!(marked_name("_other", &name), None);
    }

    #[test]
    fn ownership_decides_what_may_be_written() {
        let wanted = record(Policy::Simple, None);
        let there = live(RecordType::A, Policy::Simple, None, 60);
        let ours = Marker::for_record("i-me", &wanted).txt_value();
        let theirs = Marker::for_record("i-other", &wanted).txt_value();

        assert_eq!(
            owner(None, std::slice::from_ref(&ours), "i-me", &wanted),
            Owner::Nobody
        );
        assert_eq!(owner(Some(&there), &[ours], "i-me", &wanted), Owner::Us);
        assert_eq!(
            owner(Some(&there), &[theirs], "i-me", &wanted),
            Owner::Instance("i-other".into())
        );
        assert_eq!(owner(Some(&there), &[], "i-me", &wanted), Owner::Unmarked);
        let aaaa_marker = Marker {
            record_type: RecordType::Aaaa,
            ..Marker::for_record("i-me", &wanted)
        };
        assert_eq!(
            owner(Some(&there), &[aaaa_marker.txt_value()], "i-me", &wanted),
            Owner::Unmarked
        );
        // Our marker beside a set the agent never writes does not make it
        // ours: someone replaced the record with an alias, or routed it
        // another way.
        let alias = LiveSet {
            is_alias: true,
            values: Vec::new(),
            ..there.clone()
        };
        let ours = Marker::for_record("i-me", &wanted).txt_value();
        assert_eq!(
            owner(Some(&alias), std::slice::from_ref(&ours), "i-me", &wanted),
            Owner::Unmarked
        );
        let failover = live(RecordType::A, Policy::Other, Some("primary"), 60);
        assert_eq!(
            owner(
                Some(&failover),
                std::slice::from_ref(&ours),
                "i-me",
                &wanted
            ),
            Owner::Unmarked
        );
        let checked = LiveSet {
            health_check_id: Some("hc-1".into()),
            ..there.clone()
        };
        assert_eq!(owner(Some(&checked), &[ours], "i-me", &wanted), Owner::Us);

        assert_eq!(decide(&Owner::Nobody, &wanted), Decision::Create);
        assert_eq!(decide(&Owner::Us, &wanted), Decision::Update);
        assert!(
            matches!(decide(&Owner::Unmarked, &wanted), Decision::Refuse(why) if why.contains("takeover = true"))
        );
        assert!(
            matches!(decide(&Owner::Instance("i-other".into()), &wanted), Decision::Refuse(why) if why.contains("i-other"))
        );
        let bold = DesiredRecord {
            takeover: true,
            ..wanted.clone()
        };
        assert!(matches!(
            decide(&Owner::Unmarked, &bold),
            Decision::TakeOver { .. }
        ));
        assert!(matches!(
            decide(&Owner::Instance("i-x".into()), &bold),
            Decision::TakeOver { .. }
        ));
        let ptr = DesiredRecord {
            record_type: RecordType::Ptr,
            ..wanted
        };
        assert!(matches!(
            decide(&Owner::Instance("i-x".into()), &ptr),
            Decision::TakeOver { .. }
        ));
        assert!(matches!(
            decide(&Owner::Unmarked, &ptr),
            Decision::Refuse(_)
        ));
    }

    #[test]
    fn policy_mixes_are_found_before_sending() {
        let multi = record(Policy::MultiValue, Some("i-me"));
        let sibling = live(RecordType::A, Policy::MultiValue, Some("i-other"), 60);
        assert_eq!(conflict(&multi, std::slice::from_ref(&sibling)), None);
        let simple = live(RecordType::A, Policy::Simple, None, 60);
        assert!(
            conflict(&multi, &[simple])
                .unwrap()
                .contains("routing policy")
        );
        let weighted = record(Policy::Weighted(10), Some("i-me"));
        let heavier = live(RecordType::A, Policy::Weighted(5), Some("i-2"), 300);
        assert!(
            conflict(&weighted, &[heavier])
                .unwrap()
                .contains("share a TTL")
        );
        let cname = live(RecordType::Cname, Policy::Simple, None, 60);
        assert!(
            conflict(&record(Policy::Simple, None), &[cname])
                .unwrap()
                .contains("CNAME")
        );
        let txt = live(RecordType::Txt, Policy::Simple, None, 60);
        assert_eq!(conflict(&record(Policy::Simple, None), &[txt]), None);
    }

    #[test]
    fn holding_compares_policy_ttl_and_values_by_meaning() {
        let mut wanted = record(Policy::Simple, None);
        wanted.values = vec!["2001:db8::1".into()];
        let mut there = live(RecordType::A, Policy::Simple, None, 60);
        there.values = vec!["2001:DB8:0::1".into()];
        assert!(there.holds(&wanted));
        there.ttl = Some(300);
        assert!(!there.holds(&wanted));
        there.ttl = Some(60);
        there.policy = Policy::Weighted(1);
        assert!(!there.holds(&wanted));
        let mut cname = record(Policy::Simple, None);
        cname.values = vec!["host.example.com.".into()];
        cname.record_type = RecordType::Cname;
        let mut live_cname = live(RecordType::Cname, Policy::Simple, None, 60);
        live_cname.values = vec!["Host.example.com".into()];
        assert!(live_cname.holds(&cname));
    }
}
