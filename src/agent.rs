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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout, timeout_at};
use tracing::{debug, error, info, warn};

use crate::config::{Config, ValueSource, ZoneId, ZoneRef};
use crate::metadata::{InstanceFacts, Metadata, MetadataError, Needs};
use crate::notify;
use crate::plan::{self, DesiredRecord, Lacks, PlanError, Planned, RecordSet, Slot, Zones};
use crate::registrar::{DeleteOutcome, Expect, Registrar};
use crate::retry::{Class, Classify, GaveUp};
use crate::route53::{Route53, Route53Error};
use crate::shutdown::Shutdown;
use crate::state::State;

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
    /// What `plan` found: it writes nothing, so nothing "could not be
    /// written"; these would not be.
    #[error("{count} record(s) would not be written: {details}")]
    NotPlanned { count: usize, details: String },
    #[error("{count} record(s) could not be deleted: {details}")]
    NotDeleted { count: usize, details: String },
    #[error(
        "shutdown_timeout ({timeout}) ran out before every record was deleted; \
         left behind: {records}"
    )]
    LeftBehind { timeout: String, records: String },
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("shutdown was asked for before the call succeeded")]
    Interrupted,
    #[error(
        "{command} gave up after {after} (shutdown_timeout) without the answers it needs: \
         {waiting}"
    )]
    TimedOut {
        command: &'static str,
        after: String,
        /// What it was waiting for, and the failure before, if any.
        waiting: String,
    },
}

/// The outcome of one [`Agent::sync`] pass.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Records written in this pass.
    pub written: Vec<DesiredRecord>,
    /// Records that could not be written, with the reason.
    pub problems: Vec<String>,
    /// True when every configured record could be planned: only then does
    /// the agent know every record it wants, which garbage collection needs.
    pub complete: bool,
    /// The changes Route 53 accepted in this pass, with their zones.
    pub changes: Vec<(ZoneId, String)>,
    /// Records found live with this instance's marker before this pass
    /// wrote them: evidence of an earlier run on this instance.
    pub already_ours: usize,
}

/// The agent's state between passes.
pub struct Agent {
    config: Config,
    needs: Needs,
    metadata: Metadata,
    route53: Route53,
    zones: Zones,
    /// Zones whose lookup Route 53 refused for good, with the error: their
    /// records are set aside.
    unavailable: BTreeMap<ZoneRef, String>,
    /// What Route 53 accepted from this process.
    written: BTreeMap<Slot, DesiredRecord>,
    /// Records sent whose outcome is not known: a write still being retried
    /// when shutdown came may or may not have reached Route 53. Until one is
    /// accepted, its record set may hold this or what `written` says, so
    /// deregistration deletes it while its marker is this instance's
    /// ([`Expect::Marked`]).
    unconfirmed: BTreeMap<Slot, DesiredRecord>,
    /// Records refused, because the name belongs to someone else or clashes
    /// with what is live, or because Route 53 refused them for good: tried
    /// again only when the record itself changes (new values, a new name),
    /// since the same request would only be refused again.
    refused: BTreeMap<Slot, DesiredRecord>,
    /// Records whose last batch Route 53 rejected as invalid for the zone
    /// (`InvalidChangeBatch`), with what was sent.
    rejected: BTreeMap<Slot, DesiredRecord>,
    /// The last problem logged per record, so each is logged once, not on
    /// every poll.
    reported: BTreeMap<Slot, String>,
    instance_id: Option<String>,
    /// The values instance metadata gave at some read: one missing now is
    /// gone, not yet to come.
    had: Vec<ValueSource>,
    faults: faults::Faults,
    state: State,
    /// Why the instance is out of service, while a lifecycle notice says so.
    leaving: Option<String>,
    /// What a call made outside the retry loop waits for, while it does
    /// (reading instance metadata, say): see [`Agent::bounded`].
    awaiting: Option<&'static str>,
}

