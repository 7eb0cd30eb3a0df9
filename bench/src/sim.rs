//! A fleet booting together against Route 53's token buckets, in virtual
//! time. Every wait an instance makes is decided by the agent's own code:
//! [`BootJitter::delay`] before its first call, [`Backoff::delay`] after a
//! throttled one, each drawn from the instance's own seeded generator in the
//! order the agent draws them.
//!
//! What one instance does mirrors `route53-agent run` (and `register`) with
//! one simple A record in a hosted zone given by id, on a fresh boot:
//!
//! 1. the boot jitter, before any Route 53 call (`run`, before `step`);
//! 2. GetHostedZone, retried until it passes (`resolve_zones`);
//! 3. ChangeResourceRecordSets: a CREATE of the record and its marker with
//!    no read first (`Registrar::register`, its optimistic first write). A
//!    throttled write runs `register` again after a backoff, which sends the
//!    same CREATE (`Retry::call` around `register`).
//!
//! Left out: the IMDS reads between steps 2 and 3 (a few milliseconds on
//! the instance), and a CREATE refused because the name is taken, which
//! makes the agent read before it writes again. Every instance here has a
//! name of its own, so no CREATE is refused; the start-up garbage
//! collection does not run on a fresh instance.
//!
//! [`Sequence::ReadBeforeWrite`] is the agent before commit 3d43e49 (zone
//! lookup, jitter, then a ListResourceRecordSets before every write), kept as
//! a labelled what-if to show what the change saved; the agent no longer
//! does it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use route53_agent::retry::{Backoff, BootJitter};
use route53_agent_testkit::TokenBucket;

/// The Route 53 actions an instance calls at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    GetHostedZone,
    ListRecords,
    ChangeRecords,
}

impl Call {
    const ALL: [Call; 3] = [Call::GetHostedZone, Call::ListRecords, Call::ChangeRecords];
}

/// The calls an instance makes at boot, and where its jitter falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sequence {
    /// As the agent does it: jitter, GetHostedZone, one CREATE.
    JitterZoneCreate,
    /// The agent before 3d43e49, a what-if: GetHostedZone, jitter, then a
    /// write that lists the name before it changes it; a throttled write
    /// starts again from the list.
    ReadBeforeWrite,
}

impl Sequence {
    /// The fewest calls an instance makes: one of each action it uses.
    pub fn least_calls(self) -> u32 {
        match self {
            Sequence::JitterZoneCreate => 2,
            Sequence::ReadBeforeWrite => 3,
        }
    }

    /// The first call of the write, once the zone is found.
    fn write_starts_with(self) -> Call {
        match self {
            Sequence::JitterZoneCreate => Call::ChangeRecords,
            Sequence::ReadBeforeWrite => Call::ListRecords,
        }
    }
}

/// Route 53's limits as a token bucket per action, or one for the account.
#[derive(Clone, Copy, Debug)]
pub struct Quota {
    pub rate: f64,
    pub burst: u32,
    /// One bucket for every action together, instead of one per action.
    pub shared: bool,
}

/// One simulated boot.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub instances: u32,
    pub quota: Quota,
    pub backoff: Backoff,
    pub boot_jitter: Duration,
    pub sequence: Sequence,
    /// Instances start at uniformly random times within this window.
    pub boot_spread: Duration,
    /// From a request leaving the instance to its answer arriving.
    pub round_trip: Duration,
    pub seed: u64,
}

/// What a simulated boot came to.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// When each instance's record was written, sorted, in seconds.
    pub registered: Vec<f64>,
    /// Instances still unregistered when the simulation gave up waiting.
    pub unregistered: u32,
    pub calls: u64,
    /// Calls of each action, in the order of [`Call`].
    pub calls_by_action: [u64; 3],
    pub throttled: u64,
    /// The most calls one instance made.
    pub most_calls: u32,
}

impl Outcome {
    /// When the last record was written.
    pub fn converged(&self) -> f64 {
        self.registered.last().copied().unwrap_or(f64::INFINITY)
    }

    pub fn calls_per_instance(&self) -> f64 {
        self.calls as f64 / (self.registered.len() as f64 + f64::from(self.unregistered))
    }

