//! `demo`: the agent's whole life on this machine, with nothing from AWS.
//!
//! Starts ministack as Route 53 and the IMDSv2 stand-in as the instance,
//! creates a hosted zone, and runs the real `route53-agent run` against them
//! with the standard AWS settings. Then it shows the record appear, follow an
//! address change, and disappear on SIGTERM. `scripts/demo` builds and runs
//! it; the agent binary's path is the only argument.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_route53::Client;
use aws_sdk_route53::types::RrType;
use route53_agent_testkit::{
    AGENT_ENV_REMOVE, ImdsServer, Ministack, agent_env, create_zone, records, route53_client,
    values_of,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const ZONE: &str = "demo.example.com";
const NAME: &str = "web-1.demo.example.com";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(agent) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: demo PATH-TO-route53-agent");
        return ExitCode::from(64);
    };
    match demo(agent).await {
        Ok(()) => {
            println!("\ndemo finished: the record appeared, changed and disappeared.");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("\ndemo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(agent: PathBuf) -> Result<(), String> {
    step("starting ministack (Route 53) and the IMDSv2 stand-in");
    let ministack = Ministack::start();
    let r53 = route53_client(&ministack.endpoint());
    let imds = ImdsServer::preset_instance().await;
    let zone_id = create_zone(&r53, ZONE, false).await;
    println!(
        "  Route 53 at {}, hosted zone {ZONE} ({zone_id})",
        ministack.endpoint()
    );
    println!(
        "  IMDS at {}: instance i-0123456789abcdef0, tag Name=web-1, local-ipv4 10.0.0.10",
        imds.endpoint()
    );

    let dir = std::env::temp_dir().join(format!("route53-agent-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let config = dir.join("config.toml");
    let text = format!(
        "poll_interval = \"1s\"\nshutdown_timeout = \"10s\"\n\n[[record]]\n\
         zone_id = \"{zone_id}\"\nname = \"{{tag:Name}}.{ZONE}\"\ntype = \"A\"\n\
         value = \"local-ipv4\"\nttl = 60\n"
    );
    std::fs::write(&config, &text).map_err(|e| format!("cannot write the config: {e}"))?;
    step(&format!("config {}", config.display()));
    for line in text.lines() {
        println!("  {line}");
    }

    step("route53-agent run");
    let mut command = Command::new(&agent);
    command.arg("run").arg("--config").arg(&config);
    for key in AGENT_ENV_REMOVE {
        command.env_remove(key);
    }
    let mut child = command
        .envs(agent_env(&imds.endpoint(), &ministack.endpoint()))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", agent.display()))?;
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                println!("  agent | {line}");
            }
        });
    }

    show_when(&r53, &zone_id, |live| live.is_some(), "the record appears").await?;

    step("the instance's address changes to 10.0.0.42 in IMDS");
    imds.set("local-ipv4", "10.0.0.42");
    show_when(
        &r53,
        &zone_id,
        |live| live.is_some_and(|(_, values)| *values == ["10.0.0.42"]),
        "the record follows",
    )
    .await?;

    step("SIGTERM");
    let pid = child.id().ok_or("the agent exited early")?;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .map_err(|_| "the agent did not exit after SIGTERM")?
        .map_err(|e| format!("waiting for the agent: {e}"))?;
    println!("  agent exited with {status}");
    show_when(&r53, &zone_id, |live| live.is_none(), "the record is gone").await?;
    let _ = std::fs::remove_dir_all(&dir);
    if status.success() {
        Ok(())
    } else {
        Err(format!("the agent exited with {status}"))
    }
}

fn step(text: &str) {
    println!("\n== {text}");
}

/// Polls the zone until `done` holds for the demo record, then prints it.
async fn show_when(
    r53: &Client,
    zone_id: &str,
    done: impl Fn(Option<&(i64, Vec<String>)>) -> bool,
    what: &str,
) -> Result<(), String> {
    let began = Instant::now();
    loop {
        let live = values_of(&records(r53, zone_id).await, NAME, RrType::A);
        if done(live.as_ref()) {
            let shown = match &live {
                Some((ttl, values)) => format!("{NAME}. A {ttl} {}", values.join(" ")),
                None => format!("no A record at {NAME}."),
            };
            println!("  Route 53 now holds: {shown}   ({what})");
            return Ok(());
        }
        if began.elapsed() > WAIT {
            return Err(format!(
                "{what}: not seen within {WAIT:?}; last seen {live:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
