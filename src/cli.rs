//! The command line: parsing it, running one command, and the exit codes.
//!
//! The configuration is loaded and checked before the runtime starts, so a
//! bad file exits with [`exit::CONFIG`] before any network call.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing::{Level, error, info};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::agent::{self, Agent, AgentError, SyncReport};
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::metadata::Metadata;
use crate::plan::{self, Planned};
use crate::retry::{self, Backoff, GaveUp, Retry};
use crate::route53::{AMBIGUOUS_HOSTED_ZONE, Route53};
use crate::shutdown;
use crate::{doctor, http, iam};
use tokio::time::timeout;

/// Exit codes, as listed in the README.
pub mod exit {
    /// Done: records written, or deleted, as asked.
    pub const OK: u8 = 0;
    /// A runtime failure: IMDS or Route 53 refused, or a record could not be
    /// written or deleted.
    pub const FAILURE: u8 = 1;
    /// The command line itself is wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// The configuration is wrong: unreadable, invalid, naming a hosted zone
    /// that does not exist or is ambiguous, or naming records outside their
    /// hosted zones (EX_USAGE).
    pub const CONFIG: u8 = 64;
    /// Shutdown ran out of time with records left behind (EX_TEMPFAIL).
    pub const LEFT_BEHIND: u8 = 75;
    /// A second SIGTERM or SIGINT cut deregistration short.
    pub const SECOND_SIGNAL: u8 = 130;
}

/// Keeps this EC2 instance's own DNS records in Route 53.
#[derive(Debug, Parser)]
#[command(name = "route53-agent", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, global = true, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Register, follow address and tag changes, deregister on SIGTERM/SIGINT.
    Run(RunArgs),
    /// Write the records once (CREATE or UPSERT, each with its ownership
    /// marker); exit 0 when Route 53 accepted them.
    Register(RegisterArgs),
    /// Delete the records the current facts describe, each with its marker,
    /// only while the marker names this instance.
    Deregister,
    /// Print the records that would be written; write nothing.
    Plan,
    /// Delete records whose ownership marker names this instance but that no
    /// configured record produces any more (after a hard stop, say).
    Gc,
    /// Check the configuration file only; no network calls.
    Check,
    /// Print the least-privilege IAM policy (JSON) for this configuration.
    IamPolicy,
    /// Check that this machine can run the agent, read-only, and explain.
    Doctor,
}

#[derive(Clone, Copy, Debug, Default, Args, PartialEq, Eq)]
pub struct RunArgs {
    /// Write at once, without the random boot_jitter delay.
    #[arg(long)]
    pub no_jitter: bool,
}

#[derive(Clone, Copy, Debug, Default, Args, PartialEq, Eq)]
pub struct RegisterArgs {
    /// Write at once, without the random boot_jitter delay.
    #[arg(long)]
    pub no_jitter: bool,
    /// Exit only once Route 53 reports the changes INSYNC.
    #[arg(long)]
    pub wait: bool,
}

impl Command {
    /// The command as it is typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Run(_) => "run",
            Command::Register(_) => "register",
            Command::Deregister => "deregister",
            Command::Plan => "plan",
            Command::Gc => "gc",
            Command::Check => "check",
            Command::IamPolicy => "iam-policy",
            Command::Doctor => "doctor",
        }
    }
}

/// Parses the command line, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let mut out = Output::default();
    let code = execute(&cli, &mut out);
    ExitCode::from(out.exit_code(code))
}

/// Targets that print request headers, resolved identities or signing
/// material below info, each with the most it may log whatever RUST_LOG
/// asks, so that logs never hold a token or a credential. At trace the
/// SDK's request dumps carry the IMDS session token
/// (`x-aws-ec2-metadata-token`), SigV4 prints its canonical requests (with
/// the session token of temporary credentials), and the HTTP stack sees
/// every header; at debug the SDK's orchestrator still prints the resolved
/// identity with its access key id, when it resolves an endpoint.
const SECRET_BEARING_TARGETS: &[(&str, LevelFilter)] = &[
    ("aws_smithy_runtime", LevelFilter::INFO),
    ("aws_smithy_runtime_api", LevelFilter::INFO),
    ("aws_config", LevelFilter::DEBUG),
    ("aws_runtime", LevelFilter::DEBUG),
    ("aws_sigv4", LevelFilter::DEBUG),
    ("aws_smithy_http_client", LevelFilter::DEBUG),
    ("h2", LevelFilter::DEBUG),
    ("hyper", LevelFilter::DEBUG),
    ("hyper_util", LevelFilter::DEBUG),
    ("reqwest", LevelFilter::DEBUG),
];

