//! The least-privilege IAM policy for an agent with a given configuration.
//!
//! Everything here is pure: configuration in, policy document out. The
//! policy allows ChangeResourceRecordSets only on the configured hosted
//! zones, and narrows it with Route 53's condition keys to the names the
//! records can take, the record types they use and the two actions the
//! agent sends (UPSERT and DELETE). The read calls the agent makes are
//! allowed beside it.
//!
//! Known limits, each a limit of IAM rather than of this builder:
//!
//! - A template field becomes `*`, which IAM lets match any characters,
//!   dots included, while the agent only ever fills a field with one
//!   label. The policy is therefore wider than the agent's behaviour, but
//!   never reaches outside the literal part of the name (its zone).
//! - The three condition keys are checked independently: IAM cannot tie a
//!   record type to a name. The ownership TXT names and the record names
//!   share one statement, so TXT is allowed on the record names too, and A
//!   or AAAA on the ownership names. A change batch carrying a record and
//!   its TXT companion together needs both in one statement.
//! - A zone given by name (`zone = ...`) has no id until the agent looks it
//!   up, so its statement names every hosted zone (`hostedzone/*`); the
//!   name conditions still hold it to the configured names. A reverse zone
//!   is given by id, but its name is not known either: its PTR names are
//!   allowed as `*.in-addr.arpa`.
//! - ARNs are written for the commercial partition (`arn:aws:`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::{Config, RecordSpec, RecordType, ZoneRef};
use crate::template::Part;

/// The version every current IAM policy document declares.
const POLICY_VERSION: &str = "2012-10-17";

const CHANGE_ACTION: &str = "route53:ChangeResourceRecordSets";
/// Calls that read one hosted zone, allowed on the configured zones only.
const ZONE_READ_ACTIONS: &[&str] = &["route53:GetHostedZone", "route53:ListResourceRecordSets"];
/// Polls a change until it is INSYNC. Changes are their own resource type.
const GET_CHANGE_ACTION: &str = "route53:GetChange";
/// Finds a zone from its name. It supports no resource-level permission.
const FIND_ZONE_ACTION: &str = "route53:ListHostedZonesByName";
/// The ChangeResourceRecordSets actions the agent sends: CREATE for a name
/// nobody holds (so that a racing instance fails instead of overwriting),
/// UPSERT for its own records, DELETE for its own records at shutdown.
const CHANGE_BATCH_ACTIONS: &[&str] = &["CREATE", "UPSERT", "DELETE"];

const NAMES_KEY: &str = "route53:ChangeResourceRecordSetsNormalizedRecordNames";
const TYPES_KEY: &str = "route53:ChangeResourceRecordSetsRecordTypes";
const ACTIONS_KEY: &str = "route53:ChangeResourceRecordSetsActions";

/// An IAM policy document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    pub version: &'static str,
    #[serde(rename = "Statement")]
    pub statements: Vec<Statement>,
}

/// One Allow statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: String,
    pub effect: &'static str,
    pub action: Vec<String>,
    pub resource: Vec<String>,
    /// Operator (`ForAllValues:StringEquals`) → condition key → values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub condition: BTreeMap<&'static str, BTreeMap<&'static str, Vec<String>>>,
}

