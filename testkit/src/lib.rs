//! Test doubles for route53-agent: the two peers the agent talks to, run on
//! loopback ports the OS chooses.
//!
//! - `imds` owns a strict IMDSv2 server whose metadata, tags and faults a
//!   test changes while the agent runs; the `fake-imds` binary serves the
//!   same thing to shell scripts, with a control API on the side.
//! - `ministack` owns the Route 53 emulator process (or finds a shared one).
//! - `route53` holds the calls a test makes to that emulator itself.
//! - `fault_proxy` stands between the agent and the emulator and injects
//!   Route 53's errors, hangs and refused connections, and can throttle
//!   each action with a `token_bucket`, the model Route 53's limits follow.
//!
//! A test starts both peers, gives the agent process `agent_env` (after
//! removing `AGENT_ENV_REMOVE` from it), and checks the zone with the
//! `route53` helpers.

pub mod fault_proxy;
pub mod imds;
pub mod ministack;
pub mod route53;
pub mod token_bucket;

pub use fault_proxy::{Action, Exchange, Fault, FaultProxy};
pub use imds::{ControlApi, ImdsServer, InstanceDefaults};
pub use ministack::Ministack;
pub use route53::{create_zone, records, route53_client, upsert, values_of};
pub use token_bucket::TokenBucket;

/// The environment that points an agent process at the fakes and nowhere
/// else: IMDS at `imds`, Route 53 at `route53`, static test credentials, and
/// empty AWS config and credentials files so a developer's own `~/.aws`
/// never leaks in.
pub fn agent_env(imds: &str, route53: &str) -> Vec<(String, String)> {
    // An empty file is the point: the SDK reads it and finds no profiles.
    let empty = "/dev/null";
    [
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv4"),
        ("AWS_ENDPOINT_URL_ROUTE_53", route53),
        ("AWS_REGION", route53::TEST_REGION),
        ("AWS_ACCESS_KEY_ID", route53::TEST_ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", route53::TEST_SECRET_ACCESS_KEY),
        ("AWS_CONFIG_FILE", empty),
        ("AWS_SHARED_CREDENTIALS_FILE", empty),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect()
}

/// Variables from the developer's or CI's environment that would change
/// where an agent process goes or who it acts as; remove them with
/// `Command::env_remove` before adding `agent_env`.
pub const AGENT_ENV_REMOVE: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
];
