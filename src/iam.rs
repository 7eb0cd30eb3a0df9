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
//! - ARNs are written for the commercial partition (`arn:aws:`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::{Config, RecordSpec, ZoneId};
use crate::template::Part;

/// The label put in front of a record's name to form the name of its
/// ownership TXT record: `_r53agent.web-1.example.com`.
pub const DEFAULT_OWNERSHIP_PREFIX: &str = "_r53agent";

/// The version every current IAM policy document declares.
const POLICY_VERSION: &str = "2012-10-17";

const CHANGE_ACTION: &str = "route53:ChangeResourceRecordSets";
/// Calls that read one hosted zone, allowed on the configured zones only.
const ZONE_READ_ACTIONS: &[&str] = &["route53:GetHostedZone", "route53:ListResourceRecordSets"];
/// Polls a change until it is INSYNC. Changes are their own resource type.
const GET_CHANGE_ACTION: &str = "route53:GetChange";
/// Finds a zone from its name. It supports no resource-level permission.
const FIND_ZONE_ACTION: &str = "route53:ListHostedZonesByName";
/// The ChangeResourceRecordSets actions the agent sends; never CREATE.
const CHANGE_BATCH_ACTIONS: &[&str] = &["UPSERT", "DELETE"];

const NAMES_KEY: &str = "route53:ChangeResourceRecordSetsNormalizedRecordNames";
const TYPES_KEY: &str = "route53:ChangeResourceRecordSetsRecordTypes";
const ACTIONS_KEY: &str = "route53:ChangeResourceRecordSetsActions";

/// What the policy allows beyond the configured records themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyOptions {
    /// The label in front of ownership TXT records' names; `None` when the
    /// agent writes no ownership records.
    pub ownership_prefix: Option<String>,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            ownership_prefix: Some(DEFAULT_OWNERSHIP_PREFIX.to_string()),
        }
    }
}

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
pub fn policy(config: &Config, options: &PolicyOptions) -> Policy {
    let mut by_zone: BTreeMap<&ZoneId, Vec<&RecordSpec>> = BTreeMap::new();
    for record in &config.records {
        by_zone.entry(&record.zone_id).or_default().push(record);
    }

    let mut statements: Vec<Statement> = by_zone
        .iter()
        .map(|(zone_id, records)| change_statement(zone_id, records, options))
        .collect();
    statements.push(allow(
        "ReadConfiguredZones",
        ZONE_READ_ACTIONS,
        by_zone.keys().map(|zone_id| zone_arn(zone_id)).collect(),
    ));
    statements.push(allow(
        "FollowChanges",
        &[GET_CHANGE_ACTION],
        vec!["arn:aws:route53:::change/*".to_string()],
    ));
    if config.records.iter().any(names_zone_by_name) {
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

/// True when a record gives its hosted zone by name, which the agent then
/// looks up with ListHostedZonesByName. Every record names its zone by id
/// for now; when the `zone` key arrives this becomes
/// `record.zone_name.is_some()` (and its zone's ARN a wildcard).
fn names_zone_by_name(_record: &RecordSpec) -> bool {
    false
}

/// The statement that lets the agent change its own records in one zone.
fn change_statement(
    zone_id: &ZoneId,
    records: &[&RecordSpec],
    options: &PolicyOptions,
) -> Statement {
    let mut names = BTreeSet::new();
    let mut types = BTreeSet::new();
    for record in records {
        let name = name_pattern(record);
        if let Some(prefix) = &options.ownership_prefix {
            names.insert(format!("{}.{name}", normalise_literal(prefix)));
            types.insert("TXT");
        }
        names.insert(name);
        types.insert(record.record_type.as_str());
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
            &format!("ChangeOwnRecordsIn{zone_id}"),
            &[CHANGE_ACTION],
            vec![zone_arn(zone_id)],
        )
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

fn zone_arn(zone_id: &ZoneId) -> String {
    format!("arn:aws:route53:::hostedzone/{zone_id}")
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
        let policy = as_json(&policy(&config(TWO_ZONES), &PolicyOptions::default()));
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
        let policy = as_json(&policy(&config(TWO_ZONES), &PolicyOptions::default()));
        let internal = &policy["Statement"][0]["Condition"];
        assert_eq!(
            internal["ForAllValues:StringLike"][NAMES_KEY],
            json!(["*.internal.example.com", "_r53agent.*.internal.example.com"])
        );
        assert_eq!(
            internal["ForAllValues:StringEquals"][TYPES_KEY],
            json!(["A", "AAAA", "TXT"])
        );
        assert_eq!(
            internal["ForAllValues:StringEquals"][ACTIONS_KEY],
            json!(["UPSERT", "DELETE"])
        );
        let public = &policy["Statement"][1]["Condition"];
        assert_eq!(
            public["ForAllValues:StringLike"][NAMES_KEY],
            json!([
                "*-*.example.org",
                "_r53agent.*-*.example.org",
                "_r53agent.www.example.org",
                "www.example.org"
            ])
        );
    }

    #[test]
    fn exact_names_use_string_equals() {
        let policy = policy(
            &config(
                r#"
                [[record]]
                zone_id = "ZA"
                name = "db.example.com"
                "#,
            ),
            &PolicyOptions {
                ownership_prefix: None,
            },
        );
        let condition = &as_json(&policy)["Statement"][0]["Condition"];
        assert!(condition.get("ForAllValues:StringLike").is_none());
        assert_eq!(
            condition["ForAllValues:StringEquals"][NAMES_KEY],
            json!(["db.example.com"])
        );
        assert_eq!(
            condition["ForAllValues:StringEquals"][TYPES_KEY],
            json!(["A"])
        );
    }

    #[test]
    fn the_ownership_prefix_is_a_parameter() {
        let options = PolicyOptions {
            ownership_prefix: Some("_Owner".into()),
        };
        let policy = as_json(&policy(&config(TWO_ZONES), &options));
        let names = &policy["Statement"][0]["Condition"]["ForAllValues:StringLike"][NAMES_KEY];
        assert_eq!(
            names,
            &json!(["*.internal.example.com", "_owner.*.internal.example.com"])
        );
    }

    #[test]
    fn a_literal_asterisk_is_escaped_not_a_wildcard() {
        let policy = policy(
            &config(
                r#"
                [[record]]
                zone_id = "ZA"
                name = "*.example.com"
                "#,
            ),
            &PolicyOptions {
                ownership_prefix: None,
            },
        );
        let condition = &as_json(&policy)["Statement"][0]["Condition"];
        assert_eq!(
            condition["ForAllValues:StringEquals"][NAMES_KEY],
            json!(["\\052.example.com"])
        );
    }

    #[test]
    fn reads_cover_the_zones_and_changes() {
        let policy = as_json(&policy(&config(TWO_ZONES), &PolicyOptions::default()));
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
