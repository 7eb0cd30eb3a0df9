//! Writing and deleting this instance's records safely: read what is live,
//! let [`crate::owner`] decide, then send one change batch per name with
//! each record and its ownership marker together.
//!
//! A record this process has not written yet is first simply CREATEd with its
//! marker: Route 53 refuses a CREATE over anything live, so this overwrites
//! nothing, and on a fresh instance it is the only call per name. When it is
//! refused, and for every later write, the agent reads first: a record that
//! is absent is CREATEd, not UPSERTed, so that when two instances race for a
//! name the second one's batch fails and the next pass sees the first one's
//! marker. A live record is UPSERTed with its marker replaced as it was
//! read (DELETE with the exact values, then CREATE), so the batch fails if
//! anyone touched the marker in between. Deletes carry
//! the exact live values; when the zone changes between the read and the
//! delete, Route 53 rejects the batch and one more read says what happened.

use std::collections::BTreeSet;

use tracing::{debug, info, warn};

use crate::config::{RecordType, ZoneId};
use crate::dns::DnsName;
use crate::owner::{self, Decision, LiveSet, Marker};
use crate::plan::{DesiredRecord, Policy, RecordSet};
use crate::route53::{Route53, Route53Error, Write};

/// What a batch did with each record in it.
#[derive(Debug, Default)]
pub struct BatchOutcome<T> {
    /// Written, with the change id.
    pub written: Vec<T>,
    /// Left alone, with the reason: the name belongs to someone else, or the
    /// record would clash with what is live.
    pub refused: Vec<(T, String)>,
    pub change_id: Option<String>,
    /// How many of the records were live already with this instance's
    /// marker: left from an earlier run of the agent on this instance.
    pub already_ours: usize,
}

/// What a safe delete found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Deleted by the change with this id.
    Deleted { change_id: String },
    /// Nothing was there: as good as deleted.
    AlreadyGone,
    /// Not ours any more, or changed since it was written: left alone (and,
    /// when changed, no longer marked as ours).
    LeftAlone(String),
}

impl std::fmt::Display for DeleteOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeleteOutcome::Deleted { change_id } => write!(f, "deleted (change {change_id})"),
            DeleteOutcome::AlreadyGone => f.write_str("already gone"),
            DeleteOutcome::LeftAlone(why) => write!(f, "left alone: {why}"),
        }
    }
}

/// How sure a delete must be that the record is ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Our marker, and exactly the values this process wrote.
    Written,
    /// Our marker is enough: the caller does not know what was written (a
    /// one-shot `deregister`, or garbage collection after a hard stop).
    Marked,
}

/// Writes and deletes records for one instance.
#[derive(Clone, Debug)]
pub struct Registrar {
    route53: Route53,
    owner_prefix: String,
    instance_id: String,
}

/// A record that the marker of this instance names, found by [`Registrar::gc`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkedRecord {
    pub zone_id: ZoneId,
    pub name: DnsName,
    pub marker: Marker,
}