fn init_logging() {
    // RUST_LOG takes a level and target=level pairs ("debug",
    // "info,aws_config=debug"); unset or unreadable means info. EnvFilter's
    // span and field directives ("[span{field=x}]") are not understood:
    // they need a regex engine, 314 KiB of binary. One difference remains:
    // a word that is neither a level nor a directive names a target, so
    // "RUST_LOG=garbage[" logs nothing where EnvFilter fell back to info.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(Level::INFO));
    let capped = SECRET_BEARING_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, (target, most)| targets.with_target(*target, *most),
    );
    // Colours only for a person at a terminal: journald and log shippers
    // would store the escape codes.
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(output.with_filter(filter.and(capped)))
        .init();
}

fn execute(cli: &Cli, out: &mut Output) -> u8 {
    let mut config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(error) => {
            error!("{}", crate::error_chain(&error));
            if error.is_missing_file() {
                error!(
                    "write one there (config/example.toml in the repository is a start), \
                     or name another with --config PATH"
                );
            }
            return exit::CONFIG;
        }
    };
    if let Command::Run(RunArgs { no_jitter: true })
    | Command::Register(RegisterArgs {
        no_jitter: true, ..
    }) = cli.command
    {
        config.boot_jitter = std::time::Duration::ZERO;
    }
    if cli.command == Command::Check {
        out.line(format_args!(
            "{}: ok ({} record(s))",
            cli.config.display(),
            config.records.len()
        ));
        return exit::OK;
    }
    if cli.command == Command::IamPolicy {
        return print_iam_policy(&config, out);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            error!(error = %error, "cannot start the async runtime");
            return exit::FAILURE;
        }
    };
    if cli.command == Command::Doctor {
        return run_doctor(&runtime, &config, out);
    }
    let result = runtime.block_on(dispatch(cli, config, out));
    match result {
        Ok(()) => exit::OK,
        Err(error) => {
            let chain = crate::error_chain(&error);
            match zone_advice(&error) {
                Some(advice) => error!("{chain}; {advice} in {}", cli.config.display()),
                None => error!("{chain}"),
            }
            exit_code(&error)
        }
    }
}

/// What to change in the configuration file when it does not fit the
/// hosted zones, as `doctor` advises.
fn zone_advice(error: &AgentError) -> Option<&'static str> {
    match error {
        AgentError::Route53(error) if error.code.as_deref() == Some(AMBIGUOUS_HOSTED_ZONE) => {
            Some("set private = true or false beside zone")
        }
        AgentError::Route53(error) if error.is_config() => Some("check zone_id or zone"),
        AgentError::Zones(_) => Some("check the record's name, and zone_id or zone"),
        _ => None,
    }
}

fn print_iam_policy(config: &Config, out: &mut Output) -> u8 {
    let policy = iam::policy(config);
    match policy.to_json() {
        Ok(json) => {
            out.line(json);
            exit::OK
        }
        Err(error) => {
            error!(error = %error, "cannot write the policy as JSON");
            exit::FAILURE
        }
    }
}

fn run_doctor(runtime: &tokio::runtime::Runtime, config: &Config, out: &mut Output) -> u8 {
    let report = runtime.block_on(doctor::run(config));
    for finding in &report.findings {
        out.line(finding);
    }
    if report.passed() {
        exit::OK
    } else {
        exit::FAILURE
    }
}