impl Agent {
    pub fn new(config: Config, metadata: Metadata, route53: Route53) -> Self {
        Agent {
            needs: Needs::of(&config),
            faults: faults::Faults::new(faults::retry_for(&config)),
            state: State::from_env(),
            leaving: None,
            config,
            metadata,
            route53,
            zones: Zones::new(),
            unavailable: BTreeMap::new(),
            written: BTreeMap::new(),
            unconfirmed: BTreeMap::new(),
            refused: BTreeMap::new(),
            rejected: BTreeMap::new(),
            reported: BTreeMap::new(),
            instance_id: None,
            had: Vec::new(),
            awaiting: None,
        }
    }

    /// Looks up every configured hosted zone and checks that each record's
    /// name can only lie inside its zone. Nothing is written before this.
    ///
    /// Each zone is looked up on its own. A zone that does not exist, or
    /// that its name does not single out, is a configuration error for the
    /// whole agent (exit 64). Any other final refusal (`AccessDenied`,
    /// `InvalidInput`) sets aside only that zone's records, with an error
    /// naming the zone and the code, and the records of the other zones are
    /// served: a restart would only spend the account's shared Route 53
    /// quota on the same answer. The zone is asked again at the next start.
    pub async fn resolve_zones(&mut self) -> Result<(), AgentError> {
        let mut zones = Zones::new();
        let mut unavailable = BTreeMap::new();
        for zone_ref in self.config.zones() {
            let route53 = &self.route53;
            let found = self
                .faults
                .retry
                .call("find hosted zone", || route53.zone(zone_ref))
                .await;
            match found {
                Ok(zone) => {
                    debug!(zone = %zone_ref, zone_id = %zone.id, name = %zone.name, "found hosted zone");
                    zones.insert(zone_ref.clone(), zone);
                }
                Err(GaveUp::Final(error)) if !error.is_config() => {
                    let code = error.code.as_deref().unwrap_or("no error code");
                    error!(
                        zone = %zone_ref, code, error = %error,
                        "cannot look up the hosted zone; its records are set aside until the \
                         agent restarts"
                    );
                    unavailable.insert(zone_ref.clone(), error.to_string());
                }
                Err(gave_up) => return Err(gave_up.into()),
            }
        }
        plan::check_zones(&self.config, &zones).map_err(AgentError::Zones)?;
        self.zones = zones;
        self.unavailable = unavailable;
        Ok(())
    }

    /// Reads the facts and plans every record, writing nothing.
    pub async fn plan(&mut self) -> Result<(InstanceFacts, Vec<(Slot, Planned)>), AgentError> {
        self.awaiting = Some("instance metadata had not answered");
        let facts = self.metadata.read(&self.needs).await;
        self.awaiting = None;
        let facts = facts?;
        self.instance_id = Some(facts.owner_id().to_string());
        let mut planned = plan::plan_since(&self.config, &facts, &self.zones, &self.had);
        for spec in &self.config.records {
            if plan::has_value(spec.value, &facts) && !self.had.contains(&spec.value) {
                self.had.push(spec.value);
            }
        }
        for (_, entry) in &mut planned {
            if let Planned::Failed(PlanError::UnknownZone { template, zone }) = entry
                && let Some(why) = self.unavailable.get(zone)
            {
                *entry = Planned::Failed(PlanError::ZoneUnavailable {
                    template: template.clone(),
                    zone: zone.clone(),
                    why: why.clone(),
                });
            }
        }
        Ok((facts, planned))
    }

    /// What a registration would do with `record` now: how it would write
    /// it, or why it would leave it alone. Reads, writes nothing.
    pub async fn preview(
        &mut self,
        owner_id: &str,
        record: &DesiredRecord,
    ) -> Result<Result<String, String>, AgentError> {
        self.awaiting = Some("Route 53 had not answered a read of what is live");
        let preview = self.registrar(owner_id).preview(record).await;
        self.awaiting = None;
        Ok(preview?)
    }

    fn registrar(&self, instance_id: &str) -> Registrar {
        Registrar::new(self.route53.clone(), &self.config.owner_prefix, instance_id)
    }