impl Registrar {
    pub fn new(route53: Route53, owner_prefix: &str, instance_id: &str) -> Self {
        Registrar {
            route53,
            owner_prefix: owner_prefix.to_string(),
            instance_id: instance_id.to_string(),
        }
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Writes `records`, which share one zone and name, in one change batch,
    /// each only where [`owner::decide`] allows it. `previous` gives, per
    /// record, what this process wrote under the same key before, if it did:
    /// a live record that holds neither that nor the record was changed by
    /// someone else.
    pub async fn register<T: Clone>(
        &self,
        records: &[(T, &DesiredRecord, Option<&DesiredRecord>)],
    ) -> Result<BatchOutcome<T>, Route53Error> {
        let mut outcome = BatchOutcome {
            written: Vec::new(),
            refused: Vec::new(),
            change_id: None,
            already_ours: 0,
        };
        let Some((_, first, _)) = records.first() else {
            return Ok(outcome);
        };
        if records
            .iter()
            .all(|(_, record, previous)| previous.is_none() && optimistic(record))
        {
            match self.create(records).await {
                Ok(Some(created)) => return Ok(created),
                Ok(None) => {}
                Err(error) if error.is_invalid_change_batch() => {
                    debug!(record = %first.name, "the name is taken; reading what is there");
                }
                Err(error) => return Err(error),
            }
        }
        let sets = self.route53.sets_at(&first.zone_id, &first.name).await?;
        let mut accepted = Vec::new();
        for (tag, record, previous) in records {
            match self.check(record, *previous, &sets).await? {
                Ok(allowed) => {
                    if let Decision::TakeOver { from } = &allowed.decision {
                        warn!(record = %record, from = %from, "taking the record over");
                    }
                    outcome.already_ours += usize::from(allowed.decision == Decision::Update);
                    accepted.push((tag.clone(), *record, allowed));
                }
                Err(why) => outcome.refused.push((tag.clone(), why)),
            }
        }
        if accepted.is_empty() {
            return Ok(outcome);
        }
        let mut writes = Vec::new();
        for (_, record, allowed) in &accepted {
            let live = sets.iter().find(|set| set.is_set_of(record));
            writes.extend(record_writes(record, live, allowed, &self.instance_id));
        }
        outcome.change_id = Some(self.route53.apply(&first.zone_id, &writes).await?);
        outcome.written = accepted.into_iter().map(|(tag, _, _)| tag).collect();
        Ok(outcome)
    }

    /// The optimistic first write: CREATE every record with its marker,
    /// without reading first. Route 53 refuses a CREATE over anything live
    /// with `InvalidChangeBatch`, and a batch is atomic, so nothing is
    /// overwritten; the caller then reads and decides. On a fresh instance
    /// this saves one call per name, which is what a fleet boot spends its
    /// quota on. Only for simple records that are not CNAMEs (see
    /// [`optimistic`]). `Ok(None)` when a marker has no valid name (the
    /// careful path reports it).
    async fn create<T: Clone>(
        &self,
        records: &[(T, &DesiredRecord, Option<&DesiredRecord>)],
    ) -> Result<Option<BatchOutcome<T>>, Route53Error> {
        let mut markers = Vec::new();
        for (_, record, _) in records {
            match owner::marker_name(&self.owner_prefix, record) {
                Ok(name) => markers.push(name),
                Err(_) => return Ok(None),
            }
        }
        let mut writes = Vec::new();
        for ((_, record, _), marker_name) in records.iter().zip(&markers) {
            writes.push(Write::Create(record));
            writes.push(Write::Txt {
                name: marker_name,
                values: vec![Marker::for_record(&self.instance_id, record).txt_value()],
                ttl: record.ttl,
            });
        }
        let zone_id = &records[0].1.zone_id;
        let change_id = self.route53.apply(zone_id, &writes).await?;
        Ok(Some(BatchOutcome {
            written: records.iter().map(|(tag, _, _)| tag.clone()).collect(),
            refused: Vec::new(),
            change_id: Some(change_id),
            already_ours: 0,
        }))
    }

    /// What [`Registrar::register`] would do with `record` now, read but not
    /// written: `Ok` with how it would write it, or `Err` with why it would
    /// leave it alone. For `plan`.
    pub async fn preview(
        &self,
        record: &DesiredRecord,
    ) -> Result<Result<String, String>, Route53Error> {
        let sets = self.route53.sets_at(&record.zone_id, &record.name).await?;
        let unchanged = sets.iter().any(|s| s.is_set_of(record) && s.holds(record));
        Ok(match self.check(record, None, &sets).await? {
            Ok(allowed) => match allowed.decision {
                Decision::Create => Ok("create".into()),
                Decision::Update if unchanged => Ok("unchanged".into()),
                Decision::Update => Ok("update (this instance's already)".into()),
                Decision::TakeOver { from } => Ok(format!("take over from {from}")),
                Decision::Refuse(why) => Err(why),
            },
            Err(why) => Err(why),
        })
    }

    /// Whether `record` may be written; on yes, how (never
    /// [`Decision::Refuse`]) and what was read for it.
    async fn check(
        &self,
        record: &DesiredRecord,
        previous: Option<&DesiredRecord>,
        sets: &[LiveSet],
    ) -> Result<Result<Allowed, String>, Route53Error> {
        let marker_name = match owner::marker_name(&self.owner_prefix, record) {
            Ok(name) => name,
            Err(error) => return Ok(Err(format!("{record}: no name for its marker: {error}"))),
        };
        let live = sets.iter().find(|set| set.is_set_of(record));
        let others: Vec<LiveSet> = sets
            .iter()
            .filter(|set| !set.is_set_of(record))
            .cloned()
            .collect();
        if let Some(why) = owner::conflict(record, &others) {
            return Ok(Err(why));
        }
        // A live set that holds `record` already is this process's own
        // write whose answer was lost (a timeout, a dropped connection): the
        // retry goes on as an update, not as someone else's change.
        if let (Some(live), Some(previous)) = (live, previous)
            && previous.key() == record.key()
            && !live.holds(previous)
            && !live.holds(record)
        {
            return Ok(Err(format!(
                "{record} was changed by someone else since it was written (now {live}); left \
                 alone"
            )));
        }
        let marker = match live {
            Some(_) => self.marker_set(&record.zone_id, &marker_name).await?,
            None => None,
        };
        let marker_values = marker.as_ref().map_or(&[][..], |set| &set.values[..]);
        let owner = owner::owner(live, marker_values, &self.instance_id, record);
        Ok(match owner::decide(&owner, record) {
            Decision::Refuse(why) => Err(why),
            decision => Ok(Allowed {
                marker_name,
                decision,
                marker,
            }),
        })
    }

    async fn marker_set(
        &self,
        zone_id: &ZoneId,
        marker_name: &DnsName,
    ) -> Result<Option<LiveSet>, Route53Error> {
        let sets = self.route53.sets_at(zone_id, marker_name).await?;
        Ok(sets
            .into_iter()
            .find(|set| set.is(RecordType::Txt) && set.set_identifier.is_none()))
    }

    /// Deletes `record` and its marker in one batch, only while both are
    /// still ours (see [`Expect`]). A record that is gone counts as deleted;
    /// its marker, if ours, goes too. A record someone else changed is left,
    /// and only our marker beside it goes.
    pub async fn delete(
        &self,
        record: &DesiredRecord,
        expect: Expect,
    ) -> Result<DeleteOutcome, Route53Error> {
        match self.try_delete(record, expect).await {
            Err(error) if error.is_invalid_change_batch() => {
                // The zone changed between our read and our delete: read
                // again, once, and act on what is there now.
                self.try_delete(record, expect).await
            }
            other => other,
        }
    }

    /// Deletes the record set `set` names, with its marker, while the marker
    /// is this instance's, whatever values are live: for a record whose
    /// value the instance no longer has, which only the marker can tell
    /// apart from someone else's.
    pub async fn delete_marked(&self, set: &RecordSet) -> Result<DeleteOutcome, Route53Error> {
        // A stand-in for the record, never written: with `Expect::Marked`
        // the delete reads the values it needs from what is live.
        let record = DesiredRecord {
            zone_id: set.zone_id.clone(),
            name: set.name.clone(),
            record_type: set.record_type,
            set_identifier: set.set_identifier.clone(),
            policy: set.policy,
            ttl: set.ttl,
            values: Vec::new(),
            takeover: false,
        };
        self.delete(&record, Expect::Marked).await
    }

    async fn try_delete(
        &self,
        record: &DesiredRecord,
        expect: Expect,
    ) -> Result<DeleteOutcome, Route53Error> {
        let marker_name = owner::marker_name(&self.owner_prefix, record).map_err(|error| {
            Route53Error::new(
                "ChangeResourceRecordSets",
                &record.zone_id,
                format!("{record}: no name for its marker: {error}"),
            )
        })?;
        let sets = self.route53.sets_at(&record.zone_id, &record.name).await?;
        let live = sets.into_iter().find(|set| set.is_set_of(record));
        let marker = self.marker_set(&record.zone_id, &marker_name).await?;
        let owned_by = |live: &LiveSet| {
            let values = marker.as_ref().map_or(&[][..], |set| &set.values[..]);
            owner::owner(Some(live), values, &self.instance_id, record)
        };
        let ours = marker
            .clone()
            .filter(|set| owned_by(set) == owner::Owner::Us);

        let mut writes = Vec::new();
        let outcome = match &live {
            None => DeleteOutcome::AlreadyGone,
            Some(live) if ours.is_none() => {
                let whose = match owned_by(live) {
                    owner::Owner::Instance(other) => format!("its marker names instance {other}"),
                    _ => "no marker of ours beside it: a person's or another tool's".to_string(),
                };
                return Ok(DeleteOutcome::LeftAlone(format!(
                    "{live} is not marked as this instance's ({whose})"
                )));
            }
            Some(live)
                if !live.could_be_ours() || (expect == Expect::Written && !live.holds(record)) =>
            {
                let changed = format!(
                    "{record} was changed by someone else since it was written (now {live})"
                );
                return self.disown(&record.zone_id, ours.as_ref(), changed).await;
            }
            Some(live) => {
                writes.push(Write::Delete(live));
                DeleteOutcome::Deleted {
                    change_id: String::new(),
                }
            }
        };
        if let Some(marker) = &ours {
            writes.push(Write::Delete(marker));
        }
        if writes.is_empty() {
            return Ok(outcome);
        }
        let change_id = self.route53.apply(&record.zone_id, &writes).await?;
        Ok(match outcome {
            DeleteOutcome::Deleted { .. } => DeleteOutcome::Deleted { change_id },
            other => other,
        })
    }

    /// Leaves a record someone else changed, and deletes this instance's
    /// marker beside it (its exact live values, in a batch of its own): the
    /// record is no longer marked as ours, so a later `deregister`, `gc` or
    /// restart of this instance leaves it alone too.
    async fn disown(
        &self,
        zone_id: &ZoneId,
        marker: Option<&LiveSet>,
        changed: String,
    ) -> Result<DeleteOutcome, Route53Error> {
        let Some(marker) = marker else {
            return Ok(DeleteOutcome::LeftAlone(changed));
        };
        self.route53
            .apply(zone_id, &[Write::Delete(marker)])
            .await?;
        Ok(DeleteOutcome::LeftAlone(format!(
            "{changed}; this instance's marker {} is deleted, so the record counts as someone \
             else's from now on",
            marker.name
        )))
    }

    /// Finds the records in `zone_id` whose marker names this instance.
    pub async fn marked(&self, zone_id: &ZoneId) -> Result<Vec<MarkedRecord>, Route53Error> {
        let sets = self.route53.all_sets(zone_id).await?;
        let mut found = Vec::new();
        for set in sets.iter().filter(|set| set.is(RecordType::Txt)) {
            let Some(name) = owner::marked_name(&self.owner_prefix, &set.name) else {
                continue;
            };
            for marker in set.values.iter().filter_map(|value| Marker::parse(value)) {
                if marker.instance_id == self.instance_id {
                    found.push(MarkedRecord {
                        zone_id: zone_id.clone(),
                        name: name.clone(),
                        marker,
                    });
                }
            }
        }
        Ok(found)
    }

    /// Deletes every record in `zones` that this instance's marker names but
    /// that `wanted` (the keys of every record the configuration produces
    /// now) does not hold. Returns the records deleted.
    ///
    /// Known limit: a marker names the instance, not the configuration. A
    /// second agent on this instance, with another configuration file and
    /// the same `owner_prefix`, writes markers that read as ours, and its
    /// records are collected here because our configuration does not
    /// produce them. Each agent on one instance needs its own
    /// `owner_prefix`; nothing can check that from here.
    pub async fn gc(
        &self,
        zones: &BTreeSet<ZoneId>,
        wanted: &BTreeSet<(ZoneId, DnsName, RecordType, Option<String>)>,
    ) -> Result<Vec<String>, Route53Error> {
        let mut removed = Vec::new();
        for zone_id in zones {
            for marked in self.marked(zone_id).await? {
                let key = (
                    marked.zone_id.clone(),
                    marked.name.clone(),
                    marked.marker.record_type,
                    marked.marker.set_identifier.clone(),
                );
                if wanted.contains(&key) {
                    continue;
                }
                let stale = self.stale_record(&marked).await?;
                let outcome = self.delete(&stale, Expect::Marked).await?;
                info!(record = %stale, outcome = %outcome, "stale record of this instance collected");
                if matches!(outcome, DeleteOutcome::Deleted { .. }) {
                    removed.push(stale.to_string());
                }
            }
        }
        Ok(removed)
    }

    /// The record a marker names, as it is live (or a stand-in with the
    /// marker's key, when only the marker is left).
    async fn stale_record(&self, marked: &MarkedRecord) -> Result<DesiredRecord, Route53Error> {
        let sets = self.route53.sets_at(&marked.zone_id, &marked.name).await?;
        let live = sets.into_iter().find(|set| {
            set.is(marked.marker.record_type) && set.set_identifier == marked.marker.set_identifier
        });
        Ok(DesiredRecord {
            zone_id: marked.zone_id.clone(),
            name: marked.name.clone(),
            record_type: marked.marker.record_type,
            set_identifier: marked.marker.set_identifier.clone(),
            policy: live.as_ref().map_or(Policy::Simple, |set| set.policy),
            ttl: live
                .as_ref()
                .and_then(|set| set.ttl)
                .and_then(|ttl| u32::try_from(ttl).ok())
                .unwrap_or_default(),
            values: live.map(|set| set.values).unwrap_or_default(),
            takeover: false,
        })
    }
}

/// A record [`Registrar::check`] allows to be written, and what was read
/// for it.
#[derive(Debug)]
struct Allowed {
    marker_name: DnsName,
    /// How: never [`Decision::Refuse`].
    decision: Decision,
    /// The TXT set at the marker's name, read when the record was live.
    marker: Option<LiveSet>,
}

/// The changes that write `record` and the marker of `instance_id` beside
/// it, given what was read: `live` at the record's key, and `allowed`.
///
/// A record that is absent is CREATEd: if another instance wins the race
/// for the name, the batch fails. A live record is UPSERTed, and the batch
/// is made conditional on the marker read: that marker is DELETEd with its
/// exact values and the new one CREATEd (only CREATEd when none was read).
/// If anyone touched the marker in between (another instance took the
/// name, a person removed it), Route 53 rejects the whole batch, nothing is
/// overwritten, and the next pass reads again.
fn record_writes<'a>(
    record: &'a DesiredRecord,
    live: Option<&'a LiveSet>,
    allowed: &'a Allowed,
    instance_id: &str,
) -> Vec<Write<'a>> {
    let name = &allowed.marker_name;
    let values = vec![Marker::for_record(instance_id, record).txt_value()];
    let ttl = record.ttl;
    let Some(live) = live else {
        return vec![Write::Create(record), Write::Txt { name, values, ttl }];
    };
    // An operator may attach a health check to this instance's own set (in
    // a multivalue fleet, say): an update keeps it. One on a set taken from
    // someone else watches their endpoint, not ours.
    let health_check_id = live
        .health_check_id
        .as_deref()
        .filter(|_| allowed.decision == Decision::Update);
    let mut writes = vec![Write::Upsert {
        record,
        health_check_id,
    }];
    if let Some(read) = &allowed.marker {
        writes.push(Write::Delete(read));
    }
    writes.push(Write::CreateTxt { name, values, ttl });
    writes
}

