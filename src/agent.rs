//! The agent: registers the instance's records, follows its facts, and
//! removes exactly what it wrote when asked to stop.
//!
//! One [`Agent`] holds the configuration, the two clients and the memory of
//! what Route 53 accepted from this process. [`Agent::sync`] is one pass:
//! read the facts, plan, and write only what differs from that memory, so a
//! quiet instance makes no Route 53 call at all. [`run`] repeats passes every
//! `poll_interval` until shutdown, then deregisters within
//! `shutdown_timeout`. How it copes with faults and Route 53's limits is
//! in the child module `faults`.

mod faults;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout};
use tracing::{debug, error, info, warn};

use crate::config::{Config, ZoneId};
use crate::metadata::{InstanceFacts, Metadata, MetadataError, Needs};
use crate::notify;
use crate::plan::{self, DesiredRecord, PlanError, Planned, ZoneNames};
use crate::retry::{Class, Classify};
use crate::route53::{DeleteOutcome, Route53, Route53Error};
use crate::shutdown::Shutdown;

/// Why the agent stopped, or could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Route53(#[from] Route53Error),
    #[error("the configuration does not fit the hosted zones")]
    Zones(#[source] PlanError),
    #[error("{count} record(s) could not be written: {details}")]
    NotWritten { count: usize, details: String },
    #[error("{count} record(s) could not be deleted: {details}")]
    NotDeleted { count: usize, details: String },
    #[error(
        "shutdown_timeout ({timeout}) ran out before every record was deleted; \
         left behind: {records}"
    )]
    LeftBehind { timeout: String, records: String },
    #[error("shutdown was asked for before the call succeeded")]
    Interrupted,
}

/// The outcome of one [`Agent::sync`] pass.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Records written in this pass.
    pub written: Vec<DesiredRecord>,
    /// Records that could not be written, with the reason.
    pub problems: Vec<String>,
    /// The changes Route 53 accepted in this pass, with their zones.
    pub changes: Vec<(ZoneId, String)>,
}

/// The agent's state between passes.
pub struct Agent {
    config: Config,
    needs: Needs,
    metadata: Metadata,
    route53: Route53,
    zones: ZoneNames,
    /// What Route 53 accepted from this process, by configured record index.
    written: BTreeMap<usize, DesiredRecord>,
    /// The last problem logged per record, so each is logged once, not on
    /// every poll.
    reported: BTreeMap<usize, String>,
    faults: faults::Faults,
}

impl Agent {
    pub fn new(config: Config, metadata: Metadata, route53: Route53) -> Self {
        Agent {
            needs: Needs::of(&config),
            faults: faults::Faults::new(faults::retry_for(&config)),
            config,
            metadata,
            route53,
            zones: ZoneNames::new(),
            written: BTreeMap::new(),
            reported: BTreeMap::new(),
        }
    }

    /// Looks up every configured hosted zone and checks that each record's
    /// name can only lie inside its zone. Nothing is written before this.
    pub async fn resolve_zones(&mut self) -> Result<(), AgentError> {
        let mut zones = ZoneNames::new();
        for zone_id in self.config.zone_ids() {
            let route53 = &self.route53;
            let name = self
                .faults
                .retry
                .call("GetHostedZone", || route53.zone_name(zone_id))
                .await?;
            debug!(zone_id = %zone_id, zone = %name, "found hosted zone");
            zones.insert(zone_id.clone(), name);
        }
        plan::check_zones(&self.config, &zones).map_err(AgentError::Zones)?;
        self.zones = zones;
        Ok(())
    }

    /// Reads the facts and plans every record, writing nothing.
    pub async fn plan(&mut self) -> Result<(InstanceFacts, Vec<Planned>), AgentError> {
        let facts = self.metadata.read(&self.needs).await?;
        let planned = plan::plan(&self.config, &facts, &self.zones);
        Ok((facts, planned))
    }