async fn dispatch(cli: &Cli, config: Config, out: &mut Output) -> Result<(), AgentError> {
    info!(version = env!("CARGO_PKG_VERSION"), config = %cli.config.display(), command = cli.command.name(), "route53-agent starting");
    // Signals are caught from the start, so a SIGTERM during start-up still
    // ends in a clean deregistration.
    let shutdown = match cli.command {
        Command::Run(_) => Some(shutdown::on_signals().map_err(AgentError::Signals)?),
        _ => None,
    };
    let request_timeout = config.request_timeout;
    let shutdown_timeout = config.shutdown_timeout;
    let backoff = config.backoff;
    // deregister names the records it leaves behind from the configuration.
    let configured = config.clone();
    let http_client = http::client();
    let mut agent = Agent::new(
        config,
        Metadata::from_env(http_client.clone()),
        Route53::from_env(request_timeout, http_client).await,
    );
    match (cli.command, shutdown) {
        (Command::Run(_), Some(shutdown)) => agent::run(agent, shutdown).await,
        (Command::Register(args), _) => register(&mut agent, args, backoff).await,
        (Command::Deregister, _) => deregister(&mut agent, &configured, shutdown_timeout).await,
        (Command::Plan, _) => {
            let plan = async |agent: &mut Agent| print_plan(agent, out).await;
            agent.bounded("plan", shutdown_timeout, plan).await
        }
        (Command::Gc, _) => {
            let collect = async |agent: &mut Agent| {
                agent.resolve_zones().await?;
                agent.gc().await
            };
            let removed = agent.bounded("gc", shutdown_timeout, collect).await?;
            out.line(format_args!("{} stale record(s) removed", removed.len()));
            for record in removed {
                out.line(format_args!("removed {record}"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The one-shot `deregister`. Its retries are bounded by shutdown_timeout,
/// since it usually runs as a stop step with a deadline of its own. So that
/// a deadline that runs out can name the records left behind, the facts
/// are read first (again inside the deletes: IMDS is local and cheap),
/// before the first Route 53 call, which is what usually hangs. A record
/// deleted before the deadline is named too; the log says which were.
async fn deregister(
    agent: &mut Agent,
    config: &Config,
    limit: std::time::Duration,
) -> Result<(), AgentError> {
    let mut described = None;
    let deregistered = async {
        let (facts, _) = agent.plan().await?;
        described = Some(plan::described(config, &facts));
        agent.resolve_zones().await?;
        agent.deregister_planned().await
    };
    let result = timeout(limit, deregistered).await;
    result.unwrap_or_else(|_| {
        let records = described.unwrap_or_else(|| {
            let templates: Vec<String> = config
                .records
                .iter()
                .map(|spec| format!("{} {}", spec.name, spec.record_type))
                .collect();
            format!(
                "the records of {} (instance metadata did not answer in time to name them)",
                templates.join(", ")
            )
        });
        Err(AgentError::LeftBehind {
            timeout: humantime::format_duration(limit).to_string(),
            records,
        })
    })
}

/// Retryable failures are retried without limit: a boot must end
/// registered. A user who cannot wait stops it with Ctrl-C.
async fn register(
    agent: &mut Agent,
    args: RegisterArgs,
    backoff: Backoff,
) -> Result<(), AgentError> {
    agent.wait_boot_jitter().await;
    agent.resolve_zones().await?;
    let report = sync_once_metadata_answers(agent, backoff).await?;
    if args.wait && !agent.wait_insync(&report.changes).await {
        return Err(AgentError::NotWritten {
            count: report.changes.len(),
            details: "Route 53 would not tell whether the changes are INSYNC".into(),
        });
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(AgentError::NotWritten {
            count: report.problems.len(),
            details: report.problems.join("; "),
        })
    }
}

/// register's pass, tried again, with the backoff Route 53 calls use, for
/// as long as instance metadata cannot be read yet (IMDS or the network not
/// up at boot): the Route 53 calls inside are retried without limit, and
/// so is this read. A failure that asking again cannot mend ends it at
/// once; which those are is said where `MetadataError` is classified. The
/// pass fails at its metadata read, before any write, so trying it again
/// repeats nothing.
async fn sync_once_metadata_answers(
    agent: &mut Agent,
    backoff: Backoff,
) -> Result<SyncReport, AgentError> {
    let mut retry = Retry::new(backoff, retry::os_seeded());
    // Only a metadata failure is the retry loop's to judge; the pass's
    // other outcomes, good or bad, go back to the caller as they are.
    let passed = retry
        .call("read instance metadata", async || {
            match agent.sync().await {
                Err(AgentError::Metadata(error)) => Err(error),
                other => Ok(other),
            }
        })
        .await;
    match passed {
        Ok(outcome) => outcome,
        Err(GaveUp::Final(error)) => Err(AgentError::Metadata(error)),
        Err(GaveUp::Interrupted) => Err(AgentError::Interrupted),
    }
}

async fn print_plan(agent: &mut Agent, out: &mut Output) -> Result<(), AgentError> {
    agent.resolve_zones().await?;
    let (facts, planned) = agent.plan().await?;
    out.line(facts.describe());
    let mut failed = Vec::new();
    for (_, entry) in planned {
        match entry {
            Planned::Ready(record) => {
                let set = match &record.set_identifier {
                    Some(set) => format!(" set={set} {}", record.policy.kind()),
                    None => String::new(),
                };
                let line = format!(
                    "{:<8} {} {} {}{} {}",
                    record.zone_id,
                    record.name,
                    record.record_type,
                    record.ttl,
                    set,
                    record.values.join(" ")
                );
                match agent.preview(facts.owner_id(), &record).await? {
                    Ok(how) => out.line(format_args!("write   {line}   ({how})")),
                    Err(why) => {
                        out.line(format_args!("refuse  {line}\n        {why}"));
                        failed.push(why);
                    }
                }
            }
            Planned::Waiting { why, .. } => out.line(format_args!("wait    {why}")),
            Planned::Failed(why) => {
                out.line(format_args!("error   {why}"));
                failed.push(why.to_string());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(AgentError::NotPlanned {
            count: failed.len(),
            details: failed.join("; "),
        })
    }
}

/// Standard output, for the commands' reports. A reader that goes away
/// early (`iam-policy | head -1`) is not a failure: the rest of the report
/// is dropped quietly and the command ends with the exit code its work
/// earned, as Unix tools do. Any other write error (a full disk) is logged
/// once and fails a command that would otherwise have succeeded.
#[derive(Debug, Default)]
struct Output {
    state: OutputState,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum OutputState {
    #[default]
    Open,
    /// The reader went away.
    Closed,
    Failed,
}

impl Output {
    /// Writes one line, unless nobody reads any more.
    fn line(&mut self, text: impl std::fmt::Display) {
        if self.state != OutputState::Open {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        let written = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
        match written {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                self.state = OutputState::Closed;
            }
            Err(error) => {
                error!(error = %error, "cannot write to standard output");
                self.state = OutputState::Failed;
            }
        }
    }

    /// The exit code, given the one the command's work earned.
    fn exit_code(&self, earned: u8) -> u8 {
        match self.state {
            OutputState::Failed if earned == exit::OK => exit::FAILURE,
            _ => earned,
        }
    }
}

fn exit_code(error: &AgentError) -> u8 {
    match error {
        AgentError::Zones(_) => exit::CONFIG,
        AgentError::Route53(error) if error.is_config() => exit::CONFIG,
        AgentError::LeftBehind { .. } => exit::LEFT_BEHIND,
        _ => exit::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from(["route53-agent", "run", "--config", "/tmp/a.toml"]).unwrap();
        assert_eq!(cli.command, Command::Run(RunArgs::default()));
        assert_eq!(cli.config, PathBuf::from("/tmp/a.toml"));
        let cli = Cli::try_parse_from(["route53-agent", "plan"]).unwrap();
        assert_eq!(cli.config, PathBuf::from(DEFAULT_CONFIG_PATH));
    }

    #[test]
    fn register_takes_no_jitter_and_wait() {
        let cli =
            Cli::try_parse_from(["route53-agent", "register", "--no-jitter", "--wait"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Register(RegisterArgs {
                no_jitter: true,
                wait: true
            })
        );
        let cli = Cli::try_parse_from(["route53-agent", "run", "--no-jitter"]).unwrap();
        assert_eq!(cli.command, Command::Run(RunArgs { no_jitter: true }));
        assert!(Cli::try_parse_from(["route53-agent", "plan", "--wait"]).is_err());
    }

    #[test]
    fn error_chains_skip_repeated_causes() {
        let io = std::io::Error::other("disk gone");
        let error = crate::config::ConfigError::Read {
            path: "/x.toml".into(),
            source: io,
        };
        assert_eq!(
            crate::error_chain(&error),
            "cannot read config file /x.toml: disk gone"
        );
    }
}
