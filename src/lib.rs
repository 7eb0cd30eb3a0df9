//! route53-agent keeps an EC2 instance's own DNS records in Route 53 true for
//! as long as the instance lives.
//!
//! How data flows:
//!
//! - [`config`] reads the TOML file and checks it before anything else runs.
//! - [`metadata`] reads the instance's facts from IMDSv2 (identity,
//!   addresses, tags, lifecycle notices) and, for an ECS task, from [`ecs`];
//!   it refuses bodies that are not what they claim to be.
//! - [`plan`] is pure: configuration + facts + zone names → the records that
//!   should exist. [`template`] and [`dns`] render and check their names.
//! - [`owner`] is pure too: the ownership marker beside each record, and
//!   what may be written or deleted given what is live.
//! - [`route53`] reads live record sets and sends change batches;
//!   [`registrar`] joins reads, ownership decisions and writes.
//! - [`agent`] runs the passes: plan, compare with what was written, write
//!   the difference; and on [`shutdown`] deletes what it wrote.
//! - [`retry`] decides which failures are tried again and how long to wait
//!   first; [`notify`] tells systemd how far the agent has got.
//! - [`state`] remembers, on this machine, which instance the agent last ran
//!   on, so that only a restart pays for collecting stale records.
//! - [`http`] is the one HTTPS client all of the AWS calls go through.
//! - [`cli`] parses the command line and maps outcomes to exit codes.
//! - [`iam`] builds the least-privilege IAM policy for a configuration, and
//!   [`doctor`] checks, read-only, that this machine can run the agent.

pub mod agent;
pub mod cli;
pub mod config;
pub mod dns;
pub mod doctor;
pub mod ecs;
pub mod http;
pub mod iam;
pub mod metadata;
pub mod notify;
pub mod owner;
pub mod plan;
pub mod registrar;
pub mod retry;
pub mod route53;
pub mod shutdown;
pub mod state;
pub mod template;

/// An error and its causes on one line, each as it displays itself:
/// `cannot read config file /x.toml: disk gone`. A cause whose text the
/// line holds already is not repeated. (The AWS SDK's `DisplayErrorContext`
/// ends with a debug dump of the whole chain, which reads badly in logs and
/// systemd status lines.)
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