    /// One pass: read the facts, plan, and UPSERT what differs from what was
    /// written before, one change batch per name. A record whose name changed
    /// is written under the new name first; the old one is then deleted if it
    /// still holds what the agent wrote.
    pub async fn sync(&mut self) -> Result<SyncReport, AgentError> {
        let (facts, planned) = self.plan().await?;
        let mut report = SyncReport::default();
        let mut changed = Vec::new();
        for (index, entry) in planned.into_iter().enumerate() {
            match entry {
                Planned::Ready(record) if self.written.get(&index) == Some(&record) => {
                    self.reported.remove(&index);
                }
                Planned::Ready(record) if self.faults.refused.get(&index) == Some(&record) => {}
                Planned::Ready(record) => changed.push((index, record)),
                Planned::Waiting(why) => report.problems.push(self.note(index, why, false)),
                Planned::Failed(why) => {
                    report
                        .problems
                        .push(self.note(index, why.to_string(), true))
                }
            }
        }
        if changed.is_empty() {
            debug!(instance_id = %facts.instance_id, "records up to date");
            return Ok(report);
        }

        let mut replaced = Vec::new();
        for ((zone_id, _), group) in plan::batches(changed.iter().map(|(_, record)| record)) {
            let route53 = &self.route53;
            let upserted = self.faults.retry.call("UPSERT", || route53.upsert(&group));
            match upserted.await {
                Ok(change_id) => {
                    for record in &group {
                        info!(
                            instance_id = %facts.instance_id, zone_id = %record.zone_id,
                            record = %record, values = %record.values.join(" "),
                            ttl = record.ttl, change_id = %change_id, "record upserted"
                        );
                    }
                    report
                        .written
                        .extend(group.iter().map(|record| (*record).clone()));
                    report.changes.push((zone_id.clone(), change_id));
                }
                Err(gave_up) => {
                    let problem = self.not_written(&group, &changed, gave_up);
                    report.problems.push(problem);
                }
            }
        }
        for (index, record) in changed {
            if !report.written.contains(&record) {
                continue;
            }
            self.reported.remove(&index);
            self.faults.refused.remove(&index);
            if let Some(old) = self.written.insert(index, record.clone())
                && old.name != record.name
            {
                replaced.push(old);
            }
        }
        for old in replaced {
            self.retire(&old).await;
        }
        Ok(report)
    }

    /// Removes a record this process wrote under a name it no longer uses,
    /// unless another configured record now writes the same name and type.
    async fn retire(&mut self, old: &DesiredRecord) {
        if self
            .written
            .values()
            .any(|record| record.key() == old.key())
        {
            return;
        }
        let route53 = &self.route53;
        let deleted = self
            .faults
            .retry
            .call("DELETE", || route53.delete_if_unchanged(old));
        match deleted.await.map_err(AgentError::from) {
            Ok(outcome) => log_delete(old, &outcome, "old name"),
            Err(error) => error!(record = %old, error = %error, "could not delete the old name"),
        }
    }

    /// Logs a problem with one record the first time it is seen.
    fn note(&mut self, index: usize, why: String, is_error: bool) -> String {
        if self.reported.get(&index) != Some(&why) {
            let template = self.config.records[index].name.as_str();
            if is_error {
                error!(record = template, "{why}; nothing written for this record");
            } else {
                warn!(record = template, "waiting: {why}");
            }
            self.reported.insert(index, why.clone());
        }
        why
    }