    /// How many calls of `call` were made.
    pub fn calls_of(&self, call: Call) -> u64 {
        self.calls_by_action[call as usize]
    }
}

impl Scenario {
    /// The least time in which the quota admits every call the fleet needs:
    /// one of each action per instance.
    pub fn minimum_time(&self) -> f64 {
        let calls_per_bucket = if self.quota.shared {
            self.sequence.least_calls()
        } else {
            1
        };
        TokenBucket::new(self.quota.rate, self.quota.burst)
            .minimum_time(self.instances * calls_per_bucket)
    }

    pub fn run(&self) -> Outcome {
        Simulation::new(self).run()
    }
}

struct Instance {
    rng: SmallRng,
    /// Failed attempts of the current `Retry::call`.
    retry: u32,
    calls: u32,
}

struct Simulation<'a> {
    scenario: &'a Scenario,
    buckets: Vec<TokenBucket>,
    instances: Vec<Instance>,
    /// Pending calls: (time in nanoseconds, sequence number, instance,
    /// action as an index into [`Call::ALL`]).
    events: BinaryHeap<Reverse<(u128, u64, usize, usize)>>,
    sequence: u64,
    outcome: Outcome,
}

/// No boot in any scenario here should take longer than this.
const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);

impl<'a> Simulation<'a> {
    fn new(scenario: &'a Scenario) -> Self {
        let quota = scenario.quota;
        let bucket_count = if quota.shared { 1 } else { Call::ALL.len() };
        let mut boot_rng = SmallRng::seed_from_u64(scenario.seed);
        let mut simulation = Simulation {
            scenario,
            buckets: vec![TokenBucket::new(quota.rate, quota.burst); bucket_count],
            instances: Vec::new(),
            events: BinaryHeap::new(),
            sequence: 0,
            outcome: Outcome {
                registered: Vec::new(),
                unregistered: 0,
                calls: 0,
                calls_by_action: [0; 3],
                throttled: 0,
                most_calls: 0,
            },
        };
        for index in 0..scenario.instances as usize {
            let spread = scenario.boot_spread.as_secs_f64();
            let boots_at = Duration::from_secs_f64(boot_rng.random::<f64>() * spread);
            let mut instance = Instance {
                rng: SmallRng::seed_from_u64(scenario.seed.wrapping_mul(1_000_003) + index as u64),
                retry: 0,
                calls: 0,
            };
            let first_call_at = match scenario.sequence {
                Sequence::JitterZoneCreate => boots_at + instance.jitter(scenario),
                Sequence::ReadBeforeWrite => boots_at,
            };
            simulation.instances.push(instance);
            simulation.schedule(first_call_at, index, Call::GetHostedZone);
        }
        simulation
    }

    fn schedule(&mut self, at: Duration, instance: usize, call: Call) {
        self.sequence += 1;
        self.events.push(Reverse((
            at.as_nanos(),
            self.sequence,
            instance,
            call as usize,
        )));
    }

    fn run(mut self) -> Outcome {
        while let Some(Reverse((nanos, _, index, call))) = self.events.pop() {
            let now = Duration::from_nanos(nanos as u64);
            if now > GIVE_UP_AFTER {
                self.outcome.unregistered += 1 + self.events.len() as u32;
                break;
            }
            self.send(now, index, Call::ALL[call]);
        }
        self.outcome
            .registered
            .sort_by(|a, b| a.partial_cmp(b).expect("times are finite"));
        self.outcome.most_calls = self.instances.iter().map(|i| i.calls).max().unwrap_or(0);
        self.outcome
    }

