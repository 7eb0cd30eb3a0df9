//! The files that put the agent on a platform: the systemd unit, the
//! cloud-init user-data, the container image and the ECS and Kubernetes
//! examples. Each is checked with the platform's own tool where this machine
//! has one (`systemd-analyze verify`, `cloud-init schema`), and every
//! example configuration they carry must load as the agent loads it.
//!
//! The tools come from `scripts/ci-deps`. YAML is read with PyYAML, the
//! parser cloud-init itself uses, which comes with cloud-init.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use route53_agent::config::{Config, DEFAULT_SHUTDOWN_TIMEOUT};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_route53-agent");
const UNIT: &str = "config/route53-agent.service";
const USER_DATA: &str = "cloud-init/user-data.yaml";
const USER_DATA_AMI: &str = "cloud-init/user-data-ami.yaml";

fn project(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(project(path)).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

/// Runs a tool the test needs, failing with the way to install it.
fn tool(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run {program} ({error}); scripts/ci-deps installs it")
        })
}

/// Every YAML document in the file, as JSON values.
fn yaml_documents(path: &str) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)";
    let output = tool("python3", &["-c", script, &project(path).to_string_lossy()]);
    assert!(
        output.status.success(),
        "{path} is not valid YAML: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    match serde_json::from_slice(&output.stdout) {
        Ok(Value::Array(documents)) => documents,
        other => panic!("{path}: unexpected parse result {other:?}"),
    }
}

/// The value of `key=` in the unit's text (the last one wins, as in systemd).
fn unit_setting<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .rev()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