    /// Deletes every record this process wrote, each only while it still holds
    /// what was written. Records changed by someone else are left, with a
    /// warning, and count as done.
    pub async fn deregister_written(&mut self) -> Result<(), AgentError> {
        let records: Vec<(usize, DesiredRecord)> =
            self.written.iter().map(|(i, r)| (*i, r.clone())).collect();
        let mut failures = Vec::new();
        for (index, record) in records {
            let route53 = &self.route53;
            let deleted = self
                .faults
                .retry
                .call("DELETE", || route53.delete_if_unchanged(&record));
            match deleted.await.map_err(AgentError::from) {
                Ok(outcome) => {
                    log_delete(&record, &outcome, "shutdown");
                    self.faults.note_deleted(&record, &outcome);
                    self.written.remove(&index);
                }
                Err(error) => {
                    error!(record = %record, error = %error, "delete failed");
                    failures.push(format!("{record} ({error})"));
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(AgentError::NotDeleted {
                count: failures.len(),
                details: failures.join("; "),
            })
        }
    }

    /// Deletes the records the current facts describe, each only while it
    /// holds exactly the planned values: the one-shot `deregister`.
    pub async fn deregister_planned(&mut self) -> Result<(), AgentError> {
        let (_, planned) = self.plan().await?;
        let mut problems = Vec::new();
        for (index, entry) in planned.into_iter().enumerate() {
            match entry {
                Planned::Ready(record) => {
                    self.written.insert(index, record);
                }
                Planned::Waiting(why) => problems.push(why),
                Planned::Failed(why) => problems.push(why.to_string()),
            }
        }
        let deleted = self.deregister_written().await;
        if !problems.is_empty() {
            return Err(AgentError::NotDeleted {
                count: problems.len(),
                details: format!("their names or values are unknown: {}", problems.join("; ")),
            });
        }
        deleted
    }

    /// Records written and not yet deleted, for logs and errors.
    pub fn written_names(&self) -> String {
        plan::names(self.written.values())
    }
}

fn log_delete(record: &DesiredRecord, outcome: &DeleteOutcome, why: &str) {
    match outcome {
        DeleteOutcome::Deleted { .. } => {
            info!(zone_id = %record.zone_id, record = %record, reason = why, "record deleted")
        }
        DeleteOutcome::AlreadyGone => {
            info!(zone_id = %record.zone_id, record = %record, reason = why, "record already gone")
        }
        DeleteOutcome::ChangedBySomeoneElse(live) => warn!(
            zone_id = %record.zone_id, record = %record, live = %live,
            "record changed by someone else since it was written; left alone"
        ),
    }
}

/// True when retrying cannot help until a person changes something.
pub fn is_final(error: &AgentError) -> bool {
    match error {
        AgentError::Route53(error) => error.class() == Class::Final,
        AgentError::Zones(_) => true,
        _ => false,
    }
}

/// The daemon: registers, follows changes every `poll_interval`, and on
/// shutdown deletes what it wrote within `shutdown_timeout`.
///
/// Only waits (between passes, between retries, the boot jitter) are raced
/// against shutdown: a change already sent to Route 53 is allowed to finish,
/// and then the records are deleted.
pub async fn run(mut agent: Agent, mut shutdown: Shutdown) -> Result<(), AgentError> {
    agent.faults.retry.interrupt_on(Some(shutdown.clone()));
    let poll = agent.config.poll_interval;
    let started = loop {
        match agent.resolve_zones().await {
            Ok(()) => break true,
            Err(error) if is_final(&error) => return Err(error),
            Err(error) => warn!(error = %error, "cannot look up hosted zones yet; retrying"),
        }
        if wait_or_shutdown(poll, &mut shutdown).await {
            break false;
        }
    };

    if started && agent.wait_boot_jitter().await {
        info!(records = agent.config.records.len(), "agent running");
        loop {
            match agent.sync().await {
                Ok(report) => agent.after_pass(&report).await,
                Err(error) => warn!(error = %error, "pass failed; keeping the records as they are"),
            }
            if wait_or_shutdown(poll, &mut shutdown).await {
                break;
            }
        }
    }

    // From here on the deadline bounds every retry, not shutdown.
    notify::stopping("deregistering");
    agent.faults.retry.interrupt_on(None);
    let deadline = agent.config.shutdown_timeout;
    let began = Instant::now();
    let result = match timeout(deadline, agent.deregister_written()).await {
        Ok(result) => {
            info!(
                elapsed_ms = began.elapsed().as_millis() as u64,
                "deregistration finished"
            );
            result
        }
        Err(_) => Err(AgentError::LeftBehind {
            timeout: humantime::format_duration(deadline).to_string(),
            records: agent.written_names(),
        }),
    };
    agent.drain(began + deadline).await;
    result
}

/// Sleeps for `period`; true when shutdown was asked for meanwhile.
async fn wait_or_shutdown(period: Duration, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        _ = sleep(period) => false,
        reason = shutdown.requested() => {
            info!(%reason, "stopping");
            true
        }
    }
}
