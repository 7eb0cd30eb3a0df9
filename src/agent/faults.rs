//! The agent under faults and Route 53 limits: retried calls, records
//! Route 53 refused for good, the boot jitter, waiting for INSYNC, draining
//! at shutdown, and what systemd is told along the way.
//!
//! It lives beside the agent loop as a child module, so that it reaches the
//! agent's state without widening its interface; [`super::run`] and the
//! passes call into it in a line or two each.

use std::time::Duration;

use tokio::time::{Instant, timeout_at};
use tracing::{error, info, warn};

use super::{Agent, AgentError, SyncReport};
use crate::config::{Drain, ZoneId};
use crate::notify;
use crate::plan::{self, DesiredRecord, Slot};
use crate::registrar::DeleteOutcome;
use crate::retry::{self, BootJitter, GaveUp, Retry};
use crate::route53::Route53Error;

/// What the agent keeps about faults between passes.
#[derive(Debug)]
pub(super) struct Faults {
    pub(super) retry: Retry,
    /// Whether systemd has been told READY=1.
    ready: bool,
    /// Deletes to drain at shutdown: made then, or early, on a lifecycle
    /// notice.
    deleted: Vec<Deleted>,
}

/// A delete that resolvers may not have heard of yet.
#[derive(Debug)]
struct Deleted {
    zone_id: ZoneId,
    /// The change that deleted it; `None` when someone else did.
    change_id: Option<String>,
    ttl: u32,
    /// When the delete was seen INSYNC (or gone, without a change of ours to
    /// follow): resolvers may hand the record out until one TTL later.
    /// `None` until known.
    insync_at: Option<Instant>,
}

/// When resolvers have forgotten every deleted record: one TTL after each
/// delete was seen INSYNC, counting those not seen INSYNC before as seen at
/// `insync_now`.
fn drained_at(deleted: &[Deleted], insync_now: Instant) -> Instant {
    deleted
        .iter()
        .map(|delete| {
            delete.insync_at.unwrap_or(insync_now) + Duration::from_secs(u64::from(delete.ttl))
        })
        .max()
        .unwrap_or(insync_now)
}

impl Faults {
    pub(super) fn new(retry: Retry) -> Self {
        Faults {
            retry,
            ready: false,
            deleted: Vec::new(),
        }
    }

    /// Remembers a delete for [`Agent::drain`]. A record someone else
    /// deleted first is drained too: resolvers may still hold it.
    pub(super) fn note_deleted(&mut self, record: &DesiredRecord, outcome: &DeleteOutcome) {
        let change_id = match outcome {
            DeleteOutcome::Deleted { change_id } => Some(change_id.clone()),
            DeleteOutcome::AlreadyGone => None,
            DeleteOutcome::LeftAlone(_) => return,
        };
        self.deleted.push(Deleted {
            zone_id: record.zone_id.clone(),
            change_id,
            ttl: record.ttl,
            insync_at: None,
        });
    }

    /// How many deletes are remembered, so that a caller can settle the
    /// ones it adds (see [`Agent::settle_early_deletes`]).
    pub(super) fn deletes_noted(&self) -> usize {
        self.deleted.len()
    }
}

impl From<GaveUp<Route53Error>> for AgentError {
    fn from(gave_up: GaveUp<Route53Error>) -> Self {
        match gave_up {
            GaveUp::Final(error) => AgentError::Route53(error),
            GaveUp::Interrupted => AgentError::Interrupted,
        }
    }
}

impl Agent {
    /// Waits a random part of `boot_jitter` before the first write; false
    /// when shutdown came first.
    pub async fn wait_boot_jitter(&mut self) -> bool {
        let jitter = BootJitter {
            max: self.config.boot_jitter,
        };
        let delay = jitter.delay(self.faults.retry.rng());
        if delay.is_zero() {
            return true;
        }
        info!(
            delay_ms = delay.as_millis() as u64,
            boot_jitter = %humantime::format_duration(jitter.max),
            "waiting before the first write, so that a fleet booted together spreads out"
        );
        notify::status(&format!(
            "waiting {} (boot_jitter) before the first write",
            humantime::format_duration(round_to_millis(delay))
        ));
        // A wait the agent chose, not a Route 53 it cannot reach: a long
        // boot_jitter must not fail a finite TimeoutStartSec.
        self.faults.retry.extend_start(delay);
        self.faults.retry.wait(delay).await
    }

