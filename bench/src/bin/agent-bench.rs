//! Times the built agent process on this machine, against the local
//! stand-ins: ministack as Route 53 behind the fault proxy (which notes when
//! each request arrives and is answered, so every "sent" time is taken at
//! the wire), and the IMDSv2 stand-in. Prints Markdown for BENCHMARKS.md.
//!
//! Usage: agent-bench AGENT_BINARY COMMAND [ARGS]
//!
//! - `latency RUNS`: start to first write, address change to write, SIGTERM
//!   to delete and to exit, over RUNS starts.
//! - `idle SECONDS`: memory, CPU and Route 53 calls of a quiet agent.
//! - `cli RUNS`: the aws CLI's UPSERT beside `route53-agent register`.
//! - `fleet INSTANCES RATE BURST`: that many agent processes booting at once
//!   through a proxy throttling each action to RATE/s with BURST, beside
//!   the simulation at the same parameters.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use route53_agent::retry::{Backoff, DEFAULT_BOOT_JITTER};
use route53_agent_bench::sim::{Quota, Scenario, Sequence, median};
use route53_agent_testkit::{
    AGENT_ENV_REMOVE, Action, Exchange, FaultProxy, ImdsServer, InstanceDefaults, Ministack,
    agent_env, create_zone, route53_client,
};
use tokio::process::{Child, Command};
use tokio::time::sleep;

/// Where one benchmark runs: its own zone, the proxy in front of ministack.
struct Bench {
    agent: PathBuf,
    _ministack: Ministack,
    proxy: FaultProxy,
    zone_id: String,
    zone: String,
    dir: PathBuf,
}

