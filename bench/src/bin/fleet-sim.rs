//! Boots a simulated fleet of 1,000 instances against Route 53's quotas
//! (see `route53_agent_bench::sim`), prints the results as Markdown
//! sections for BENCHMARKS.md, and draws the registered-over-time plots.
//!
//! Usage: fleet-sim OUTPUT.md PLOT_DIR

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use route53_agent::retry::{Backoff, DEFAULT_BOOT_JITTER};
use route53_agent_bench::plot::{self, Series};
use route53_agent_bench::sim::{Outcome, Quota, Scenario, Sequence, median};

const INSTANCES: u32 = 1000;
/// Seeds per setting; the tables show the median and the worst of them.
const SEEDS: u64 = 9;
/// Round trip to Route 53 from an instance, a typical figure.
const ROUND_TRIP: Duration = Duration::from_millis(50);

struct Limit {
    name: &'static str,
    file: &'static str,
    quota: Quota,
}

const LIMITS: [Limit; 3] = [
    Limit {
        name: "10/s, burst 50, per action",
        file: "fleet-10rps",
        quota: Quota {
            rate: 10.0,
            burst: 50,
            shared: false,
        },
    },
    Limit {
        name: "5/s, burst 10, per action",
        file: "fleet-5rps",
        quota: Quota {
            rate: 5.0,
            burst: 10,
            shared: false,
        },
    },
    Limit {
        name: "5/s, burst 5, one bucket for the account",
        file: "fleet-5rps-account",
        quota: Quota {
            rate: 5.0,
            burst: 5,
            shared: true,
        },
    },
];

/// Several seeds of one setting.
struct Runs {
    scenario: Scenario,
    outcomes: Vec<Outcome>,
}

impl Runs {
    fn of(scenario: Scenario) -> Runs {
        let outcomes = (0..SEEDS)
            .map(|seed| Scenario { seed, ..scenario }.run())
            .collect();
        Runs { scenario, outcomes }
    }

    fn converged(&self) -> (f64, f64) {
        let mut times: Vec<f64> = self.outcomes.iter().map(Outcome::converged).collect();
        let worst = times.iter().copied().fold(0.0, f64::max);
        (median(&mut times), worst)
    }

    fn calls(&self) -> (f64, f64) {
        let mut calls: Vec<f64> = self
            .outcomes
            .iter()
            .map(Outcome::calls_per_instance)
            .collect();
        let worst = calls.iter().copied().fold(0.0, f64::max);
        (median(&mut calls), worst)
    }

    fn row(&self, setting: &str) -> String {
        let minimum = self.scenario.minimum_time();
        let (converged, worst) = self.converged();
        let (calls, worst_calls) = self.calls();
        let unregistered: u32 = self.outcomes.iter().map(|o| o.unregistered).sum();
        let most_calls = self
            .outcomes
            .iter()
            .map(|o| o.most_calls)
            .max()
            .unwrap_or(0);
        let meets = converged <= 1.5 * minimum && worst <= 1.5 * minimum && worst_calls <= 4.0;
        format!(
            "| {setting} | {converged:.0} s ({worst:.0} s) | {:.2} ({:.2}) | {calls:.2} ({worst_calls:.2}) | {most_calls} | {unregistered} | {} |",
            converged / minimum,
            worst / minimum,
            if meets && unregistered == 0 {
                "yes"
            } else {
                "no"
            },
        )
    }
}

fn scenario(quota: Quota, boot_jitter: Duration, backoff: Backoff, sequence: Sequence) -> Scenario {
    Scenario {
        instances: INSTANCES,
        quota,
        backoff,
        boot_jitter,
        sequence,
        boot_spread: Duration::from_secs(1),
        round_trip: ROUND_TRIP,
        seed: 0,
    }
}

/// A boot jitter window as long as the quota needs for the whole fleet.
fn matching_jitter(quota: Quota) -> Duration {
    let least = Sequence::JitterZoneCreate.least_calls();
    let calls = if quota.shared { f64::from(least) } else { 1.0 };
    Duration::from_secs_f64((f64::from(INSTANCES) * calls / quota.rate).ceil())
}

/// The README's advice for a fleet booting at once: a fifth longer than
/// the quota needs. Random start times spread exactly over what the quota
/// needs arrive, at moments, faster than the bucket refills; the margin
/// keeps those bursts small.
fn recommended_jitter(quota: Quota) -> Duration {
    Duration::from_secs_f64((matching_jitter(quota).as_secs_f64() * 1.2).ceil())
}