    /// Handles a batch Route 53 would not take. A final refusal is logged
    /// with the record and the code, and the records are set aside until
    /// their plan changes. A batch abandoned at shutdown may still have
    /// reached Route 53 (a request that timed out can have been applied), or
    /// not (a throttled one): its records are kept as unconfirmed beside
    /// what was written before, and deregistration deletes each while its
    /// marker is this instance's, whichever values are live (see
    /// [`Agent::left_behind`]).
    pub(super) fn not_written(
        &mut self,
        group: &[(Slot, &DesiredRecord)],
        gave_up: GaveUp<Route53Error>,
    ) -> String {
        let names = plan::names(group.iter().map(|(_, record)| *record));
        match gave_up {
            GaveUp::Final(failure) => {
                let code = failure.code.as_deref().unwrap_or("no error code");
                let problem = format!("{names} refused ({code}): {failure}");
                for (slot, record) in group {
                    error!(
                        zone_id = %record.zone_id, record = %record, code, error = %failure,
                        "Route 53 refused the record; it is tried again only when its \
                         name or values change"
                    );
                    self.refused.insert(*slot, (*record).clone());
                    // Later passes report the refusal from here, without
                    // logging it again.
                    self.reported.insert(*slot, problem.clone());
                }
                problem
            }
            GaveUp::Interrupted => {
                for (slot, record) in group {
                    self.unconfirmed.insert(*slot, (*record).clone());
                }
                format!("{names}: stopped while retrying the write")
            }
        }
    }

    /// After a pass: waits for INSYNC when `wait_insync` is set, and tells
    /// systemd the agent is ready after the first pass that read the facts
    /// and had every write accepted or settled.
    pub(super) async fn after_pass(&mut self, report: &SyncReport) {
        if self.config.wait_insync && !self.wait_insync(&report.changes).await {
            return;
        }
        let status = format!(
            "{} record(s) registered, {} problem(s)",
            self.written.len(),
            report.problems.len()
        );
        if self.faults.ready {
            if !report.written.is_empty() || !report.problems.is_empty() {
                notify::status(&status);
            }
        } else {
            self.faults.ready = true;
            self.faults.retry.extend_start_while_busy(None);
            notify::ready(&status);
        }
    }

    /// Polls GetChange with backoff until every change is INSYNC; false when
    /// shutdown came first or Route 53 refused to tell.
    pub async fn wait_insync(&mut self, changes: &[(ZoneId, String)]) -> bool {
        for (zone_id, change_id) in changes {
            notify::status(&format!("waiting for change {change_id} to be INSYNC"));
            let route53 = &self.route53;
            let polled = self
                .faults
                .retry
                .poll_until("GetChange", || route53.is_insync(zone_id, change_id))
                .await;
            match polled {
                Ok(()) => info!(zone_id = %zone_id, change_id = %change_id, "change INSYNC"),
                Err(GaveUp::Interrupted) => return false,
                Err(GaveUp::Final(error)) => {
                    error!(change_id = %change_id, error = %error, "cannot tell whether the change is INSYNC");
                    return false;
                }
            }
        }
        true
    }

    /// With `drain = "ttl"`, follows the deletes of an early
    /// deregistration (a lifecycle notice) until they are INSYNC, from the
    /// `from`th remembered delete on, so that shutdown later waits only for
    /// what is left of their TTL instead of draining them again. Cut short
    /// by shutdown, or refused by Route 53, they are drained in full at
    /// shutdown.
    pub(super) async fn settle_early_deletes(&mut self, from: usize) {
        if self.config.drain != Drain::Ttl || from >= self.faults.deleted.len() {
            return;
        }
        let changes: Vec<(ZoneId, String)> = self.faults.deleted[from..]
            .iter()
            .filter_map(|delete| Some((delete.zone_id.clone(), delete.change_id.clone()?)))
            .collect();
        if self.wait_insync(&changes).await {
            let now = Instant::now();
            for delete in &mut self.faults.deleted[from..] {
                delete.insync_at = Some(now);
            }
        }
    }