impl Bench {
    async fn new(agent: PathBuf) -> Bench {
        let ministack = Ministack::start();
        let client = route53_client(&ministack.endpoint());
        let zone = format!("bench{}.example.com", std::process::id());
        let zone_id = create_zone(&client, &zone, false).await;
        let proxy = FaultProxy::start(&ministack.endpoint()).await;
        let dir = std::env::temp_dir().join(format!("route53-agent-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Bench {
            agent,
            _ministack: ministack,
            proxy,
            zone_id,
            zone,
            dir,
        }
    }

    /// A config file with one A record for the Name tag.
    fn config(&self, top: &str) -> PathBuf {
        let path = self.dir.join(format!("config-{}.toml", top.len()));
        let body = format!(
            "{top}\n[[record]]\nzone_id = \"{}\"\nname = \"{{tag:Name}}.{}\"\n",
            self.zone_id, self.zone
        );
        std::fs::write(&path, body).expect("writing the config");
        path
    }

    fn command(&self, args: &[&str], config: &Path, imds: &ImdsServer) -> Command {
        let mut command = Command::new(&self.agent);
        command.args(args).arg("--config").arg(config);
        for key in AGENT_ENV_REMOVE {
            command.env_remove(key);
        }
        command
            .env_remove("NOTIFY_SOCKET")
            .envs(agent_env(&imds.endpoint(), &self.proxy.endpoint()))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Waits until a request for `action` arrived after `since` and passed
    /// the proxy, then returns it; panics after `within`.
    async fn next(&self, action: Action, since: Instant, within: Duration) -> Exchange {
        let deadline = Instant::now() + within;
        loop {
            let found = self.proxy.exchanges().into_iter().find(|exchange| {
                exchange.action == action && exchange.arrived >= since && !exchange.throttled
            });
            if let Some(exchange) = found {
                return exchange;
            }
            assert!(Instant::now() < deadline, "no {action:?} within {within:?}");
            sleep(Duration::from_millis(1)).await;
        }
    }

    /// Like [`Bench::next`], but waits for the answer too.
    async fn answered(&self, action: Action, since: Instant, within: Duration) -> Exchange {
        let deadline = Instant::now() + within;
        loop {
            let exchange = self.next(action, since, within).await;
            if exchange.answered.is_some() {
                return exchange;
            }
            assert!(Instant::now() < deadline, "no answer to {action:?}");
            sleep(Duration::from_millis(1)).await;
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn summary(values: &mut [f64]) -> String {
    let worst = values.iter().copied().fold(0.0, f64::max);
    let best = values.iter().copied().fold(f64::INFINITY, f64::min);
    format!(
        "median {:.1} ms (min {best:.1}, max {worst:.1})",
        median(values)
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: agent-bench AGENT latency RUNS | idle SECONDS | cli RUNS | fleet N RATE BURST";
    let (Some(agent), Some(command)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(64);
    };
    let number = |index: usize| -> f64 {
        args.get(index)
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| {
                eprintln!("{usage}");
                std::process::exit(64)
            })
    };
    let agent = PathBuf::from(agent);
    let bench = Bench::new(agent).await;
    match command.as_str() {
        "latency" => latency(&bench, number(3) as u32).await,
        "idle" => idle(&bench, Duration::from_secs_f64(number(3))).await,
        "cli" => cli(&bench, number(3) as u32).await,
        "fleet" => fleet(&bench, number(3) as u32, number(4), number(5) as u32).await,
        _ => {
            eprintln!("{usage}");
            std::process::exit(64);
        }
    }
    let _ = std::fs::remove_dir_all(&bench.dir);
}

/// Start to first write, address change to write, SIGTERM to delete.
async fn latency(bench: &Bench, runs: u32) {
    let poll = Duration::from_secs(1);
    let config = bench.config("poll_interval = \"1s\"\nshutdown_timeout = \"10s\"");
    let imds = ImdsServer::preset_instance().await;
    let within = Duration::from_secs(20);
    let (mut start, mut change, mut term, mut exit) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        imds.set("local-ipv4", "10.0.0.10");
        let began = Instant::now();
        let mut child: Child = bench
            .command(&["run", "--no-jitter"], &config, &imds)
            .spawn()
            .expect("the agent starts");
        let first = bench.answered(Action::ChangeRecords, began, within).await;
        start.push(millis(first.arrived - began));

        // Change the address at a random point of the poll interval.
        let phase = Duration::from_millis(u64::from(run * 379 % 1000));
        sleep(phase).await;
        imds.set("local-ipv4", format!("10.0.1.{}", run + 1));
        let changed = Instant::now();
        let rewrite = bench.answered(Action::ChangeRecords, changed, within).await;
        change.push(millis(rewrite.arrived - changed));

        sleep(Duration::from_millis(300)).await;
        let pid = child.id().expect("the agent runs").to_string();
        let killed = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill failed");
        let delete = bench.answered(Action::ChangeRecords, killed, within).await;
        let code = child.wait().await.expect("waiting for the agent");
        let exited = Instant::now();
        assert!(code.success(), "the agent exited with {code}");
        term.push(millis(delete.arrived - killed));
        exit.push(millis(exited - delete.answered.expect("answered")));
    }
    let reads = bench
        .proxy
        .exchanges()
        .iter()
        .filter(|e| e.action == Action::ListRecords)
        .count();
    println!("### Latency ({runs} runs, poll_interval 1s, release binary)\n");
    println!("| measure | goal | measured |\n|---|---|---|");
    println!(
        "| start to first write (ChangeResourceRecordSets at the proxy), jitter off | median ≤ 50 ms | {} |",
        summary(&mut start)
    );
    let worst_change = change.iter().copied().fold(0.0, f64::max);
    println!(
        "| address change in IMDS to the write | ≤ poll_interval + 100 ms = {} ms | {} → {} |",
        millis(poll) + 100.0,
        summary(&mut change),
        if worst_change <= millis(poll) + 100.0 {
            "met"
        } else {
            "missed"
        }
    );
    println!(
        "| SIGTERM to the DELETE at the proxy | median ≤ 20 ms | {} |",
        summary(&mut term)
    );
    println!(
        "| Route 53 answer to the delete → process exit | ≤ 100 ms | {} |",
        summary(&mut exit)
    );
    println!(
        "\nListResourceRecordSets calls in all: {reads} ({:.1} per run: none before the \
         first write, a CREATE with no read; the reads of record and marker before the \
         address change and before the delete).\n",
        reads as f64 / f64::from(runs)
    );
}

/// CPU ticks (user + system) of a process, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading stat");
    // Fields after the command name, which ends with the last ')'.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 here.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// A `VmRSS`-style field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    let output = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output();
    output
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A quiet agent polling every 5 s for `window`.
async fn idle(bench: &Bench, window: Duration) {
    let config = bench.config("poll_interval = \"5s\"\nshutdown_timeout = \"10s\"");
    let imds = ImdsServer::preset_instance().await;
    let began = Instant::now();
    let mut child = bench
        .command(&["run", "--no-jitter"], &config, &imds)
        .spawn()
        .expect("the agent starts");
    let pid = child.id().expect("the agent runs");
    bench
        .answered(Action::ChangeRecords, began, Duration::from_secs(20))
        .await;
    // Let the first pass end before the window opens.
    sleep(Duration::from_secs(1)).await;
    let calls_before = bench.proxy.exchanges().len();
    let imds_before = imds.get_requests() + imds.token_requests();
    let ticks_before = cpu_ticks(pid);
    let opened = Instant::now();
    let mut rss_max = 0;
    while opened.elapsed() < window {
        rss_max = rss_max.max(status_kib(pid, "VmRSS:"));
        sleep(Duration::from_secs(1)).await;
    }
    let ticks = cpu_ticks(pid) - ticks_before;
    let seconds = opened.elapsed().as_secs_f64();
    let calls = bench.proxy.exchanges().len() - calls_before;
    let imds_requests = imds.get_requests() + imds.token_requests() - imds_before;
    let rss = status_kib(pid, "VmRSS:");
    let hwm = status_kib(pid, "VmHWM:");
    let cpu = ticks as f64 / clock_ticks_per_second() / seconds * 100.0;
    let _ = child.start_kill();
    let _ = child.wait().await;

    let quick = if seconds < 299.0 {
        " — QUICK RUN, shorter than the 5 minutes the goal names"
    } else {
        ""
    };
    println!("### Idle ({seconds:.0} s window, poll_interval 5s, release binary{quick})\n");
    println!("| measure | goal | measured |\n|---|---|---|");
    println!(
        "| resident memory (VmRSS) | ≤ 8 MiB | {:.2} MiB at the end, {:.2} MiB highest sampled; peak since start (VmHWM) {:.2} MiB → {} |",
        rss as f64 / 1024.0,
        rss_max as f64 / 1024.0,
        hwm as f64 / 1024.0,
        if rss_max <= 8 * 1024 { "met" } else { "missed" }
    );
    println!(
        "| CPU, one core | ≤ 0.05 % | {cpu:.4} % ({ticks} clock ticks of 1/{:.0} s in {seconds:.0} s) → {} |",
        clock_ticks_per_second(),
        if cpu <= 0.05 { "met" } else { "missed" }
    );
    println!(
        "| Route 53 calls | 0 | {calls} → {} |",
        if calls == 0 { "met" } else { "missed" }
    );
    println!(
        "\nIMDS requests in the window: {imds_requests} (token and reads; every poll reads the facts).\n"
    );
}

/// Runs a command under /usr/bin/time; returns wall seconds, CPU seconds
/// and the peak resident set in KiB.
async fn timed(command: Command) -> (f64, f64, u64) {
    let report = std::env::temp_dir().join(format!("bench-time-{}", std::process::id()));
    let program = command.as_std().get_program().to_owned();
    let args: Vec<_> = command.as_std().get_args().map(|a| a.to_owned()).collect();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(&report)
        .arg(program)
        .args(args);
    for (key, value) in command.as_std().get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    let status = wrapped
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("/usr/bin/time runs");
    assert!(status.success(), "the timed command failed: {status}");
    let text = std::fs::read_to_string(&report).expect("the time report");
    let fields: Vec<f64> = text
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    (fields[0], fields[1] + fields[2], fields[3] as u64)
}

/// The aws CLI's UPSERT beside the agent's one-shot registration.
async fn cli(bench: &Bench, runs: u32) {
    let config = bench.config("shutdown_timeout = \"10s\"");
    let imds = ImdsServer::preset_instance().await;
    let batch = bench.dir.join("batch.json");
    std::fs::write(
        &batch,
        format!(
            r#"{{"Changes":[{{"Action":"UPSERT","ResourceRecordSet":{{"Name":"cli.{}","Type":"A","TTL":60,"ResourceRecords":[{{"Value":"10.0.0.10"}}]}}}}]}}"#,
            bench.zone
        ),
    )
    .expect("writing the change batch");
    let aws = std::env::var("AWS_CLI").unwrap_or_else(|_| "aws".into());
    let (mut agent_wall, mut agent_cpu, mut agent_rss) = (vec![], vec![], vec![]);
    let (mut cli_wall, mut cli_cpu, mut cli_rss) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        let (wall, cpu, rss) =
            timed(bench.command(&["register", "--no-jitter"], &config, &imds)).await;
        agent_wall.push(wall * 1000.0);
        agent_cpu.push(cpu * 1000.0);
        agent_rss.push(rss as f64 / 1024.0);
        let mut command = Command::new(&aws);
        command
            .args(["route53", "change-resource-record-sets", "--endpoint-url"])
            .arg(bench.proxy.endpoint())
            .args(["--hosted-zone-id", &bench.zone_id, "--change-batch"])
            .arg(format!("file://{}", batch.display()));
        for key in AGENT_ENV_REMOVE {
            command.env_remove(key);
        }
        command.envs(agent_env(&imds.endpoint(), &bench.proxy.endpoint()));
        // The aws CLI v1 reads the region only from AWS_DEFAULT_REGION.
        command.env("AWS_DEFAULT_REGION", "us-east-1");
        let (wall, cpu, rss) = timed(command).await;
        cli_wall.push(wall * 1000.0);
        cli_cpu.push(cpu * 1000.0);
        cli_rss.push(rss as f64 / 1024.0);
    }
    let (aw, ac, ar) = (
        median(&mut agent_wall),
        median(&mut agent_cpu),
        median(&mut agent_rss),
    );
    let (cw, cc, cr) = (
        median(&mut cli_wall),
        median(&mut cli_cpu),
        median(&mut cli_rss),
    );
    println!("### Beside the aws CLI ({runs} runs each, medians, /usr/bin/time)\n");
    println!(
        "| | wall time | CPU time (user + system) | peak resident memory |\n|---|---|---|---|"
    );
    println!(
        "| `route53-agent register --no-jitter` (IMDS reads, GetHostedZone, CREATE + marker; on the runs after the first, that CREATE is refused, then a read and an UPSERT) | {aw:.0} ms | {ac:.0} ms | {ar:.1} MiB |"
    );
    println!(
        "| `aws route53 change-resource-record-sets` (one UPSERT, nothing read) | {cw:.0} ms | {cc:.0} ms | {cr:.1} MiB |"
    );
    // /usr/bin/time counts CPU in hundredths of a second.
    let cpu_ratio = if ac >= 10.0 {
        format!("{:.1}×", cc / ac)
    } else {
        format!("> {:.0}× (agent below the 10 ms resolution)", cc / 10.0)
    };
    println!(
        "| ratio, aws CLI ÷ agent | {:.1}× | {cpu_ratio} | {:.1}× |\n",
        cw / aw,
        cr / ar
    );
}

/// Real agent processes booting at once through a throttling proxy, beside
/// the simulation at the same parameters.
async fn fleet(bench: &Bench, instances: u32, rate: f64, burst: u32) {
    let config = bench.config("shutdown_timeout = \"10s\"");
    let mut servers = Vec::new();
    for index in 0..instances {
        servers.push(
            ImdsServer::with_instance(InstanceDefaults {
                instance_id: format!("i-{index:017x}"),
                local_ipv4: format!("10.1.{}.{}", index / 200, index % 200 + 1),
                tags: vec![("Name".into(), format!("node-{index}"))],
                ..InstanceDefaults::default()
            })
            .await,
        );
    }
    bench.proxy.throttle(rate, burst);
    let began = Instant::now();
    let mut children = Vec::new();
    for imds in &servers {
        children.push(
            bench
                .command(&["register"], &config, imds)
                .spawn()
                .expect("the agent starts"),
        );
    }
    let spread = began.elapsed();
    let limit = Duration::from_secs(600);
    let mut failed = 0;
    for child in &mut children {
        let left = limit.saturating_sub(began.elapsed());
        match tokio::time::timeout(left, child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            _ => {
                failed += 1;
                let _ = child.start_kill();
            }
        }
    }
    let exchanges = bench.proxy.exchanges();
    let mut writes: Vec<f64> = exchanges
        .iter()
        .filter(|e| e.action == Action::ChangeRecords && !e.throttled)
        .filter_map(|e| e.answered)
        .map(|answered| (answered - began).as_secs_f64())
        .collect();
    writes.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let converged = writes.last().copied().unwrap_or(f64::INFINITY);
    let calls = exchanges.len() as f64 / f64::from(instances);
    let mut round_trips: Vec<f64> = exchanges
        .iter()
        .filter(|e| !e.throttled)
        .filter_map(|e| {
            e.answered
                .map(|answered| (answered - e.arrived).as_secs_f64())
        })
        .collect();
    let round_trip = Duration::from_secs_f64(median(&mut round_trips));

    let quota = Quota {
        rate,
        burst,
        shared: false,
    };
    let scenario = Scenario {
        instances,
        quota,
        backoff: Backoff::default(),
        boot_jitter: DEFAULT_BOOT_JITTER,
        sequence: Sequence::JitterZoneCreate,
        boot_spread: spread,
        round_trip,
        seed: 0,
    };
    let outcomes: Vec<_> = (0..50)
        .map(|seed| Scenario { seed, ..scenario }.run())
        .collect();
    let mut sim_converged: Vec<f64> = outcomes.iter().map(|o| o.converged()).collect();
    let mut sim_calls: Vec<f64> = outcomes.iter().map(|o| o.calls_per_instance()).collect();
    let range = |values: &[f64]| {
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(0.0, f64::max);
        (low, high)
    };
    let (converged_low, converged_high) = range(&sim_converged);
    let (calls_low, calls_high) = range(&sim_calls);

    println!(
        "### The model against {instances} real agent processes ({rate}/s, burst {burst}, per action; defaults: boot_jitter 5s, backoff 1s..30s)\n"
    );
    println!(
        "Processes started within {:.0} ms; median answer time at the proxy {:.1} ms; the simulation ran 50 seeds with both.\n",
        millis(spread),
        millis(round_trip)
    );
    println!(
        "| | all registered | calls per instance | throttled | gave up |\n|---|---|---|---|---|"
    );
    println!(
        "| real processes | {converged:.1} s | {calls:.2} | {} of {} | {failed} |",
        exchanges.iter().filter(|e| e.throttled).count(),
        exchanges.len()
    );
    println!(
        "| simulation, median (range) | {:.1} s ({converged_low:.1}–{converged_high:.1}) | {:.2} ({calls_low:.2}–{calls_high:.2}) | | {} |",
        median(&mut sim_converged),
        median(&mut sim_calls),
        outcomes.iter().map(|o| o.unregistered).sum::<u32>()
    );
    println!(
        "| quota minimum | {:.1} s | {} | | |\n",
        scenario.minimum_time(),
        scenario.sequence.least_calls()
    );
    let by_action = |action: Action| exchanges.iter().filter(|e| e.action == action).count();
    println!(
        "Real calls by action: GetHostedZone {}, ListResourceRecordSets {}, ChangeResourceRecordSets {}.\n",
        by_action(Action::GetHostedZone),
        by_action(Action::ListRecords),
        by_action(Action::ChangeRecords)
    );
}
