//! The world an end-to-end test runs in: ministack as Route 53, a strict
//! IMDSv2 stand-in, a hosted zone of the test's own, and the built agent
//! binary started as its own process with the standard AWS settings.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_route53::Client;
use aws_sdk_route53::types::RrType;
use route53_agent_testkit::route53::normalise_name;
use route53_agent_testkit::{
    AGENT_ENV_REMOVE, FaultProxy, ImdsServer, InstanceDefaults, Ministack, agent_env, create_zone,
    records, route53_client, values_of,
};
use tokio::process::{Child, Command};

pub const AGENT: &str = env!("CARGO_BIN_EXE_route53-agent");

static ZONES: AtomicU32 = AtomicU32::new(0);

/// A record's TTL and values as the zone holds them.
pub type Live = Option<(i64, Vec<String>)>;

pub struct World {
    pub ministack: Ministack,
    pub r53: Client,
    pub imds: ImdsServer,
    pub zone_id: String,
    /// The zone's name without the trailing dot, e.g. `t1234-0.example.com`.
    pub zone: String,
    /// Where the agent sends Route 53 calls: ministack, or a fault proxy in
    /// front.
    pub route53_endpoint: String,
    pub dir: tempfile::TempDir,
}

impl World {
    pub async fn new() -> World {
        let ministack = Ministack::start();
        let r53 = route53_client(&ministack.endpoint());
        let zone = format!(
            "t{}-{}.example.com",
            std::process::id(),
            ZONES.fetch_add(1, Ordering::Relaxed)
        );
        let zone_id = create_zone(&r53, &zone, false).await;
        let route53_endpoint = ministack.endpoint();
        World {
            ministack,
            r53,
            imds: ImdsServer::preset_instance().await,
            zone_id,
            zone,
            route53_endpoint,
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// Routes the agent's Route 53 calls through a fault proxy the test
    /// controls.
    pub async fn with_relay(mut self) -> (World, FaultProxy) {
        let proxy = FaultProxy::start(&self.ministack.endpoint()).await;
        self.route53_endpoint = proxy.endpoint();
        (self, proxy)
    }

    /// Writes a config file; `{ZONE_ID}` and `{ZONE}` are replaced.
    pub fn config(&self, body: &str) -> PathBuf {
        let path = self.dir.path().join(format!(
            "config-{}.toml",
            ZONES.fetch_add(1, Ordering::Relaxed)
        ));
        let text = body
            .replace("{ZONE_ID}", &self.zone_id)
            .replace("{ZONE}", &self.zone);
        std::fs::write(&path, text).expect("writing the config file");
        path
    }

    /// A simple config: one A record for the Name tag, polled every second.
    pub fn simple_config(&self) -> PathBuf {
        self.config(
            r#"
            poll_interval = "1s"
            shutdown_timeout = "10s"
            [[record]]
            zone_id = "{ZONE_ID}"
            name = "{tag:Name}.{ZONE}"
            "#,
        )
    }

    pub fn name(&self, label: &str) -> String {
        format!("{label}.{}", self.zone)
    }

    /// Another instance in the same world: its own IMDS, same Route 53.
    pub async fn instance(&self, instance_id: &str, local_ipv4: &str) -> ImdsServer {
        ImdsServer::with_instance(InstanceDefaults {
            instance_id: instance_id.into(),
            local_ipv4: local_ipv4.into(),
            ..InstanceDefaults::default()
        })
        .await
    }

    /// The agent with `args`, as the instance `imds` describes. `run` and
    /// `register` get `--no-jitter`, so tests do not wait out the boot
    /// jitter; [`World::spawn_with`] and [`World::once_with`] pass the
    /// arguments exactly as given.
    fn command(&self, args: &[&str], config: &Path, imds: &ImdsServer) -> Command {
        let mut command = self.exact_command(args, config, imds);
        if matches!(args.first(), Some(&"run" | &"register")) {
            command.arg("--no-jitter");
        }
        command
    }

    fn exact_command(&self, args: &[&str], config: &Path, imds: &ImdsServer) -> Command {
        let mut command = Command::new(AGENT);
        command.args(args).arg("--config").arg(config);
        for key in AGENT_ENV_REMOVE {
            command.env_remove(key);
        }
        // Never talk to a systemd the test runner may run under; keep the
        // state of each world's instances in the world's own folder.
        command.env_remove("NOTIFY_SOCKET");
        command.env_remove("ECS_CONTAINER_METADATA_URI_V4");
        command
            .envs(agent_env(&imds.endpoint(), &self.route53_endpoint))
            .env("STATE_DIRECTORY", self.dir.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs a one-shot command to the end.
    pub async fn once(&self, command: &str, config: &Path) -> Finished {
        self.once_as(command, config, &self.imds).await
    }

    /// Runs a one-shot command as the instance `imds` describes.
    pub async fn once_as(&self, command: &str, config: &Path, imds: &ImdsServer) -> Finished {
        self.finish(self.command(&[command], config, imds)).await
    }

    /// Runs a one-shot command with exactly these arguments.
    pub async fn once_with(&self, args: &[&str], config: &Path) -> Finished {
        self.finish(self.exact_command(args, config, &self.imds))
            .await
    }

    /// Runs a one-shot command with exactly these arguments and extra
    /// environment.
    pub async fn once_env(&self, args: &[&str], config: &Path, env: &[(&str, &str)]) -> Finished {
        let mut command = self.exact_command(args, config, &self.imds);
        command.envs(env.iter().copied());
        self.finish(command).await
    }

    /// Runs a one-shot command whose standard output nobody reads: the
    /// pipe's reading end is closed before the agent starts, as after
    /// `| head -1`. The `Finished` has no stdout.
    pub async fn once_unread(&self, command: &str, config: &Path) -> Finished {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let mut command = self.command(&[command], config, &self.imds);
        command.stdout(writer).stderr(Stdio::piped());
        let child = command.spawn().expect("the agent binary starts");
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("a one-shot command finishes within a minute")
            .expect("waiting for the agent");
        Finished {
            code: output.status.code(),
            stdout: String::new(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn finish(&self, mut command: Command) -> Finished {
        let output = tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .expect("a one-shot command finishes within a minute")
            .expect("the agent binary starts");
        Finished {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts `route53-agent run`, its log going to a file.
    pub fn spawn(&self, config: &Path) -> Agent {
        self.spawn_as(config, &self.imds)
    }

    /// Starts `route53-agent run` as the instance `imds` describes.
    pub fn spawn_as(&self, config: &Path, imds: &ImdsServer) -> Agent {
        self.start(self.command(&["run"], config, imds))
    }

    /// Starts the agent with exactly these arguments and extra environment.
    pub fn spawn_with(&self, args: &[&str], config: &Path, env: &[(&str, &str)]) -> Agent {
        let mut command = self.exact_command(args, config, &self.imds);
        command.envs(env.iter().copied());
        self.start(command)
    }

    /// Starts the agent with exactly these arguments, without the
    /// variables named in `remove`.
    pub fn spawn_without(&self, args: &[&str], config: &Path, remove: &[&str]) -> Agent {
        let mut command = self.exact_command(args, config, &self.imds);
        for key in remove {
            command.env_remove(key);
        }
        self.start(command)
    }

    fn start(&self, mut command: Command) -> Agent {
        let log = self.dir.path().join(format!(
            "agent-{}.log",
            ZONES.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&log).expect("agent log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("the agent binary starts");
        Agent { child, log }
    }

    pub async fn record(&self, name: &str, rr_type: RrType) -> Live {
        values_of(&records(&self.r53, &self.zone_id).await, name, rr_type)
    }

    /// Every set at `name` and type, as (set identifier, values), sorted.
    pub async fn sets(&self, name: &str, rr_type: RrType) -> Vec<(Option<String>, Vec<String>)> {
        let wanted = normalise_name(name);
        let mut sets: Vec<_> = records(&self.r53, &self.zone_id)
            .await
            .into_iter()
            .filter(|set| *set.r#type() == rr_type && normalise_name(set.name()) == wanted)
            .map(|set| {
                let values = set
                    .resource_records()
                    .iter()
                    .map(|value| value.value().to_string())
                    .collect();
                (set.set_identifier().map(str::to_string), values)
            })
            .collect();
        sets.sort();
        sets
    }

    /// The ownership marker's values beside a record.
    pub async fn marker(&self, marker_name: &str) -> Vec<String> {
        self.record(marker_name, RrType::Txt)
            .await
            .map(|(_, values)| values)
            .unwrap_or_default()
    }

    /// Polls the zone until `wanted` holds for the record, or panics after
    /// `within`, showing the agent's log.
    pub async fn wait_for(
        &self,
        agent: &Agent,
        name: &str,
        rr_type: RrType,
        within: Duration,
        wanted: impl Fn(&Live) -> bool,
    ) -> Live {
        let deadline = Instant::now() + within;
        loop {
            let live = self.record(name, rr_type.clone()).await;
            if wanted(&live) {
                return live;
            }
            if Instant::now() > deadline {
                panic!(
                    "{name} {rr_type:?} is {live:?} after {within:?}; agent log:\n{}",
                    agent.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl World {
    /// Polls the zone until `wanted` holds for the sets at `name`, or panics
    /// after `within`, showing the logs of `agents`.
    pub async fn wait_sets(
        &self,
        agents: &[&Agent],
        name: &str,
        rr_type: RrType,
        within: Duration,
        wanted: impl Fn(&[(Option<String>, Vec<String>)]) -> bool,
    ) -> Vec<(Option<String>, Vec<String>)> {
        let deadline = Instant::now() + within;
        loop {
            let sets = self.sets(name, rr_type.clone()).await;
            if wanted(&sets) {
                return sets;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = agents.iter().map(|agent| agent.log()).collect();
                panic!(
                    "{name} {rr_type:?} is {sets:?} after {within:?}; logs:\n{}",
                    logs.join("\n----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A record holding exactly these values, with this TTL.
pub fn holds(ttl: i64, values: &[&str]) -> impl Fn(&Live) -> bool {
    let expected: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    move |live| live.as_ref() == Some(&(ttl, expected.clone()))
}

pub fn absent(live: &Live) -> bool {
    live.is_none()
}

/// The end of a one-shot command.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A running `route53-agent run`.
pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the agent is still running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("waiting for the agent").code(),
            Err(_) => panic!(
                "the agent did not exit within {within:?}; log:\n{}",
                self.log()
            ),
        }
    }

    /// Sends SIGTERM and checks that the agent deregisters and exits 0
    /// within 15 seconds.
    pub async fn stop(&mut self) {
        self.signal("TERM");
        let code = self.exit_code(Duration::from_secs(15)).await;
        assert_eq!(code, Some(0), "{}", self.log());
    }

    /// Waits until the log holds `text`.
    pub async fn wait_log(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(text) {
            if Instant::now() > deadline {
                panic!("no {text:?} in the log after {within:?}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