fn seconds(text: &str) -> Duration {
    humantime::parse_duration(text.trim())
        .unwrap_or_else(|error| panic!("{text:?} is not a duration: {error}"))
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    // verify needs ExecStart to exist: point it at the binary just built.
    let unit = read(UNIT).replace("/usr/local/bin/route53-agent", AGENT);
    assert!(unit.contains(AGENT), "ExecStart was not rewritten");
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("route53-agent.service");
    std::fs::write(&path, unit).expect("writing the unit");

    let output = tool("systemd-analyze", &["verify", &path.to_string_lossy()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "systemd-analyze verify: {said}");
    // Unknown keys are only warned about, with exit 0: any word about our
    // unit is a finding.
    assert!(
        !said.contains("route53-agent"),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_unit_is_notify_ordered_after_the_network_and_hardened() {
    let unit = read(UNIT);
    for (key, wanted) in [
        ("Type", "notify"),
        ("Wants", "network-online.target"),
        ("After", "network-online.target"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "64"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("DynamicUser", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("WantedBy", "multi-user.target"),
    ] {
        assert_eq!(unit_setting(&unit, key), Some(wanted), "{key}= in {UNIT}");
    }
    let exec = unit_setting(&unit, "ExecStart").expect("ExecStart=");
    assert!(exec.ends_with(" run --config /etc/route53-agent/config.toml"));
}

#[test]
fn systemd_waits_longer_than_the_agent_deregisters() {
    let unit = read(UNIT);
    let stop = seconds(unit_setting(&unit, "TimeoutStopSec").expect("TimeoutStopSec="));
    assert!(stop > DEFAULT_SHUTDOWN_TIMEOUT, "TimeoutStopSec {stop:?}");
    for path in [USER_DATA, USER_DATA_AMI] {
        let config = user_data_config(path);
        assert!(
            stop > config.shutdown_timeout,
            "{path}: shutdown_timeout {:?} is not below TimeoutStopSec {stop:?}",
            config.shutdown_timeout
        );
    }
}

#[test]
fn a_start_that_never_gets_an_answer_ends_in_bounded_time() {
    // The agent extends the start itself while Route 53 is only busy; a
    // Route 53 it cannot reach must fail the start rather than hold up boot.
    let unit = read(UNIT);
    let start = unit_setting(&unit, "TimeoutStartSec").expect("TimeoutStartSec=");
    assert_ne!(start, "infinity", "TimeoutStartSec= in {UNIT}");
    let start = seconds(start);
    assert!(
        start >= Duration::from_secs(60) && start <= Duration::from_secs(15 * 60),
        "TimeoutStartSec {start:?}"
    );
}

#[test]
fn the_user_data_passes_cloud_init_schema() {
    for path in [USER_DATA, USER_DATA_AMI] {
        let file = project(path);
        let output = tool(
            "cloud-init",
            &["schema", "--config-file", &file.to_string_lossy()],
        );
        assert!(
            output.status.success(),
            "cloud-init schema {path}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(read(path).starts_with("#cloud-config\n"), "{path}");
    }
}

/// The file written to `path` by the user-data's write_files.
fn written_file(user_data: &Value, path: &str) -> Option<String> {
    user_data["write_files"]
        .as_array()?
        .iter()
        .find(|file| file["path"] == path)?["content"]
        .as_str()
        .map(str::to_string)
}

fn user_data(path: &str) -> Value {
    yaml_documents(path)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{path} holds no YAML document"))
}

/// The steps of a command list (`bootcmd`, `runcmd`), each flattened to one
/// text: a list of words joined by spaces, a string as it is.
fn commands(user_data: &Value, key: &str) -> Vec<String> {
    user_data[key]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|step| match step {
                    Value::Array(words) => words
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" "),
                    other => other.as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `script` with `sh`, with `PATH` led by `bin`; its output.
fn sh(script: &str, bin: Option<&Path>) -> std::process::Output {
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    if let Some(bin) = bin {
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{}:{path}", bin.display()));
    }
    command.output().expect("sh runs")
}

/// The configuration the user-data writes at boot: its bootcmd, run as
/// cloud-init runs it, with /etc/route53-agent moved to a temporary folder.
fn config_written_at_boot(path: &str) -> String {
    let dir = tempfile::tempdir().expect("temporary directory");
    let script = commands(&user_data(path), "bootcmd")
        .join("\n")
        .replace("/etc/route53-agent", &dir.path().to_string_lossy());
    let output = sh(&script, None);
    assert!(
        output.status.success(),
        "{path}: bootcmd: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(dir.path().join("config.toml"))
        .unwrap_or_else(|error| panic!("{path}: bootcmd wrote no config.toml: {error}"))
}

fn user_data_config(path: &str) -> Config {
    Config::from_toml(&config_written_at_boot(path))
        .unwrap_or_else(|error| panic!("{path}: config: {error}"))
}

#[test]
fn the_user_data_writes_the_configuration_at_every_boot() {
    for path in [USER_DATA, USER_DATA_AMI] {
        // bootcmd runs at every boot; write_files only once per instance.
        let document = user_data(path);
        assert_eq!(
            written_file(&document, "/etc/route53-agent/config.toml"),
            None,
            "{path}: the configuration must follow the user-data at every boot"
        );
        // The config loads: user_data_config panics otherwise.
        assert!(!user_data_config(path).records.is_empty(), "{path}");
    }
}

const INSTALL_SCRIPT: &str = "/var/lib/cloud/scripts/per-boot/route53-agent-install";

#[test]
fn the_user_data_installs_the_same_unit_and_starts_it() {
    let full = user_data(USER_DATA);
    assert_eq!(
        written_file(&full, "/etc/systemd/system/route53-agent.service").as_deref(),
        Some(read(UNIT).as_str()),
        "{USER_DATA} must carry {UNIT} unchanged"
    );
    // The plain AMI: a script cloud-init runs at every boot, executable.
    let install = full["write_files"]
        .as_array()
        .and_then(|files| files.iter().find(|file| file["path"] == INSTALL_SCRIPT))
        .unwrap_or_else(|| panic!("{USER_DATA} writes no {INSTALL_SCRIPT}"));
    assert_eq!(install["permissions"], "0755");
    assert_eq!(commands(&full, "runcmd"), Vec::<String>::new());

    // The AMI with the binary: enabled once, started by systemd ever after.
    let steps = commands(&user_data(USER_DATA_AMI), "runcmd");
    let reload = steps.iter().position(|s| s == "systemctl daemon-reload");
    let enable = steps
        .iter()
        .position(|s| s.starts_with("systemctl enable --now"));
    assert!(
        matches!((reload, enable), (Some(r), Some(e)) if r < e),
        "{USER_DATA_AMI}: {steps:?}"
    );
}

/// The per-boot install script, with the binary's path moved to `binary`.
fn install_script(binary: &Path) -> String {
    written_file(&user_data(USER_DATA), INSTALL_SCRIPT)
        .unwrap_or_else(|| panic!("{USER_DATA} writes no {INSTALL_SCRIPT}"))
        .replace("/usr/local/bin/route53-agent", &binary.to_string_lossy())
}

/// Writes an executable stand-in for `program` into `bin`.
fn stand_in(bin: &Path, program: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = bin.join(program);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("writing a stand-in");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("making a stand-in executable");
}

#[test]
fn the_agent_is_enabled_only_once_the_download_is_installed_and_retried_each_boot() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin folder");
    let binary = dir.path().join("route53-agent");
    let calls = dir.path().join("calls");
    let log = calls.to_string_lossy();
    stand_in(
        &bin,
        "systemctl",
        &format!("echo \"systemctl $*\" >> '{log}'"),
    );

    // A boot whose download fails: the script fails, and nothing is
    // installed or enabled (the unit does not restart on a missing binary).
    stand_in(&bin, "curl", &format!("echo curl >> '{log}'; exit 22"));
    let failed = sh(&install_script(&binary), Some(&bin));
    assert!(!failed.status.success(), "{failed:?}");
    assert!(!binary.exists());
    let called = std::fs::read_to_string(&calls).unwrap_or_default();
    assert_eq!(called, "curl\n", "{failed:?}");

    // The next boot, with the release reachable: it is checked, installed,
    // and only then the agent is enabled and started.
    let release = b"#!/bin/sh\necho route53-agent\n";
    let release_file = dir.path().join("release");
    std::fs::write(&release_file, release).expect("writing the release");
    let summed = tool("sha256sum", &[&release_file.to_string_lossy()]);
    let summed = String::from_utf8_lossy(&summed.stdout);
    let sha256 = summed.split_whitespace().next().expect("a checksum");
    stand_in(
        &bin,
        "curl",
        &format!(
            "echo curl >> '{log}'\nwhile [ \"$1\" != --output ]; do shift; done\ncp '{}' \"$2\"",
            release_file.display()
        ),
    );
    let script = install_script(&binary).replace("SET-ME-sha256-of-the-binary", sha256);
    std::fs::write(&calls, "").expect("clearing the calls");
    let installed = sh(&script, Some(&bin));
    assert!(installed.status.success(), "{installed:?}");
    assert_eq!(std::fs::read(&binary).expect("the binary"), release);
    assert_eq!(
        std::fs::read_to_string(&calls).expect("calls"),
        "curl\nsystemctl daemon-reload\nsystemctl enable --now --no-block route53-agent.service\n"
    );

    // Every later boot: the release is there, no download, enabled again.
    std::fs::write(&calls, "").expect("clearing the calls");
    let again = sh(&script, Some(&bin));
    assert!(again.status.success(), "{again:?}");
    assert!(
        !std::fs::read_to_string(&calls)
            .expect("calls")
            .contains("curl")
    );
}

#[test]
fn the_download_is_checked_before_it_is_installed() {
    let script = install_script(Path::new("/usr/local/bin/route53-agent"));
    let check = script
        .find("sha256sum --check --strict")
        .expect("a checksum check");
    let install = script
        .find("install -m 0755")
        .expect("an install of the binary");
    let enable = script
        .find("systemctl enable")
        .expect("the service enabled");
    assert!(check < install && install < enable, "{script}");
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    assert!(script.contains("set -eu"), "{script}");
    // The placeholders cannot be mistaken for a real release.
    assert!(script.contains("https://SET-ME.invalid/"), "{script}");
}

#[test]
fn the_ecs_sidecar_outlasts_its_shutdown_timeout() {
    let task: Value =
        serde_json::from_str(&read("deploy/ecs-task-definition.json")).expect("valid JSON");
    let containers = task["containerDefinitions"]
        .as_array()
        .expect("containerDefinitions");
    let container = |name: &str| {
        containers
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    };
    let agent = container("route53-agent");
    let config_text = container("route53-agent-config")["environment"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == "ROUTE53_AGENT_CONFIG"))
        .and_then(|e| e["value"].as_str())
        .expect("the configuration in ROUTE53_AGENT_CONFIG");
    let config = Config::from_toml(config_text).expect("the embedded config loads");

    let stop = agent["stopTimeout"].as_u64().expect("stopTimeout");
    assert!(
        Duration::from_secs(stop) > config.shutdown_timeout,
        "stopTimeout {stop} s"
    );
    assert_eq!(agent["user"], "65532:65532");
    assert!(
        agent["dockerLabels"]["route53-agent.note"]
            .as_str()
            .is_some_and(|note| note.contains("hop limit to 2"))
    );
}

#[test]
fn the_kubernetes_sidecar_outlasts_its_shutdown_timeout() {
    let documents = yaml_documents("deploy/kubernetes-pod.yaml");
    let of_kind = |kind: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} document"))
    };
    let config_text = of_kind("ConfigMap")["data"]["config.toml"]
        .as_str()
        .expect("config.toml in the ConfigMap");
    let config = Config::from_toml(config_text).expect("the embedded config loads");
    let spec = &of_kind("Pod")["spec"];
    let grace = spec["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(Duration::from_secs(grace) > config.shutdown_timeout);

    let agent = spec["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "route53-agent"))
        .expect("the route53-agent container");
    assert_eq!(agent["securityContext"]["runAsNonRoot"], true);
    assert_eq!(agent["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(read("deploy/kubernetes-pod.yaml").contains("hop limit to 2"));
}

#[test]
fn the_image_runs_a_static_binary_as_a_non_root_user() {
    let dockerfile = read("Dockerfile");
    let stages: Vec<&str> = dockerfile.split("\nFROM ").collect();
    let last = stages.last().expect("a final stage");
    assert!(stages.len() >= 2, "a build stage and a run stage");
    assert!(last.starts_with("gcr.io/distroless/static"), "{last}");
    let user = last
        .lines()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("USER in the final stage");
    assert!(!["root", "0", "root:root", "0:0"].contains(&user), "{user}");
    assert!(dockerfile.contains("scripts/build-static"));
}