const TABLE_HEAD: &str = "| setting | all registered: median (worst) | × minimum: median (worst) | calls per instance: median (worst) | most calls by one instance | unregistered | meets goal |\n|---|---|---|---|---|---|---|\n";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(output), Some(plots)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: fleet-sim OUTPUT.md PLOT_DIR");
        std::process::exit(64);
    };
    let plots = PathBuf::from(plots);
    std::fs::create_dir_all(&plots).expect("creating the plot directory");
    let mut text = String::new();
    for limit in &LIMITS {
        section(&mut text, limit, &plots);
    }
    std::fs::write(output, text).expect("writing the results");
}

fn section(text: &mut String, limit: &Limit, plots: &Path) {
    let quota = limit.quota;
    let defaults = Backoff::default();
    let wide = matching_jitter(quota);
    let advised = recommended_jitter(quota);
    let current = Sequence::JitterZoneCreate;
    let minimum = scenario(quota, DEFAULT_BOOT_JITTER, defaults, current).minimum_time();
    let _ = writeln!(
        text,
        "\n#### {} — {INSTANCES} instances, quota minimum {minimum:.0} s, goal ≤ {:.0} s and ≤ 4 calls per instance\n",
        limit.name,
        1.5 * minimum
    );
    text.push_str(TABLE_HEAD);
    let before = Sequence::ReadBeforeWrite;
    let settings = [
        (
            "defaults (boot_jitter 5s, backoff 1s..30s)".to_string(),
            DEFAULT_BOOT_JITTER,
            current,
        ),
        (format!("boot_jitter {}s", wide.as_secs()), wide, current),
        (
            format!(
                "boot_jitter {}s (as advised: 1.2 × what the quota needs)",
                advised.as_secs()
            ),
            advised,
            current,
        ),
        (
            "defaults, the agent before 3d43e49 (what-if: zone, jitter, read, write)".to_string(),
            DEFAULT_BOOT_JITTER,
            before,
        ),
        (
            format!(
                "boot_jitter {}s, the agent before 3d43e49 (what-if)",
                wide.as_secs()
            ),
            wide,
            before,
        ),
    ];
    let mut runs = Vec::new();
    for (label, jitter, sequence) in &settings {
        let setting = Runs::of(scenario(quota, *jitter, defaults, *sequence));
        let _ = writeln!(text, "{}", setting.row(label));
        runs.push((label.clone(), setting));
    }

    sweep(text, quota, wide, advised);
    draw(text, limit, plots, minimum, &runs);
}

fn sweep(text: &mut String, quota: Quota, wide: Duration, advised: Duration) {
    let defaults = Backoff::default();
    let current = Sequence::JitterZoneCreate;
    // The trade-off: the backoff cap against convergence and calls.
    let _ = writeln!(
        text,
        "\nBackoff cap against convergence and calls (base 1s; boot_jitter 5s, and {}s as advised):\n",
        advised.as_secs()
    );
    text.push_str(TABLE_HEAD);
    for cap in [2, 5, 10, 30, 60, 120] {
        for jitter in [DEFAULT_BOOT_JITTER, advised] {
            let backoff = Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(cap),
            };
            let setting = Runs::of(scenario(quota, jitter, backoff, current));
            let label = format!("cap {cap}s, boot_jitter {}s", jitter.as_secs());
            let _ = writeln!(text, "{}", setting.row(&label));
        }
    }

    // Boot jitter windows, in steps of a tenth of what the quota needs.
    let _ = writeln!(
        text,
        "\nBoot jitter window against convergence and calls (backoff 1s..30s):\n"
    );
    text.push_str(TABLE_HEAD);
    for tenths in [0, 2, 4, 6, 8, 10, 12, 14, 15, 16] {
        let jitter = Duration::from_secs_f64(wide.as_secs_f64() * f64::from(tenths) / 10.0);
        let setting = Runs::of(scenario(quota, jitter, defaults, current));
        let label = format!("boot_jitter {:.0}s", jitter.as_secs_f64());
        let _ = writeln!(text, "{}", setting.row(&label));
    }
}

fn draw(text: &mut String, limit: &Limit, plots: &Path, minimum: f64, runs: &[(String, Runs)]) {
    let file = plots.join(format!("{}.svg", limit.file));
    let series: Vec<Series> = runs
        .iter()
        .map(|(label, setting)| Series {
            label: label.clone(),
            registered: &setting.outcomes[0].registered,
        })
        .collect();
    let title = format!(
        "{INSTANCES} instances booting, Route 53 at {} (seed 0)",
        limit.name
    );
    plot::registered_over_time(&file, &title, INSTANCES, minimum, &series)
        .expect("drawing the plot");
    let _ = writeln!(
        text,
        "\n![registered instances over time, {}]({})",
        limit.name,
        file.display()
    );
}