    /// With `drain = "ttl"`, waits for the deletes to be INSYNC and then for
    /// their TTL, so that resolvers stop handing out the address before the
    /// process goes. Deletes seen INSYNC earlier (an early deregistration)
    /// are waited for only as long as their TTL still runs. Never past
    /// `deadline`: what is cut short is logged, and the deletes stand.
    pub(super) async fn drain(&mut self, deadline: Instant) {
        if self.config.drain != Drain::Ttl || self.faults.deleted.is_empty() {
            return;
        }
        let deleted = std::mem::take(&mut self.faults.deleted);
        let changes: Vec<(ZoneId, String)> = deleted
            .iter()
            .filter(|delete| delete.insync_at.is_none())
            .filter_map(|delete| Some((delete.zone_id.clone(), delete.change_id.clone()?)))
            .collect();
        let draining = async {
            self.wait_insync(&changes).await;
            let now = Instant::now();
            let until = drained_at(&deleted, now);
            let wait_s = until.saturating_duration_since(now).as_secs();
            info!(
                wait_s,
                "deletes are INSYNC; waiting out their TTL for resolvers to forget"
            );
            notify::stopping(&format!("draining: waiting {wait_s} s (TTL)"));
            tokio::time::sleep_until(until).await;
        };
        let longest = deleted.iter().map(|delete| delete.ttl).max().unwrap_or(0);
        match timeout_at(deadline, draining).await {
            Ok(()) => info!("drained"),
            Err(_) => warn!(
                ttl_s = longest,
                "shutdown_timeout ran out while draining; the records are deleted, but \
                 resolvers may still hand them out for up to their TTL"
            ),
        }
    }
}

/// Whole milliseconds read better in a status line than nanoseconds.
fn round_to_millis(delay: Duration) -> Duration {
    Duration::from_millis(delay.as_millis() as u64)
}

/// What the start may take beyond a retry's wait, besides the wait itself.
const START_SLACK_MARGIN: Duration = Duration::from_secs(10);

/// How much longer than a retry's wait systemd is asked to allow for the
/// start while Route 53 is busy: the attempt after the wait and one more
/// call (each up to `request_timeout`), and a margin for reading instance
/// metadata between them. A busy answer to that call extends it again.
pub(super) fn start_slack(config: &crate::config::Config) -> Duration {
    config
        .request_timeout
        .saturating_mul(2)
        .saturating_add(START_SLACK_MARGIN)
}

/// A retry policy for the agent, seeded by the operating system.
pub(super) fn retry_for(config: &crate::config::Config) -> Retry {
    Retry::new(config.backoff, retry::os_seeded())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deleted(ttl: u32, insync_at: Option<Instant>) -> Deleted {
        Deleted {
            zone_id: ZoneId::parse("ZA").unwrap(),
            change_id: Some("C1".into()),
            ttl,
            insync_at,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn early_deletes_are_drained_only_for_the_ttl_they_have_left() {
        let early = Instant::now();
        tokio::time::advance(Duration::from_secs(100)).await;
        let later = Instant::now();
        tokio::time::advance(Duration::from_secs(20)).await;
        let now = Instant::now();

        // Long done: nothing left to wait for.
        assert!(drained_at(&[deleted(60, Some(early))], now) <= now);
        // Seen INSYNC 20 s ago with a TTL of 60 s: 40 s left.
        let until = drained_at(&[deleted(60, Some(early)), deleted(60, Some(later))], now);
        assert_eq!(until - now, Duration::from_secs(40));
        // A delete seen INSYNC only now waits its whole TTL, and the longest
        // wait wins.
        let until = drained_at(&[deleted(60, Some(later)), deleted(50, None)], now);
        assert_eq!(until - now, Duration::from_secs(50));
        assert_eq!(drained_at(&[], now), now);
    }
}