    /// One call reaching Route 53 at `now`, and what the instance does next.
    fn send(&mut self, now: Duration, index: usize, call: Call) {
        let bucket = if self.scenario.quota.shared {
            0
        } else {
            call as usize
        };
        let passed = self.buckets[bucket].take(now.as_secs_f64());
        self.outcome.calls += 1;
        self.outcome.calls_by_action[call as usize] += 1;
        let scenario = self.scenario;
        let sequence = scenario.sequence;
        let instance = &mut self.instances[index];
        instance.calls += 1;
        let answered = now + scenario.round_trip;
        if !passed {
            self.outcome.throttled += 1;
            let delay = scenario.backoff.delay(instance.retry, &mut instance.rng);
            instance.retry = instance.retry.saturating_add(1);
            // A throttled write runs the whole of `register` again.
            let again = match call {
                Call::GetHostedZone => Call::GetHostedZone,
                Call::ListRecords | Call::ChangeRecords => sequence.write_starts_with(),
            };
            return self.schedule(answered + delay, index, again);
        }
        match call {
            Call::GetHostedZone => {
                // The write is a `Retry::call` of its own: its count starts
                // afresh.
                instance.retry = 0;
                let jitter = match sequence {
                    Sequence::JitterZoneCreate => Duration::ZERO,
                    Sequence::ReadBeforeWrite => instance.jitter(scenario),
                };
                self.schedule(answered + jitter, index, sequence.write_starts_with());
            }
            Call::ListRecords => self.schedule(answered, index, Call::ChangeRecords),
            Call::ChangeRecords => self.outcome.registered.push(answered.as_secs_f64()),
        }
    }
}

impl Instance {
    fn jitter(&mut self, scenario: &Scenario) -> Duration {
        BootJitter {
            max: scenario.boot_jitter,
        }
        .delay(&mut self.rng)
    }
}

/// The median of `values`, which must not be empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(instances: u32, boot_jitter: Duration) -> Scenario {
        Scenario {
            instances,
            quota: Quota {
                rate: 10.0,
                burst: 50,
                shared: false,
            },
            backoff: Backoff::default(),
            boot_jitter,
            sequence: Sequence::JitterZoneCreate,
            boot_spread: Duration::from_secs(1),
            round_trip: Duration::from_millis(50),
            seed: 1,
        }
    }

    #[test]
    fn a_fleet_within_the_burst_makes_two_calls_each_and_never_lists() {
        let outcome = scenario(40, Duration::ZERO).run();
        assert_eq!(outcome.registered.len(), 40);
        assert_eq!(outcome.calls, 80);
        assert_eq!(outcome.calls_of(Call::GetHostedZone), 40);
        assert_eq!(outcome.calls_of(Call::ListRecords), 0);
        assert_eq!(outcome.throttled, 0);
        assert!(outcome.converged() < 1.2, "{}", outcome.converged());
    }

    #[test]
    fn the_read_before_write_what_if_makes_three_calls_each() {
        let outcome = Scenario {
            sequence: Sequence::ReadBeforeWrite,
            ..scenario(40, Duration::ZERO)
        }
        .run();
        assert_eq!(outcome.calls, 120);
        assert_eq!(outcome.calls_of(Call::ListRecords), 40);
    }

    #[test]
    fn a_throttled_create_is_sent_again_without_a_read() {
        // One bucket for every action, so that the CREATEs are throttled
        // too, not only the zone lookups before them.
        let outcome = Scenario {
            quota: Quota {
                rate: 10.0,
                burst: 50,
                shared: true,
            },
            ..scenario(300, Duration::ZERO)
        }
        .run();
        assert!(outcome.throttled > 0);
        assert_eq!(outcome.calls_of(Call::ListRecords), 0);
        assert!(outcome.calls_of(Call::ChangeRecords) > 300);
    }

    #[test]
    fn a_jitter_as_long_as_the_quota_needs_spreads_the_zone_lookups_too() {
        // 1,000 instances at 10/s need about 100 s of quota; with the
        // jitter before the zone lookup, hardly any call is throttled.
        let outcome = scenario(1000, Duration::from_secs(100)).run();
        assert_eq!(outcome.unregistered, 0);
        let calls = outcome.calls_per_instance();
        assert!(calls < 2.5, "{calls} calls per instance");
    }

    #[test]
    fn a_large_fleet_registers_every_instance_no_sooner_than_the_quota_allows() {
        let scenario = scenario(300, Duration::from_secs(5));
        let outcome = scenario.run();
        assert_eq!(outcome.registered.len(), 300);
        assert_eq!(outcome.unregistered, 0);
        assert!(outcome.throttled > 0);
        assert!(outcome.converged() >= scenario.minimum_time());
    }

    #[test]
    fn the_same_seed_gives_the_same_boot() {
        let scenario = scenario(200, Duration::from_secs(5));
        assert_eq!(scenario.run().registered, scenario.run().registered);
    }
}