impl Policy {
    /// The document as IAM takes it, pretty-printed.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

/// Builds the policy an agent with `config` needs.
pub fn policy(config: &Config) -> Policy {
    let mut by_zone: BTreeMap<&ZoneRef, Vec<(String, RecordType)>> = BTreeMap::new();
    for record in &config.records {
        by_zone
            .entry(&record.zone)
            .or_default()
            .push((name_pattern(record), record.record_type));
        if let Some(reverse) = &record.reverse_zone {
            by_zone
                .entry(reverse)
                .or_default()
                .push(("*.in-addr.arpa".to_string(), RecordType::Ptr));
        }
    }

    let mut statements: Vec<Statement> = by_zone
        .iter()
        .map(|(zone, records)| change_statement(zone, records, &config.owner_prefix))
        .collect();
    let mut zone_arns: Vec<String> = by_zone.keys().map(|zone| zone_arn(zone)).collect();
    zone_arns.dedup();
    statements.push(allow("ReadConfiguredZones", ZONE_READ_ACTIONS, zone_arns));
    statements.push(allow(
        "FollowChanges",
        &[GET_CHANGE_ACTION],
        vec!["arn:aws:route53:::change/*".to_string()],
    ));
    if by_zone
        .keys()
        .any(|zone| matches!(zone, ZoneRef::Name { .. }))
    {
        statements.push(allow(
            "FindZonesByName",
            &[FIND_ZONE_ACTION],
            vec!["*".into()],
        ));
    }
    Policy {
        version: POLICY_VERSION,
        statements,
    }
}

/// The statement that lets the agent change its own records in one zone:
/// the records' names and their markers' (`<prefix>.<type>[-<set>].<name>`).
fn change_statement(
    zone: &ZoneRef,
    records: &[(String, RecordType)],
    owner_prefix: &str,
) -> Statement {
    let mut names = BTreeSet::new();
    let mut types = BTreeSet::from(["TXT"]);
    for (name, record_type) in records {
        names.insert(format!("{}.*.{name}", normalise_literal(owner_prefix)));
        names.insert(name.clone());
        types.insert(record_type.as_str());
    }

    // StringLike reads `*` as a wildcard; exact names compare as equals.
    let names_operator = if names.iter().any(|name| name.contains('*')) {
        "ForAllValues:StringLike"
    } else {
        "ForAllValues:StringEquals"
    };
    let mut condition: BTreeMap<&'static str, BTreeMap<&'static str, Vec<String>>> =
        BTreeMap::new();
    condition
        .entry(names_operator)
        .or_default()
        .insert(NAMES_KEY, names.into_iter().collect());
    let exact = condition.entry("ForAllValues:StringEquals").or_default();
    exact.insert(TYPES_KEY, types.into_iter().map(String::from).collect());
    exact.insert(
        ACTIONS_KEY,
        CHANGE_BATCH_ACTIONS.iter().map(|a| a.to_string()).collect(),
    );

    Statement {
        condition,
        ..allow(
            &format!("ChangeOwnRecordsIn{}", sid_part(zone)),
            &[CHANGE_ACTION],
            vec![zone_arn(zone)],
        )
    }
}

/// A statement id holds letters and digits only.
fn sid_part(zone: &ZoneRef) -> String {
    match zone {
        ZoneRef::Id(id) => id.to_string(),
        ZoneRef::Name { name, private } => {
            let kind = match private {
                Some(true) => "Private",
                Some(false) => "Public",
                None => "",
            };
            let letters: String = name
                .as_str()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            format!("{kind}Zone{letters}")
        }
    }
}

fn allow(sid: &str, actions: &[&str], resource: Vec<String>) -> Statement {
    Statement {
        sid: sid.to_string(),
        effect: "Allow",
        action: actions.iter().map(|action| action.to_string()).collect(),
        resource,
        condition: BTreeMap::new(),
    }
}

fn zone_arn(zone: &ZoneRef) -> String {
    match zone {
        ZoneRef::Id(id) => format!("arn:aws:route53:::hostedzone/{id}"),
        ZoneRef::Name { .. } => "arn:aws:route53:::hostedzone/*".to_string(),
    }
}

/// The record's name as the NormalizedRecordNames key sees it, with `*` for
/// every field: lowercase, no trailing dot.
fn name_pattern(record: &RecordSpec) -> String {
    let pattern: String = record
        .name
        .parts()
        .iter()
        .map(|part| match part {
            Part::Literal(text) => normalise_literal(text),
            Part::Field(_) => "*".to_string(),
        })
        .collect();
    pattern.trim_end_matches('.').to_string()
}

/// Route 53's normal form for fixed text: lowercase, and every character
/// outside `a-z 0-9 - _ .` as a backslash and three octal digits. A literal
/// `*` (a wildcard record) thus becomes `\052` and is no IAM wildcard.
fn normalise_literal(text: &str) -> String {
    let mut normal = String::new();
    for c in text.to_ascii_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.') {
            normal.push(c);
        } else {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                normal.push_str(&format!("\\{byte:03o}"));
            }
        }
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn config(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    fn as_json(policy: &Policy) -> Value {
        serde_json::from_str(&policy.to_json().unwrap()).unwrap()
    }

    const TWO_ZONES: &str = r#"
        [[record]]
        zone_id = "ZINTERNAL"
        name = "{tag:Name}.Internal.Example.com."
        [[record]]
        zone_id = "ZINTERNAL"
        name = "{tag:Name}.internal.example.com"
        type = "AAAA"
        [[record]]
        zone_id = "ZPUBLIC"
        name = "{instance_id}-{az}.example.org"
        value = "public-ipv4"
        [[record]]
        zone_id = "ZPUBLIC"
        name = "www.example.org"
        value = "public-ipv4"
    "#;

    #[test]
    fn changes_are_allowed_only_on_the_configured_zones() {
        let policy = as_json(&policy(&config(TWO_ZONES)));
        assert_eq!(policy["Version"], "2012-10-17");
        let statements = policy["Statement"].as_array().unwrap();
        let change: Vec<&Value> = statements
            .iter()
            .filter(|s| s["Action"] == json!([CHANGE_ACTION]))
            .collect();
        assert_eq!(change.len(), 2);
        assert_eq!(
            change[0]["Resource"],
            json!(["arn:aws:route53:::hostedzone/ZINTERNAL"])
        );
        assert_eq!(
            change[1]["Resource"],
            json!(["arn:aws:route53:::hostedzone/ZPUBLIC"])
        );
        assert!(statements.iter().all(|s| s["Effect"] == "Allow"));
    }

    #[test]
    fn fields_become_wildcards_and_names_are_normalised() {
        let policy = as_json(&policy(&config(TWO_ZONES)));
        let internal = &policy["Statement"][0]["Condition"];
        assert_eq!(
            internal["ForAllValues:StringLike"][NAMES_KEY],
            json!([
                "*.internal.example.com",
                "_route53-agent.*.*.internal.example.com"
            ])
        );
        assert_eq!(
            internal["ForAllValues:StringEquals"][TYPES_KEY],
            json!(["A", "AAAA", "TXT"])
        );
        assert_eq!(
            internal["ForAllValues:StringEquals"][ACTIONS_KEY],
            json!(["CREATE", "UPSERT", "DELETE"])
        );
        let public = &policy["Statement"][1]["Condition"];
        assert_eq!(
            public["ForAllValues:StringLike"][NAMES_KEY],
            json!([
                "*-*.example.org",
                "_route53-agent.*.*-*.example.org",
                "_route53-agent.*.www.example.org",
                "www.example.org"
            ])
        );
    }

    #[test]
    fn exact_names_are_listed_beside_their_marker_pattern() {
        let policy = policy(&config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "db.example.com"
            "#,
        ));
        let condition = &as_json(&policy)["Statement"][0]["Condition"];
        assert_eq!(
            condition["ForAllValues:StringLike"][NAMES_KEY],
            json!(["_route53-agent.*.db.example.com", "db.example.com"])
        );
        assert_eq!(
            condition["ForAllValues:StringEquals"][TYPES_KEY],
            json!(["A", "TXT"])
        );
    }

    #[test]
    fn the_owner_prefix_comes_from_the_configuration() {
        let policy = as_json(&policy(&config(&format!(
            "owner_prefix = \"_Owner\"\n{TWO_ZONES}"
        ))));
        let names = &policy["Statement"][0]["Condition"]["ForAllValues:StringLike"][NAMES_KEY];
        assert_eq!(
            names,
            &json!(["*.internal.example.com", "_owner.*.*.internal.example.com"])
        );
    }

    #[test]
    fn a_literal_asterisk_is_escaped_not_a_wildcard() {
        let policy = policy(&config(
            r#"
            [[record]]
            zone_id = "ZA"
            name = "*.example.com"
            "#,
        ));
        let condition = &as_json(&policy)["Statement"][0]["Condition"];
        assert_eq!(
            condition["ForAllValues:StringLike"][NAMES_KEY],
            json!(["\\052.example.com", "_route53-agent.*.\\052.example.com"])
        );
    }

    #[test]
    fn zones_by_name_and_reverse_zones() {
        let policy = as_json(&policy(&config(
            r#"
            [[record]]
            zone = "internal.example.com"
            private = true
            name = "{instance_id}.internal.example.com"
            reverse_zone_id = "ZREV"
            "#,
        )));
        let statements = policy["Statement"].as_array().unwrap();
        let named = statements
            .iter()
            .find(|s| s["Sid"] == "ChangeOwnRecordsInPrivateZoneinternalexamplecom")
            .unwrap();
        assert_eq!(named["Resource"], json!(["arn:aws:route53:::hostedzone/*"]));
        let reverse = statements
            .iter()
            .find(|s| s["Sid"] == "ChangeOwnRecordsInZREV")
            .unwrap();
        assert_eq!(
            reverse["Condition"]["ForAllValues:StringEquals"][TYPES_KEY],
            json!(["PTR", "TXT"])
        );
        assert!(
            statements
                .iter()
                .any(|s| s["Action"] == json!([FIND_ZONE_ACTION]))
        );
    }

    #[test]
    fn reads_cover_the_zones_and_changes() {
        let policy = as_json(&policy(&config(TWO_ZONES)));
        let statements = policy["Statement"].as_array().unwrap();
        let reads = statements
            .iter()
            .find(|s| s["Sid"] == "ReadConfiguredZones")
            .unwrap();
        assert_eq!(
            reads["Action"],
            json!(["route53:GetHostedZone", "route53:ListResourceRecordSets"])
        );
        assert_eq!(reads["Resource"].as_array().unwrap().len(), 2);
        assert!(reads.get("Condition").is_none());
        let changes = statements
            .iter()
            .find(|s| s["Sid"] == "FollowChanges")
            .unwrap();
        assert_eq!(changes["Action"], json!(["route53:GetChange"]));
        // Zones are given by id: no lookup by name is allowed.
        assert!(
            statements
                .iter()
                .all(|s| s["Action"] != json!([FIND_ZONE_ACTION]))
        );
    }
}
