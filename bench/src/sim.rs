//! A fleet booting together against Route 53's token buckets, in virtual
//! time. Every wait an instance makes is decided by the agent's own code:
//! [`Backoff::delay`] after a throttled call, [`BootJitter::delay`] before
//! the first write, each drawn from the instance's own seeded generator in
//! the order the agent draws them.
//!
//! What one instance does mirrors `route53-agent run` with one simple A
//! record in a hosted zone given by id, on a fresh boot (nothing of this
//! instance in the zone, so no garbage collection):
//!
//! 1. GetHostedZone, retried until it passes (`resolve_zones`);
//! 2. the boot jitter;
//! 3. "write records": ListResourceRecordSets at the name, then, when that
//!    passed, ChangeResourceRecordSets (CREATE and marker). A throttled call
//!    fails the whole attempt, which starts again with the list after a
//!    backoff (`Retry::call` around `Registrar::register`).
//!
//! [`Order::JitterFirst`] swaps steps 1 and 2: a what-if, not what the agent
//! does today.

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

/// Where the boot jitter falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// As the agent does it: zone lookup, then jitter, then the write.
    ZoneThenJitter,
    /// Jitter before anything reaches Route 53.
    JitterFirst,
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
    pub order: Order,
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
}

impl Scenario {
    /// The least time in which the quota admits every call the fleet needs:
    /// one of each action per instance.
    pub fn minimum_time(&self) -> f64 {
        let calls_per_bucket = if self.quota.shared { 3 } else { 1 };
        TokenBucket::new(self.quota.rate, self.quota.burst)
            .minimum_time(self.instances * calls_per_bucket)
    }

    pub fn run(&self) -> Outcome {
        Simulation::new(self).run()
    }
}

/// Where one instance is in its boot.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The next event is this call reaching Route 53.
    Send(Call),
    /// The jitter is over; the next event starts the write.
    Jittered,
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
    /// Pending events: (time in nanoseconds, sequence, instance, step).
    events: BinaryHeap<Reverse<(u128, u64, usize, StepKey)>>,
    sequence: u64,
    outcome: Outcome,
}

/// [`Step`] in a form the heap can order.
type StepKey = u8;

fn key(step: Step) -> StepKey {
    match step {
        Step::Send(Call::GetHostedZone) => 0,
        Step::Send(Call::ListRecords) => 1,
        Step::Send(Call::ChangeRecords) => 2,
        Step::Jittered => 3,
    }
}

fn step(key: StepKey) -> Step {
    match key {
        0 => Step::Send(Call::GetHostedZone),
        1 => Step::Send(Call::ListRecords),
        2 => Step::Send(Call::ChangeRecords),
        _ => Step::Jittered,
    }
}

/// No boot in any scenario here should take longer than this.
const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);

impl<'a> Simulation<'a> {
    fn new(scenario: &'a Scenario) -> Self {
        let quota = scenario.quota;
        let bucket_count = if quota.shared { 1 } else { 3 };
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
            let first = match scenario.order {
                Order::ZoneThenJitter => (boots_at, Step::Send(Call::GetHostedZone)),
                Order::JitterFirst => (boots_at + instance.jitter(scenario), Step::Jittered),
            };
            simulation.instances.push(instance);
            simulation.schedule(first.0, index, first.1);
        }
        simulation
    }

    fn schedule(&mut self, at: Duration, instance: usize, step: Step) {
        self.sequence += 1;
        self.events
            .push(Reverse((at.as_nanos(), self.sequence, instance, key(step))));
    }

    fn run(mut self) -> Outcome {
        while let Some(Reverse((nanos, _, index, step_key))) = self.events.pop() {
            let now = Duration::from_nanos(nanos as u64);
            if now > GIVE_UP_AFTER {
                self.outcome.unregistered += 1 + self.events.len() as u32;
                break;
            }
            match step(step_key) {
                Step::Jittered => {
                    let first = match self.scenario.order {
                        Order::ZoneThenJitter => Call::ListRecords,
                        Order::JitterFirst => Call::GetHostedZone,
                    };
                    self.schedule(now, index, Step::Send(first));
                }
                Step::Send(call) => self.send(now, index, call),
            }
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
        let scenario = self.scenario;
        let instance = &mut self.instances[index];
        instance.calls += 1;
        let answered = now + scenario.round_trip;
        if !passed {
            self.outcome.throttled += 1;
            let delay = scenario.backoff.delay(instance.retry, &mut instance.rng);
            instance.retry = instance.retry.saturating_add(1);
            // A throttled write starts again from the list.
            let again = match call {
                Call::GetHostedZone => Call::GetHostedZone,
                Call::ListRecords | Call::ChangeRecords => Call::ListRecords,
            };
            return self.schedule(answered + delay, index, Step::Send(again));
        }
        match (call, scenario.order) {
            (Call::GetHostedZone, Order::ZoneThenJitter) => {
                instance.retry = 0;
                let jitter = instance.jitter(scenario);
                self.schedule(answered + jitter, index, Step::Jittered);
            }
            (Call::GetHostedZone, Order::JitterFirst) => {
                instance.retry = 0;
                self.schedule(answered, index, Step::Send(Call::ListRecords));
            }
            (Call::ListRecords, _) => {
                self.schedule(answered, index, Step::Send(Call::ChangeRecords));
            }
            (Call::ChangeRecords, _) => {
                self.outcome.registered.push(answered.as_secs_f64());
            }
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
            order: Order::ZoneThenJitter,
            boot_spread: Duration::from_secs(1),
            round_trip: Duration::from_millis(50),
            seed: 1,
        }
    }

    #[test]
    fn a_fleet_within_the_burst_makes_three_calls_each_and_none_is_throttled() {
        let outcome = scenario(40, Duration::ZERO).run();
        assert_eq!(outcome.registered.len(), 40);
        assert_eq!(outcome.calls, 120);
        assert_eq!(outcome.throttled, 0);
        assert!(outcome.converged() < 1.2, "{}", outcome.converged());
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
