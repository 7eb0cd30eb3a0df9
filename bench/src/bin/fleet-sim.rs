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
use route53_agent_bench::sim::{Order, Outcome, Quota, Scenario, median};

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
        name: "5/s, burst 5, per action",
        file: "fleet-5rps",
        quota: Quota {
            rate: 5.0,
            burst: 5,
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

fn scenario(quota: Quota, boot_jitter: Duration, backoff: Backoff, order: Order) -> Scenario {
    Scenario {
        instances: INSTANCES,
        quota,
        backoff,
        boot_jitter,
        order,
        boot_spread: Duration::from_secs(1),
        round_trip: ROUND_TRIP,
        seed: 0,
    }
}

/// A boot jitter window as long as the quota needs for the whole fleet.
fn matching_jitter(quota: Quota) -> Duration {
    let calls = if quota.shared { 3.0 } else { 1.0 };
    Duration::from_secs_f64((f64::from(INSTANCES) * calls / quota.rate).ceil())
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
        // The account-wide bucket livelocks as built; the sweeps there
        // only repeat that at great length.
        let sweeps = !limit.quota.shared;
        section(&mut text, limit, &plots, sweeps);
    }
    std::fs::write(output, text).expect("writing the results");
}

fn section(text: &mut String, limit: &Limit, plots: &Path, sweeps: bool) {
    let quota = limit.quota;
    let defaults = Backoff::default();
    let wide = matching_jitter(quota);
    let minimum =
        scenario(quota, DEFAULT_BOOT_JITTER, defaults, Order::ZoneThenJitter).minimum_time();
    let _ = writeln!(
        text,
        "\n#### {} — {INSTANCES} instances, quota minimum {minimum:.0} s, goal ≤ {:.0} s and ≤ 4 calls per instance\n",
        limit.name,
        1.5 * minimum
    );
    text.push_str(TABLE_HEAD);
    let settings = [
        (
            "defaults (boot_jitter 5s, backoff 1s..30s)".to_string(),
            DEFAULT_BOOT_JITTER,
            Order::ZoneThenJitter,
        ),
        (
            format!("boot_jitter {}s", wide.as_secs()),
            wide,
            Order::ZoneThenJitter,
        ),
        (
            format!(
                "boot_jitter {}s, jitter before the zone lookup (what-if)",
                wide.as_secs()
            ),
            wide,
            Order::JitterFirst,
        ),
        (
            "boot_jitter 5s, jitter before the zone lookup (what-if)".to_string(),
            DEFAULT_BOOT_JITTER,
            Order::JitterFirst,
        ),
    ];
    let mut runs = Vec::new();
    for (label, jitter, order) in &settings {
        let setting = Runs::of(scenario(quota, *jitter, defaults, *order));
        let _ = writeln!(text, "{}", setting.row(label));
        runs.push((label.clone(), setting));
    }

    if sweeps {
        sweep(text, quota, wide);
    }
    draw(text, limit, plots, minimum, &runs);
}

fn sweep(text: &mut String, quota: Quota, wide: Duration) {
    let defaults = Backoff::default();
    // The trade-off: the backoff cap against convergence and calls.
    let _ = writeln!(
        text,
        "\nBackoff cap against convergence and calls (base 1s; boot_jitter 5s as built, and {}s):\n",
        wide.as_secs()
    );
    text.push_str(TABLE_HEAD);
    for cap in [2, 5, 10, 30, 60, 120] {
        for jitter in [DEFAULT_BOOT_JITTER, wide] {
            let backoff = Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(cap),
            };
            let setting = Runs::of(scenario(quota, jitter, backoff, Order::ZoneThenJitter));
            let label = format!("cap {cap}s, boot_jitter {}s", jitter.as_secs());
            let _ = writeln!(text, "{}", setting.row(&label));
        }
    }

    // Boot jitter windows, as built, default backoff.
    let _ = writeln!(
        text,
        "\nBoot jitter window against convergence and calls (backoff 1s..30s, as built):\n"
    );
    text.push_str(TABLE_HEAD);
    let rate_window = f64::from(INSTANCES) / quota.rate;
    for fraction in [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5] {
        let jitter = Duration::from_secs_f64(rate_window * fraction);
        let setting = Runs::of(scenario(quota, jitter, defaults, Order::ZoneThenJitter));
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