    /// One pass: read the facts, plan, and write what differs from what was
    /// written before, one change batch per name. A record whose name changed
    /// is written under the new name first; the old one is then deleted if it
    /// is still ours. One whose value the instance no longer has is deleted
    /// (see `delete_dangling`).
    pub async fn sync(&mut self) -> Result<SyncReport, AgentError> {
        let (facts, planned) = self.plan().await?;
        if let Some(reason) = facts.leaving {
            return Ok(self.leave(reason).await);
        }
        if let Some(reason) = self.leaving.take() {
            info!(was = %reason, "the instance is back in service; registering again");
            notify::status("back in service; registering again");
            self.refused.clear();
            self.rejected.clear();
        }
        let registrar = self.registrar(facts.owner_id());
        let mut report = SyncReport {
            complete: planned.iter().all(|(_, p)| matches!(p, Planned::Ready(_))),
            ..SyncReport::default()
        };
        let mut changed = Vec::new();
        for (slot, entry) in planned {
            match entry {
                Planned::Ready(record) if self.written.get(&slot) == Some(&record) => {
                    self.reported.remove(&slot);
                }
                Planned::Ready(record) if self.refused.get(&slot) == Some(&record) => {
                    report
                        .problems
                        .push(self.reported.get(&slot).cloned().unwrap_or_default());
                }
                Planned::Ready(record) => {
                    // A new request: what was said about the last one (a
                    // refusal, a wait) is no longer news, and a refusal of
                    // this one is a new error.
                    self.reported.remove(&slot);
                    changed.push((slot, record))
                }
                Planned::Waiting {
                    why,
                    lacks: Lacks::Value { .. },
                } if self.written.contains_key(&slot) => report
                    .problems
                    .push(self.delete_dangling(&registrar, slot, why).await),
                Planned::Waiting { why, .. } => report.problems.push(self.note(slot, why, false)),
                Planned::Failed(why) => {
                    report.problems.push(self.note(slot, why.to_string(), true))
                }
            }
        }
        if changed.is_empty() {
            debug!(owner = %facts.owner_id(), "records up to date");
            return Ok(report);
        }

        let mut retired = Vec::new();
        for (_, group) in plan::batches(changed.iter().map(|(slot, record)| (*slot, record))) {
            let batch: Vec<(Slot, &DesiredRecord, Option<&DesiredRecord>)> = group
                .iter()
                .map(|(slot, record)| (*slot, *record, self.written.get(slot)))
                .collect();
            let registered = self
                .faults
                .retry
                .call("write records", || registrar.register(&batch))
                .await;
            let outcome = match registered {
                Ok(outcome) => outcome,
                Err(GaveUp::Final(error))
                    if error.is_invalid_change_batch() && !self.rejected_before(&group) =>
                {
                    // Once may be a race: the zone changed between the read
                    // and the write. The same batch refused twice in a row
                    // is refused for good (the arm below).
                    let names = plan::names(group.iter().map(|(_, record)| *record));
                    warn!(record = %names, error = %error, "the zone changed while writing; checking again next poll");
                    for (slot, record) in &group {
                        self.rejected.insert(*slot, (*record).clone());
                    }
                    report.problems.push(error.to_string());
                    continue;
                }
                Err(gave_up) => {
                    let records: Vec<(Slot, &DesiredRecord)> = group.clone();
                    report.problems.push(self.not_written(&records, gave_up));
                    continue;
                }
            };
            report.already_ours += outcome.already_ours;
            if let Some(change_id) = &outcome.change_id {
                report
                    .changes
                    .push((group[0].1.zone_id.clone(), change_id.clone()));
            }
            for (slot, why) in outcome.refused {
                let record = changed_record(&changed, slot);
                report.problems.push(self.note(slot, why, true));
                self.refused.insert(slot, record.clone());
            }
            for (slot, _) in &group {
                self.rejected.remove(slot);
            }
            for slot in outcome.written {
                let record = changed_record(&changed, slot).clone();
                info!(
                    owner = %facts.owner_id(), zone_id = %record.zone_id,
                    record = %record, values = %record.values.join(" "), ttl = record.ttl,
                    change_id = outcome.change_id.as_deref().unwrap_or_default(),
                    "record written"
                );
                self.reported.remove(&slot);
                self.refused.remove(&slot);
                self.unconfirmed.remove(&slot);
                report.written.push(record.clone());
                if let Some(old) = self.written.insert(slot, record.clone())
                    && old.key() != record.key()
                {
                    retired.push(old);
                }
            }
        }
        for old in retired {
            self.retire(&registrar, &old).await;
        }
        Ok(report)
    }

