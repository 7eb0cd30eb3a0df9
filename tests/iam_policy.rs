//! `route53-agent iam-policy`: the printed policy allows every Route 53
//! call the code makes, and changes only on the configured zones.
//!
//! The calls are found by reading the sources: every `client.<operation>()`
//! on an SDK client, whichever module makes it. A call added anywhere in
//! `src/` without its action in the policy fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_route53-agent");

/// Calls the agent is known to make today; the scan must find at least
/// these, or it has stopped seeing calls at all.
const KNOWN_CALLS: &[&str] = &[
    "ChangeResourceRecordSets",
    "GetHostedZone",
    "ListResourceRecordSets",
];

fn project(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// Operation names of every `client.op()` call: the SDK's fluent builders
/// take no argument, which tells them from other clients' methods (the IMDS
/// client's `get(path)`).
fn sdk_calls(source: &str) -> BTreeSet<String> {
    let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
    let mut calls = BTreeSet::new();
    for (at, _) in compact.match_indices("client.") {
        let before = compact[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `imds_client.`, `aws_client.` and the like
        }
        let rest = &compact[at + "client.".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() && rest[name.len()..].starts_with("()") {
            calls.insert(name);
        }
    }
    calls
}

fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Every Route 53 action the sources call.
fn called_actions() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&project("src"), &mut files);
    files
        .iter()
        .flat_map(|file| {
            let source = std::fs::read_to_string(file).expect("reading a source file");
            sdk_calls(&source)
        })
        .map(|call| pascal_case(&call))
        .collect()
}

fn print_policy(config: &Path) -> Value {
    let output = Command::new(AGENT)
        .args(["iam-policy", "--config"])
        .arg(config)
        .output()
        .expect("the agent binary runs");
    assert!(
        output.status.success(),
        "{}: {}",
        config.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the policy is JSON")
}

fn allowed_actions(policy: &Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .expect("Statement")
        .iter()
        .filter(|statement| statement["Effect"] == "Allow")
        .flat_map(|statement| statement["Action"].as_array().cloned().unwrap_or_default())
        .filter_map(|action| action.as_str()?.strip_prefix("route53:").map(String::from))
        .collect()
}

/// The example configuration and every good fixture.
fn configs() -> Vec<PathBuf> {
    let mut configs = vec![project("config/example.toml")];
    let dir = project("tests/fixtures/good");
    for entry in std::fs::read_dir(&dir).expect("tests/fixtures/good") {
        configs.push(entry.expect("fixture").path());
    }
    configs
}

#[test]
fn the_scan_finds_the_calls_the_agent_is_known_to_make() {
    let called = called_actions();
    for known in KNOWN_CALLS {
        assert!(called.contains(*known), "{known} not found in {called:?}");
    }
    assert_eq!(
        sdk_calls("self.client\n  .get_hosted_zone()\n imds_client.get_thing() client.get(path)"),
        BTreeSet::from(["get_hosted_zone".to_string()])
    );
    assert_eq!(
        pascal_case("list_hosted_zones_by_name"),
        "ListHostedZonesByName"
    );
}

#[test]
fn every_route53_call_in_the_code_is_allowed_by_the_printed_policy() {
    let called = called_actions();
    let mut allowed = BTreeSet::new();
    for config in configs() {
        allowed.extend(allowed_actions(&print_policy(&config)));
    }
    // ListHostedZonesByName is allowed only for a config that names a zone
    // by name: a good fixture must do so once the code makes that call.
    let missing: Vec<&String> = called.difference(&allowed).collect();
    assert!(
        missing.is_empty(),
        "the code calls {missing:?}, which no printed policy allows"
    );
}

#[test]
fn the_example_policy_changes_only_its_names_in_its_zone() {
    let policy = print_policy(&project("config/example.toml"));
    let change = policy["Statement"]
        .as_array()
        .expect("Statement")
        .iter()
        .find(|s| s["Action"] == serde_json::json!(["route53:ChangeResourceRecordSets"]))
        .expect("a ChangeResourceRecordSets statement")
        .clone();
    assert_eq!(
        change["Resource"],
        serde_json::json!(["arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"])
    );
    let condition = &change["Condition"];
    assert_eq!(
        condition["ForAllValues:StringLike"]["route53:ChangeResourceRecordSetsNormalizedRecordNames"],
        serde_json::json!([
            "*.internal.example.com",
            "_route53-agent.*.*.internal.example.com"
        ])
    );
    assert_eq!(
        condition["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsActions"],
        serde_json::json!(["CREATE", "UPSERT", "DELETE"])
    );
}

#[test]
fn a_bad_config_prints_no_policy_and_exits_64() {
    let output = Command::new(AGENT)
        .args(["iam-policy", "--config"])
        .arg(project("tests/fixtures/bad/unknown-field.toml"))
        .output()
        .expect("the agent binary runs");
    assert_eq!(output.status.code(), Some(64));
    assert!(output.stdout.is_empty());
}