/// Whether a first write may skip the read. A record with a set identifier
/// shares its name with other sets, and a CNAME shares it with nothing: for
/// those a clash of routing policies or types is plausible, and the agent
/// reads first so that it reports the clash instead of sending a batch
/// Route 53 would reject. For a simple record the usual refusal is "already
/// there" (a restart, or another instance's record), after which the agent
/// reads. Known cost: if someone put a CNAME, or sets of another policy, at
/// the instance's own simple name, one batch is refused before the clash is
/// reported.
fn optimistic(record: &DesiredRecord) -> bool {
    record.policy == Policy::Simple && record.record_type != RecordType::Cname
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DesiredRecord {
        DesiredRecord {
            zone_id: ZoneId::parse("ZA").unwrap(),
            name: DnsName::parse("fleet.example.com").unwrap(),
            record_type: RecordType::A,
            set_identifier: Some("i-me".into()),
            policy: Policy::MultiValue,
            ttl: 60,
            values: vec!["10.0.0.77".into()],
            takeover: false,
        }
    }

    fn live(name: &str, record_type: &str, values: &[&str]) -> LiveSet {
        LiveSet {
            name: DnsName::parse(name).unwrap(),
            record_type: record_type.into(),
            set_identifier: None,
            policy: Policy::Simple,
            ttl: Some(60),
            values: values.iter().map(|value| value.to_string()).collect(),
            is_alias: false,
            health_check_id: None,
        }
    }

    fn allowed(decision: Decision, marker: Option<LiveSet>) -> Allowed {
        Allowed {
            marker_name: owner::marker_name("_route53-agent", &record()).unwrap(),
            decision,
            marker,
        }
    }

    fn ours() -> String {
        Marker::for_record("i-me", &record()).txt_value()
    }

    #[test]
    fn an_absent_record_is_created_with_its_marker() {
        let record = record();
        let allowed = allowed(Decision::Create, None);
        let writes = record_writes(&record, None, &allowed, "i-me");
        assert!(
            matches!(
                writes.as_slice(),
                [Write::Create(created), Write::Txt { name, values, ttl: 60 }]
                    if *created == &record && *name == &allowed.marker_name
                        && *values == [ours()]
            ),
            "{writes:?}"
        );
    }

    #[test]
    fn an_update_replaces_the_marker_as_read_so_that_a_race_fails_the_batch() {
        let record = record();
        let mut there = live("fleet.example.com", "A", &["10.0.0.10"]);
        there.health_check_id = Some("hc-1".into());
        let read = live("_route53-agent.a-i-me.fleet.example.com", "TXT", &[&ours()]);
        let allowed = allowed(Decision::Update, Some(read.clone()));
        let writes = record_writes(&record, Some(&there), &allowed, "i-me");
        assert!(
            matches!(
                writes.as_slice(),
                [
                    Write::Upsert { record: upserted, health_check_id: Some("hc-1") },
                    Write::Delete(deleted),
                    Write::CreateTxt { name, values, ttl: 60 },
                ] if *upserted == &record && **deleted == read
                    && *name == &allowed.marker_name && *values == [ours()]
            ),
            "{writes:?}"
        );
    }

    #[test]
    fn a_takeover_moves_the_marker_as_read_and_drops_their_health_check() {
        let record = record();
        let mut there = live("fleet.example.com", "A", &["10.0.0.20"]);
        there.health_check_id = Some("hc-theirs".into());
        let theirs = Marker::for_record("i-other", &record).txt_value();
        let read = live("_route53-agent.a-i-me.fleet.example.com", "TXT", &[&theirs]);
        let taking = Decision::TakeOver {
            from: "instance i-other".into(),
        };
        let allowed = allowed(taking.clone(), Some(read.clone()));
        let writes = record_writes(&record, Some(&there), &allowed, "i-me");
        assert!(
            matches!(
                writes.as_slice(),
                [
                    Write::Upsert { health_check_id: None, .. },
                    Write::Delete(deleted),
                    Write::CreateTxt { values, .. },
                ] if **deleted == read && *values == [ours()]
            ),
            "{writes:?}"
        );

        // Nothing at the marker's name (a person's record): the marker is
        // CREATEd, so the batch fails if one appears in between.
        let allowed = self::allowed(taking, None);
        let writes = record_writes(&record, Some(&there), &allowed, "i-me");
        assert!(
            matches!(
                writes.as_slice(),
                [Write::Upsert { .. }, Write::CreateTxt { .. }]
            ),
            "{writes:?}"
        );
    }
}