    /// While a lifecycle notice says the instance is leaving service, its
    /// records are deleted (before the platform takes it away) and none are
    /// written. A delete that fails is tried again on the next poll.
    async fn leave(&mut self, reason: String) -> SyncReport {
        if self.leaving.as_ref() != Some(&reason) {
            info!(%reason, "the instance is leaving service; deregistering early");
            notify::status(&format!("leaving service ({reason}); records deregistered"));
            self.leaving = Some(reason.clone());
        }
        if !(self.written.is_empty() && self.unconfirmed.is_empty()) {
            let before = self.faults.deletes_noted();
            if let Err(error) = self.deregister_written().await {
                warn!(error = %error, "early deregistration incomplete; trying again next poll");
            }
            self.settle_early_deletes(before).await;
        }
        SyncReport {
            problems: vec![format!("not registering: {reason}")],
            ..SyncReport::default()
        }
    }

    /// Deletes a record this process wrote whose value the instance no
    /// longer has: instance metadata answered that it has none (404), as
    /// after an Elastic IP is disassociated or an IPv6 address removed. The
    /// name would otherwise point at a released address, which another AWS
    /// customer may come to hold. Deleted as at shutdown: only while it
    /// holds what was written and the marker is ours; one someone else
    /// changed is left to them. Once gone (or left) the record is no longer
    /// `written`, so it is written again when the value comes back. A
    /// metadata outage never comes here: a read that fails fails the pass.
    /// Returns the problem to report.
    async fn delete_dangling(&mut self, registrar: &Registrar, slot: Slot, why: String) -> String {
        let Some(record) = self.written.get(&slot).cloned() else {
            return why;
        };
        let deleted = self
            .faults
            .retry
            .call("delete records", || {
                registrar.delete(&record, Expect::Written)
            })
            .await;
        match deleted.map_err(AgentError::from) {
            Ok(outcome) => {
                let reason = format!("{why}, which the record points at");
                log_delete(&record.zone_id, &record, &outcome, &reason);
                self.written.remove(&slot);
                // Said once, as the reason of the delete.
                self.reported.insert(slot, why.clone());
                why
            }
            // Shutdown came: deregistration deletes it.
            Err(AgentError::Interrupted) => why,
            Err(error) => {
                let problem = format!(
                    "{record} points at an address the instance no longer has ({why}) and \
                     could not be deleted: {error}"
                );
                if self.reported.get(&slot) != Some(&problem) {
                    warn!(
                        zone_id = %record.zone_id, record = %record, error = %error,
                        "{why}; cannot delete the record that points at it yet, trying again \
                         next poll"
                    );
                    self.reported.insert(slot, problem.clone());
                }
                problem
            }
        }
    }

    /// Removes a record this process wrote under a name it no longer uses,
    /// unless another configured record now writes the same set.
    async fn retire(&mut self, registrar: &Registrar, old: &DesiredRecord) {
        if self
            .written
            .values()
            .any(|record| record.key() == old.key())
        {
            return;
        }
        let deleted = self
            .faults
            .retry
            .call("delete old name", || registrar.delete(old, Expect::Written))
            .await;
        match deleted.map_err(AgentError::from) {
            Ok(outcome) => log_delete(&old.zone_id, old, &outcome, "old name"),
            Err(error) => error!(record = %old, error = %error, "could not delete the old name"),
        }
    }

    /// Whether Route 53 rejected this very batch the last time it was sent.
    fn rejected_before(&self, group: &[(Slot, &DesiredRecord)]) -> bool {
        group
            .iter()
            .all(|(slot, record)| self.rejected.get(slot) == Some(*record))
    }

