//! The ECS task metadata endpoint (version 4): what a task knows about
//! itself when it runs as a sidecar in `awsvpc` mode, where the task has a
//! network interface, and so an address, of its own that IMDS does not show.
//!
//! The endpoint's address comes from `ECS_CONTAINER_METADATA_URI_V4`, which
//! the ECS agent sets in every container; without it this is not an ECS task
//! and the configuration's task values cannot be filled. Parsing the answer
//! is pure ([`parse_task`]); reading it uses reqwest, with no TLS, since the
//! endpoint is plain HTTP on a link-local address.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Deserialize;

/// The variable the ECS agent sets to the endpoint's base URL.
pub const ENDPOINT_VAR: &str = "ECS_CONTAINER_METADATA_URI_V4";
/// The endpoint answers locally; a slow answer means something is wrong.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What the task says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskFacts {
    /// The last part of the task ARN, e.g. `158d1c8083dd49d6b527399fd6414f5c`.
    pub task_id: String,
    /// The cluster's name (the endpoint may give an ARN; its last part).
    pub cluster: String,
    /// The task's own address, in `awsvpc` mode.
    pub ipv4: Option<Ipv4Addr>,
    /// The network mode of the task's first network, e.g. `awsvpc`.
    pub network_mode: Option<String>,
}

/// Why the task metadata could not be read or believed.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    #[error(
        "the configuration uses task values (value = \"task-ipv4\", {{task_id}} or {{cluster}}), \
         which need the ECS task metadata endpoint, but {ENDPOINT_VAR} is not set: this is not \
         an ECS task (or its ECS agent is older than 1.39)"
    )]
    NotEcs,
    #[error("cannot read the ECS task metadata at {url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the ECS task metadata at {url} is not what version 4 answers: {detail}")]
    Unexpected { url: String, detail: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Task {
    #[serde(rename = "TaskARN")]
    task_arn: String,
    cluster: String,
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Container {
    #[serde(default)]
    networks: Vec<Network>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Network {
    network_mode: Option<String>,
    #[serde(default, rename = "IPv4Addresses")]
    ipv4_addresses: Vec<String>,
}

/// Reads the task's facts from the endpoint.
#[derive(Clone, Debug)]
pub struct TaskMetadata {
    base: Option<String>,
    client: reqwest::Client,
}

impl TaskMetadata {
    /// From `ECS_CONTAINER_METADATA_URI_V4`.
    pub fn from_env() -> Self {
        TaskMetadata {
            base: std::env::var(ENDPOINT_VAR)
                .ok()
                .filter(|base| !base.is_empty()),
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    pub async fn read(&self) -> Result<TaskFacts, EcsError> {
        let base = self.base.as_deref().ok_or(EcsError::NotEcs)?;
        let url = format!("{}/task", base.trim_end_matches('/'));
        let fetch = |source| EcsError::Fetch {
            url: url.clone(),
            source,
        };
        let body = self
            .client
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(fetch)?
            .text()
            .await
            .map_err(fetch)?;
        parse_task(&body).map_err(|detail| EcsError::Unexpected { url, detail })
    }
}

/// Parses the endpoint's `/task` answer.
pub fn parse_task(body: &str) -> Result<TaskFacts, String> {
    let task: Task = serde_json::from_str(body).map_err(|error| error.to_string())?;
    let last_part = |arn: &str| arn.rsplit('/').next().unwrap_or_default().to_string();
    let task_id = last_part(&task.task_arn);
    if task_id.is_empty() {
        return Err(format!("TaskARN {:?} has no task id", task.task_arn));
    }
    let network = task
        .containers
        .iter()
        .flat_map(|container| &container.networks)
        .next();
    let ipv4 = match network.and_then(|network| network.ipv4_addresses.first()) {
        None => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| format!("IPv4Addresses holds {text:?}, which is not an address"))?,
        ),
    };
    Ok(TaskFacts {
        task_id,
        cluster: last_part(&task.cluster),
        ipv4,
        network_mode: network.and_then(|network| network.network_mode.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWSVPC: &str = r#"{
        "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/web",
        "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/web/158d1c8083dd49d6b527399fd6414f5c",
        "AvailabilityZone": "us-west-2d",
        "Containers": [
            {"Name": "app", "Networks": [
                {"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.2.106"]}
            ]}
        ]
    }"#;

    #[test]
    fn reads_the_task_id_cluster_and_address() {
        let facts = parse_task(AWSVPC).unwrap();
        assert_eq!(facts.task_id, "158d1c8083dd49d6b527399fd6414f5c");
        assert_eq!(facts.cluster, "web");
        assert_eq!(facts.ipv4, Some(Ipv4Addr::new(10, 0, 2, 106)));
        assert_eq!(facts.network_mode.as_deref(), Some("awsvpc"));
    }

    #[test]
    fn a_cluster_given_by_name_stays_a_name() {
        let body = AWSVPC.replace("arn:aws:ecs:us-west-2:111122223333:cluster/web", "default");
        assert_eq!(parse_task(&body).unwrap().cluster, "default");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse_task("<html>502 Bad Gateway</html>").is_err());
        let bad_ip = AWSVPC.replace("10.0.2.106", "not-an-ip");
        assert!(parse_task(&bad_ip).unwrap_err().contains("not an address"));
        let no_id = AWSVPC.replace("task/web/158d1c8083dd49d6b527399fd6414f5c", "task/");
        assert!(parse_task(&no_id).is_err());
    }

    #[test]
    fn outside_ecs_the_error_says_so() {
        let message = EcsError::NotEcs.to_string();
        assert!(message.contains(ENDPOINT_VAR), "{message}");
        assert!(message.contains("not an ECS task"), "{message}");
    }
}