    /// Logs a problem with one record the first time it is seen for what
    /// the agent wants of that record (see `sync`).
    fn note(&mut self, slot: Slot, why: String, is_error: bool) -> String {
        if self.reported.get(&slot) != Some(&why) {
            let template = self.config.records[slot.index].name.as_str();
            let kind = if slot.ptr { "PTR of " } else { "" };
            if is_error {
                error!(record = %format!("{kind}{template}"), "{why}; nothing written for this record");
            } else {
                warn!(record = %format!("{kind}{template}"), "waiting: {why}");
            }
            self.reported.insert(slot, why.clone());
        }
        why
    }

    /// Deletes every record this process wrote, each with its marker and
    /// only while both are still ours and the record holds what was written
    /// (or, for a write whose outcome is unknown, while the marker is ours:
    /// see `left_behind`). Records changed by someone else are left, with a
    /// warning, and count as done.
    pub async fn deregister_written(&mut self) -> Result<(), AgentError> {
        let Some(instance_id) = self.instance_id.clone() else {
            return Ok(());
        };
        let registrar = self.registrar(&instance_id);
        let mut failures = Vec::new();
        for (slot, record, expect) in self.left_behind() {
            let deleted = self
                .faults
                .retry
                .call("delete records", || registrar.delete(&record, expect))
                .await;
            match deleted.map_err(AgentError::from) {
                Ok(outcome) => {
                    log_delete(&record.zone_id, &record, &outcome, "shutdown");
                    self.faults.note_deleted(&record, &outcome);
                    // Gone from this record set, whether it was remembered
                    // as written, as sent, or both.
                    for kept in [&mut self.written, &mut self.unconfirmed] {
                        if kept.get(&slot).is_some_and(|r| r.key() == record.key()) {
                            kept.remove(&slot);
                        }
                    }
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

    /// The record sets this process may have left in Route 53, each with
    /// how sure its delete must be that it is ours. What Route 53 accepted
    /// goes only while it holds what was written. What was sent without an
    /// answer may or may not have landed, so it goes while its marker is
    /// this instance's; where it shares a record set with what was accepted
    /// before (an address change), that set holds one or the other, and the
    /// marker alone decides. A renamed record's old name and new one are two
    /// sets, and both are deleted.
    fn left_behind(&self) -> Vec<(Slot, DesiredRecord, Expect)> {
        let written = self
            .written
            .iter()
            .filter(|(slot, record)| {
                self.unconfirmed
                    .get(slot)
                    .is_none_or(|sent| sent.key() != record.key())
            })
            .map(|(slot, record)| (*slot, record.clone(), Expect::Written));
        let unconfirmed = self
            .unconfirmed
            .iter()
            .map(|(slot, record)| (*slot, record.clone(), Expect::Marked));
        written.chain(unconfirmed).collect()
    }

    /// Deletes the records the current facts describe, each only while its
    /// marker names this instance: the one-shot `deregister`. The live
    /// values are deleted, so a record whose value the instance no longer
    /// has is deleted too, by its record set; only one whose record set is
    /// not known (a tag missing) cannot be.
    pub async fn deregister_planned(&mut self) -> Result<(), AgentError> {
        let (facts, planned) = self.plan().await?;
        let registrar = self.registrar(facts.owner_id());
        let mut problems = Vec::new();
        for (_, entry) in planned {
            let set = match entry {
                Planned::Ready(record) => RecordSet::from(&record),
                Planned::Waiting {
                    lacks: Lacks::Value { set: Some(set) },
                    ..
                } => set,
                Planned::Waiting { why, .. } => {
                    problems.push(format!("which record set to delete is not known: {why}"));
                    continue;
                }
                Planned::Failed(why) => {
                    problems.push(why.to_string());
                    continue;
                }
            };
            let deleted = self
                .faults
                .retry
                .call("delete records", || registrar.delete_marked(&set))
                .await;
            match deleted.map_err(AgentError::from) {
                Ok(outcome) => log_delete(&set.zone_id, &set, &outcome, "deregister"),
                Err(error) => problems.push(format!("{set} ({error})")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AgentError::NotDeleted {
                count: problems.len(),
                details: problems.join("; "),
            })
        }
    }

    /// Removes records whose marker names this instance but that no
    /// configured record produces now. Refuses to guess while any record
    /// cannot be planned: its record might be one of those found. Another
    /// agent on this instance with the same `owner_prefix` would lose its
    /// records here (see [`Registrar::gc`]).
    pub async fn gc(&mut self) -> Result<Vec<String>, AgentError> {
        let (facts, planned) = self.plan().await?;
        let mut wanted = BTreeSet::new();
        let mut unknown = Vec::new();
        for (_, entry) in planned {
            match entry {
                Planned::Ready(record) => {
                    wanted.insert((
                        record.zone_id.clone(),
                        record.name.clone(),
                        record.record_type,
                        record.set_identifier.clone(),
                    ));
                }
                Planned::Waiting { why, .. } => unknown.push(why),
                Planned::Failed(why) => unknown.push(why.to_string()),
            }
        }
        if !unknown.is_empty() {
            return Err(AgentError::NotDeleted {
                count: 0,
                details: format!(
                    "garbage collection needs every configured record planned, and some are not: {}",
                    unknown.join("; ")
                ),
            });
        }
        let zones = self.zones.values().map(|zone| zone.id.clone()).collect();
        self.awaiting = Some("Route 53 had not answered a listing or delete of garbage collection");
        let removed = self.registrar(facts.owner_id()).gc(&zones, &wanted).await;
        self.awaiting = None;
        Ok(removed?)
    }

    /// Runs `work` on the agent for at most `limit`: the one-shot commands
    /// other than `register` (which must end registered, however long Route
    /// 53 throttles) and `deregister` (which names what it leaves behind)
    /// give up after `shutdown_timeout` rather than retry without end. A
    /// call that hangs logs nothing before it is given up on, so the error
    /// names what was under way, with the failure before it.
    pub async fn bounded<T>(
        &mut self,
        command: &'static str,
        limit: Duration,
        work: impl AsyncFnOnce(&mut Agent) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        match timeout(limit, work(self)).await {
            Ok(result) => result,
            Err(_) => Err(AgentError::TimedOut {
                command,
                after: humantime::format_duration(limit).to_string(),
                waiting: self.waiting_for(),
            }),
        }
    }

    /// What the agent is waiting for, for a caller that stops waiting.
    fn waiting_for(&self) -> String {
        match (self.awaiting, self.faults.retry.under_way()) {
            (Some(awaiting), _) => awaiting.to_string(),
            (None, Some(call)) => format!("Route 53: {call}"),
            (None, None) => "no call was under way".into(),
        }
    }

    /// Records written and not yet deleted, for logs and errors.
    pub fn written_names(&self) -> String {
        plan::names(self.written.values().chain(self.unconfirmed.values()))
    }
}

fn changed_record(changed: &[(Slot, DesiredRecord)], slot: Slot) -> &DesiredRecord {
    changed
        .iter()
        .find(|(s, _)| *s == slot)
        .map(|(_, record)| record)
        .unwrap_or_else(|| unreachable!("a batch only reports slots it was given"))
}

fn log_delete(zone_id: &ZoneId, record: &dyn fmt::Display, outcome: &DeleteOutcome, why: &str) {
    match outcome {
        DeleteOutcome::Deleted { .. } => {
            info!(zone_id = %zone_id, record = %record, reason = why, "record deleted")
        }
        DeleteOutcome::AlreadyGone => {
            info!(zone_id = %zone_id, record = %record, reason = why, "record already gone")
        }
        DeleteOutcome::LeftAlone(detail) => warn!(
            zone_id = %zone_id, record = %record, reason = why,
            "{detail}; left alone"
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
/// The waits between passes are raced against shutdown. A pass already
/// under way when the signal comes (a change may be in flight) is allowed to
/// go on, but only until the shutdown deadline; the records are then
/// deleted in whatever time is left.
pub async fn run(mut agent: Agent, mut shutdown: Shutdown) -> Result<(), AgentError> {
    agent.faults.retry.interrupt_on(Some(shutdown.clone()));
    // Until READY=1, a Route 53 that answers but is busy keeps systemd's
    // start timeout from running out; one that does not answer fails the
    // start in TimeoutStartSec, and Restart= tries again.
    let slack = faults::start_slack(&agent.config);
    agent.faults.retry.extend_start_while_busy(Some(slack));
    let poll = agent.config.poll_interval;
    let shutdown_timeout = agent.config.shutdown_timeout;
    let mut deadline = None;
    let mut started = false;
    let mut gc_pending = agent.config.gc_at_start;
    // The jitter comes before the first Route 53 call of any kind, so that a
    // fleet booted together spreads out its zone lookups as well as its
    // writes.
    if !agent.wait_boot_jitter().await {
        deadline = Some(shutdown.deadline(shutdown_timeout));
    }
    while deadline.is_none() {
        let step = agent.step(started, &mut gc_pending);
        tokio::pin!(step);
        let outcome = tokio::select! {
            outcome = &mut step => outcome,
            reason = shutdown.requested() => {
                info!(%reason, "stopping once the pass under way ends");
                let until = shutdown.deadline(shutdown_timeout);
                deadline = Some(until);
                timeout_at(until, step).await.unwrap_or(Ok(started))
            }
        };
        match outcome {
            Ok(now_started) => started = now_started,
            Err(error) => return Err(error),
        }
        if deadline.is_none() && wait_or_shutdown(poll, &mut shutdown).await {
            deadline = Some(shutdown.deadline(shutdown_timeout));
        }
    }

    // From here on the deadline bounds every retry, not shutdown.
    notify::stopping("deregistering");
    agent.faults.retry.interrupt_on(None);
    agent.faults.retry.extend_start_while_busy(None);
    let until = deadline.unwrap_or_else(|| shutdown.deadline(shutdown_timeout));
    let began = Instant::now();
    let result = match timeout_at(until, agent.deregister_written()).await {
        Ok(result) => {
            info!(
                elapsed_ms = began.elapsed().as_millis() as u64,
                "deregistration finished"
            );
            result
        }
        Err(_) => Err(AgentError::LeftBehind {
            timeout: humantime::format_duration(shutdown_timeout).to_string(),
            records: agent.written_names(),
        }),
    };
    agent.drain(until).await;
    result
}

impl Agent {
    /// One step of the daemon: until the zones are found, look them up; then
    /// one pass. Returns whether the zones are found. Errors are returned only when no retry
    /// can help.
    async fn step(&mut self, started: bool, gc_pending: &mut bool) -> Result<bool, AgentError> {
        if !started {
            match self.resolve_zones().await {
                Ok(()) => {}
                Err(AgentError::Interrupted) => return Ok(false),
                Err(error) if is_final(&error) => return Err(error),
                Err(error) => {
                    warn!(error = %error, "cannot look up hosted zones yet; retrying");
                    return Ok(false);
                }
            }
            info!(records = self.config.records.len(), "agent running");
        }
        match self.sync().await {
            Ok(report) => {
                self.after_pass(&report).await;
                if *gc_pending && report.complete {
                    *gc_pending = false;
                    self.collect_at_start(&report).await;
                }
            }
            Err(error) => warn!(error = %error, "pass failed; keeping the records as they are"),
        }
        Ok(true)
    }

    /// The start-up garbage collection, decided once, after the first pass
    /// that planned every record. Only an instance that ran the agent before
    /// can have stale records: the state directory says so, or one of its
    /// records was still live with its marker. A fresh instance (a fleet
    /// boot) thus never lists the whole zone.
    async fn collect_at_start(&mut self, first: &SyncReport) {
        let owner = self.instance_id.clone().unwrap_or_default();
        let ran_before = self.state.ran_before(&owner);
        self.state.remember(&owner);
        if first.already_ours == 0 && !ran_before {
            debug!("no sign of an earlier run on this instance; nothing to collect");
            return;
        }
        match self.gc().await {
            Ok(removed) => debug!(removed = removed.len(), "garbage collection done"),
            Err(error) => warn!(error = %error, "garbage collection failed"),
        }
    }
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
