//! A strict stand-in for the EC2 instance metadata service (IMDSv2).
//!
//! `ImdsServer` owns a small HTTP server on a loopback port and the metadata
//! it serves. It is stricter than most fakes on purpose: no token, no answer
//! (IMDSv1 is treated as disabled, as in many fleets), tokens expire after
//! their TTL, and the tag paths vanish when instance metadata tags are off.
//! A test changes the metadata, and switches faults on and off, through the
//! handle while the agent is running.
//!
//! The server runs on a thread of its own with its own tokio runtime. A test
//! that blocks its runtime (waiting on a child process, say) therefore does
//! not stall the server, and token expiry follows the wall clock even when a
//! test pauses tokio time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use tokio::sync::oneshot;

/// Header that asks for a token's lifetime, and reports it in the answer.
pub const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";

/// Header that carries the session token on metadata requests.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";

/// The longest token lifetime IMDSv2 grants: six hours.
pub const MAX_TOKEN_TTL_SECONDS: u64 = 21_600;

/// Whether the server also answers the `/_control/` routes that let another
/// process (a demo script) change the metadata. Real IMDS has no such thing,
/// so in-process tests leave it off and use the handle instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlApi {
    Off,
    On,
}

/// The metadata of a typical instance, as `ImdsServer::preset_instance`
/// serves it. Change fields before `ImdsServer::with_instance` to describe
/// another one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDefaults {
    pub instance_id: String,
    pub region: String,
    pub availability_zone: String,
    pub local_ipv4: String,
    pub local_hostname: String,
    pub mac: String,
    /// `None` leaves `public-ipv4` absent, so it answers 404 as on an
    /// instance without a public address.
    pub public_ipv4: Option<String>,
    /// Served under `tags/instance/<key>`.
    pub tags: Vec<(String, String)>,
}

impl Default for InstanceDefaults {
    fn default() -> Self {
        InstanceDefaults {
            instance_id: "i-0123456789abcdef0".into(),
            region: "us-east-1".into(),
            availability_zone: "us-east-1a".into(),
            local_ipv4: "10.0.0.10".into(),
            local_hostname: "ip-10-0-0-10.ec2.internal".into(),
            mac: "0e:12:34:56:78:9a".into(),
            public_ipv4: None,
            tags: vec![("Name".into(), "web-1".into())],
        }
    }
}

impl InstanceDefaults {
    /// The metadata paths (below `/latest/meta-data/`) and their values.
    fn entries(&self) -> Vec<(String, String)> {
        let mut entries = vec![
            ("instance-id".to_string(), self.instance_id.clone()),
            ("placement/region".into(), self.region.clone()),
            (
                "placement/availability-zone".into(),
                self.availability_zone.clone(),
            ),
            ("local-ipv4".into(), self.local_ipv4.clone()),
            ("local-hostname".into(), self.local_hostname.clone()),
            ("mac".into(), self.mac.clone()),
        ];
        if let Some(ip) = &self.public_ipv4 {
            entries.push(("public-ipv4".into(), ip.clone()));
        }
        for (key, value) in &self.tags {
            entries.push((format!("tags/instance/{key}"), value.clone()));
        }
        entries
    }
}

/// A running fake IMDS. Clones are cheap and share the same server and
/// metadata; the server stops when the last clone is dropped.
#[derive(Clone)]
pub struct ImdsServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _stop: Arc<StopOnDrop>,
}

impl ImdsServer {
    /// Starts a server with no metadata at all on an OS-chosen loopback port.
    pub async fn start() -> ImdsServer {
        ImdsServer::bind(0, ControlApi::Off)
            .await
            .expect("binding the fake IMDS to a loopback port")
    }

    /// Starts a server that serves `instance`.
    pub async fn with_instance(instance: InstanceDefaults) -> ImdsServer {
        let server = ImdsServer::start().await;
        server.set_instance(&instance);
        server
    }

    /// Starts a server that serves `InstanceDefaults::default()`.
    pub async fn preset_instance() -> ImdsServer {
        ImdsServer::with_instance(InstanceDefaults::default()).await
    }

    /// Starts a server with no metadata on `127.0.0.1:port` (0 lets the OS
    /// choose), with or without the control routes.
    pub async fn bind(port: u16, control: ControlApi) -> io::Result<ImdsServer> {
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new());
        let app = router(shared.clone(), control);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("fake-imds-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        result = axum::serve(listener, app) => {
                            if let Err(error) = result {
                                tracing::error!(%error, "fake IMDS stopped serving");
                            }
                        }
                        _ = stop_rx => {}
                    }
                });
                // Dropping the runtime here also ends connections left
                // hanging by `hang_token_put`.
            })?;

        Ok(ImdsServer {
            shared,
            addr,
            _stop: Arc::new(StopOnDrop(Some(stop_tx))),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`, for
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the value at `path`, relative to `/latest/meta-data/`
    /// (leading and trailing slashes are ignored).
    pub fn set(&self, path: &str, value: impl Into<String>) {
        let path = normalise_path(path).to_string();
        self.shared.lock().metadata.insert(path, value.into());
    }

    /// Removes `path` and everything below it. Returns whether anything was
    /// there.
    pub fn remove(&self, path: &str) -> bool {
        self.shared.lock().remove_subtree(normalise_path(path))
    }

    /// The value stored at exactly `path`, whether or not tags are enabled.
    pub fn get(&self, path: &str) -> Option<String> {
        self.shared
            .lock()
            .metadata
            .get(normalise_path(path))
            .cloned()
    }

    /// Adds (or overwrites) every path of `instance`.
    pub fn set_instance(&self, instance: &InstanceDefaults) {
        let mut state = self.shared.lock();
        for (path, value) in instance.entries() {
            state.metadata.insert(path, value);
        }
    }

    /// Turns instance metadata tags on or off. While off, `tags` and every
    /// path below it answer 404; the stored tags are kept for when they are
    /// turned back on.
    pub fn set_tags_enabled(&self, enabled: bool) {
        self.shared.lock().tags_enabled = enabled;
    }

    pub fn tags_enabled(&self) -> bool {
        self.shared.lock().tags_enabled
    }

    /// Makes the next `count` metadata GETs answer `status` (with an empty
    /// body) before any token check.
    pub fn fail_next(&self, count: u32, status: u16) {
        let status = StatusCode::from_u16(status).expect("fail_next needs a valid HTTP status");
        self.shared.lock().failures = (count > 0).then_some((count, status));
    }

    /// While on, token PUTs are accepted but never answered, as when the
    /// hop limit drops the reply to a container; GETs still answer 401.
    pub fn hang_token_put(&self, hang: bool) {
        self.shared.lock().hang_token_put = hang;
    }

    /// Forgets every token issued so far, as if all had expired.
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// Every session token issued so far, in order, expired ones too.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.lock().issued.clone()
    }

    /// Token PUTs received, answered or not.
    pub fn token_requests(&self) -> u64 {
        self.shared.token_requests.load(Ordering::Relaxed)
    }

    /// Metadata GETs received, whatever their answer.
    pub fn get_requests(&self) -> u64 {
        self.shared.get_requests.load(Ordering::Relaxed)
    }

    pub fn reset_counters(&self) {
        self.shared.token_requests.store(0, Ordering::Relaxed);
        self.shared.get_requests.store(0, Ordering::Relaxed);
    }
}

/// Tells the server thread to stop when the last handle goes away.
struct StopOnDrop(Option<oneshot::Sender<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            // The server may already be gone; nothing to do then.
            let _ = stop.send(());
        }
    }
}

struct Shared {
    state: Mutex<MetadataState>,
    token_requests: AtomicU64,
    get_requests: AtomicU64,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            state: Mutex::new(MetadataState {
                metadata: BTreeMap::new(),
                tags_enabled: true,
                tokens: HashMap::new(),
                failures: None,
                hang_token_put: false,
                token_hasher: RandomState::new(),
                tokens_issued: 0,
                issued: Vec::new(),
            }),
            token_requests: AtomicU64::new(0),
            get_requests: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MetadataState> {
        // A panicking test thread must not take the server down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct MetadataState {
    /// Paths relative to `/latest/meta-data/`, without surrounding slashes.
    metadata: BTreeMap<String, String>,
    tags_enabled: bool,
    /// Token to the instant it stops being valid.
    tokens: HashMap<String, Instant>,
    failures: Option<(u32, StatusCode)>,
    hang_token_put: bool,
    token_hasher: RandomState,
    tokens_issued: u64,
    /// Every token issued, expired or not, for tests that check where
    /// tokens end up.
    issued: Vec<String>,
}

impl MetadataState {
    /// Makes an unguessable-enough token (this is a test double, not a
    /// security boundary) and remembers it until `ttl` has passed.
    fn issue_token(&mut self, ttl: Duration) -> String {
        let now = Instant::now();
        self.tokens.retain(|_, expires| *expires > now);
        self.tokens_issued += 1;
        let mut token = String::new();
        for half in 0..2u64 {
            let mut hasher = self.token_hasher.build_hasher();
            hasher.write_u64(self.tokens_issued);
            hasher.write_u64(half);
            token.push_str(&format!("{:016x}", hasher.finish()));
        }
        self.tokens.insert(token.clone(), now + ttl);
        self.issued.push(token.clone());
        token
    }

    fn token_is_valid(&self, token: &str) -> bool {
        self.tokens
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires)
    }

    /// Removes `path` and every path below it; says whether any existed.
    fn remove_subtree(&mut self, path: &str) -> bool {
        let prefix = format!("{path}/");
        let before = self.metadata.len();
        self.metadata
            .retain(|key, _| key != path && !key.starts_with(&prefix));
        self.metadata.len() != before
    }

    /// Takes one pending injected failure, if any.
    fn take_failure(&mut self) -> Option<StatusCode> {
        let (count, status) = self.failures?;
        self.failures = (count > 1).then_some((count - 1, status));
        Some(status)
    }

    /// What a GET of `path` answers: the value of a leaf, or the names of a
    /// directory's children one per line (subdirectories with a trailing
    /// slash), or nothing.
    fn lookup(&self, path: &str) -> Option<String> {
        if !self.visible(path) {
            return None;
        }
        if let Some(value) = self.metadata.get(path) {
            return Some(value.clone());
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let children: BTreeSet<String> = self
            .metadata
            .keys()
            .filter(|key| key.starts_with(&prefix) && self.visible(key))
            .map(|key| match key[prefix.len()..].split_once('/') {
                Some((child, _)) => format!("{child}/"),
                None => key[prefix.len()..].to_string(),
            })
            .collect();
        if children.is_empty() {
            return None;
        }
        Some(children.into_iter().collect::<Vec<_>>().join("\n"))
    }

    fn visible(&self, path: &str) -> bool {
        let is_tag_path = path == "tags" || path.starts_with("tags/");
        self.tags_enabled || !is_tag_path
    }
}

fn normalise_path(path: &str) -> &str {
    path.trim_matches('/')
}

fn router(shared: Arc<Shared>, control: ControlApi) -> Router {
    let router = Router::new()
        .route("/latest/api/token", put(put_token))
        .route("/latest/meta-data", get(get_metadata_root))
        .route("/latest/meta-data/", get(get_metadata_root))
        .route("/latest/meta-data/{*path}", get(get_metadata));
    let router = match control {
        ControlApi::Off => router,
        ControlApi::On => router
            .route(
                "/_control/meta-data/{*path}",
                put(control_set).delete(control_remove),
            )
            .route("/_control/tags-enabled", put(control_tags_enabled)),
    };
    router.with_state(shared)
}

async fn put_token(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.token_requests.fetch_add(1, Ordering::Relaxed);

    let hang = shared.lock().hang_token_put;
    if hang {
        std::future::pending::<()>().await;
    }
    // Real IMDS refuses token requests that went through a proxy.
    if headers.contains_key("x-forwarded-for") {
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some(ttl_seconds) = requested_ttl(&headers) else {
        return StatusCode::BAD_REQUEST.into_response();
    };

    let token = shared.lock().issue_token(Duration::from_secs(ttl_seconds));
    ([(TOKEN_TTL_HEADER, ttl_seconds.to_string())], token).into_response()
}

fn requested_ttl(headers: &HeaderMap) -> Option<u64> {
    let ttl: u64 = headers.get(TOKEN_TTL_HEADER)?.to_str().ok()?.parse().ok()?;
    (1..=MAX_TOKEN_TTL_SECONDS).contains(&ttl).then_some(ttl)
}

async fn get_metadata_root(state: State<Arc<Shared>>, headers: HeaderMap) -> Response {
    answer_metadata(&state, "", &headers)
}

async fn get_metadata(
    state: State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer_metadata(&state, normalise_path(&path), &headers)
}

fn answer_metadata(shared: &Shared, path: &str, headers: &HeaderMap) -> Response {
    shared.get_requests.fetch_add(1, Ordering::Relaxed);
    let mut state = shared.lock();

    if let Some(status) = state.take_failure() {
        return status.into_response();
    }
    let token = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
    if !token.is_some_and(|token| state.token_is_valid(token)) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match state.lookup(path) {
        Some(body) => body.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn control_set(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    body: String,
) -> StatusCode {
    let path = normalise_path(&path).to_string();
    shared.lock().metadata.insert(path, body);
    StatusCode::NO_CONTENT
}

async fn control_remove(State(shared): State<Arc<Shared>>, Path(path): Path<String>) -> StatusCode {
    if shared.lock().remove_subtree(normalise_path(&path)) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn control_tags_enabled(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    match body.trim() {
        "true" => shared.lock().tags_enabled = true,
        "false" => shared.lock().tags_enabled = false,
        _ => return StatusCode::BAD_REQUEST,
    }
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::imds::Client as ImdsClient;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn sdk_client(server: &ImdsServer) -> ImdsClient {
        ImdsClient::builder()
            .endpoint(server.endpoint())
            .expect("the fake's endpoint is a valid URI")
            .build()
    }

    /// Sends one raw HTTP/1.1 request and returns the status and body.
    async fn raw(server: &ImdsServer, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(server.addr())
            .await
            .expect("connecting to the fake IMDS");
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n");
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("sending");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("reading");
        let status = response[9..12].parse().expect("a status code");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("");
        (status, body.to_string())
    }

    async fn token(server: &ImdsServer) -> String {
        let (status, body) = raw(
            server,
            "PUT",
            "/latest/api/token",
            &["X-aws-ec2-metadata-token-ttl-seconds: 60"],
        )
        .await;
        assert_eq!(status, 200);
        body
    }

    #[tokio::test]
    async fn sdk_client_reads_the_preset_instance() {
        let server = ImdsServer::preset_instance().await;
        let client = sdk_client(&server);
        let get = |path: &'static str| {
            let client = client.clone();
            async move { client.get(path).await.map(|s| s.as_ref().to_string()) }
        };

        assert_eq!(
            get("/latest/meta-data/instance-id").await.unwrap(),
            "i-0123456789abcdef0"
        );
        assert_eq!(
            get("/latest/meta-data/placement/region").await.unwrap(),
            "us-east-1"
        );
        assert_eq!(
            get("/latest/meta-data/local-ipv4").await.unwrap(),
            "10.0.0.10"
        );
        assert_eq!(
            get("/latest/meta-data/tags/instance").await.unwrap(),
            "Name"
        );
        assert_eq!(
            get("/latest/meta-data/tags/instance/Name").await.unwrap(),
            "web-1"
        );
        assert!(get("/latest/meta-data/public-ipv4").await.is_err());
        // One token serves every read.
        assert_eq!(server.token_requests(), 1);
        assert_eq!(server.get_requests(), 6);
    }

    #[tokio::test]
    async fn directories_list_their_children() {
        let server = ImdsServer::preset_instance().await;
        let token = token(&server).await;
        let auth = format!("X-aws-ec2-metadata-token: {token}");

        let (status, body) = raw(&server, "GET", "/latest/meta-data/placement/", &[&auth]).await;
        assert_eq!((status, body.as_str()), (200, "availability-zone\nregion"));
        let (_, root) = raw(&server, "GET", "/latest/meta-data/", &[&auth]).await;
        assert!(root.lines().any(|l| l == "placement/"), "{root}");
        assert!(root.lines().any(|l| l == "tags/"), "{root}");
    }

    #[tokio::test]
    async fn token_put_is_strict_about_its_headers() {
        let server = ImdsServer::preset_instance().await;
        let path = "/latest/api/token";

        assert_eq!(raw(&server, "PUT", path, &[]).await.0, 400);
        for ttl in ["0", "21601", "-1", "soon"] {
            let header = format!("X-aws-ec2-metadata-token-ttl-seconds: {ttl}");
            assert_eq!(
                raw(&server, "PUT", path, &[&header]).await.0,
                400,
                "ttl {ttl}"
            );
        }
        let proxied = [
            "X-aws-ec2-metadata-token-ttl-seconds: 60",
            "X-Forwarded-For: 10.0.0.1",
        ];
        assert_eq!(raw(&server, "PUT", path, &proxied).await.0, 403);
        assert_eq!(raw(&server, "GET", path, &[]).await.0, 405);
        assert_eq!(server.token_requests(), 6);
    }

    #[tokio::test]
    async fn reads_without_a_valid_token_get_401() {
        let server = ImdsServer::preset_instance().await;
        let path = "/latest/meta-data/instance-id";

        assert_eq!(raw(&server, "GET", path, &[]).await.0, 401);
        let forged = "X-aws-ec2-metadata-token: not-a-token";
        assert_eq!(raw(&server, "GET", path, &[forged]).await.0, 401);

        let auth = format!("X-aws-ec2-metadata-token: {}", token(&server).await);
        assert_eq!(raw(&server, "GET", path, &[&auth]).await.0, 200);
        server.expire_tokens();
        assert_eq!(raw(&server, "GET", path, &[&auth]).await.0, 401);
        let issued = server.issued_tokens();
        assert_eq!(issued.len(), 1);
        assert!(auth.ends_with(&issued[0]), "{auth} {issued:?}");
    }

    #[tokio::test]
    async fn tokens_expire_after_their_ttl() {
        let server = ImdsServer::preset_instance().await;
        let ttl = "X-aws-ec2-metadata-token-ttl-seconds: 1";
        let (status, token) = raw(&server, "PUT", "/latest/api/token", &[ttl]).await;
        assert_eq!(status, 200);
        let auth = format!("X-aws-ec2-metadata-token: {token}");
        let path = "/latest/meta-data/instance-id";

        assert_eq!(raw(&server, "GET", path, &[&auth]).await.0, 200);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(raw(&server, "GET", path, &[&auth]).await.0, 401);
    }

    #[tokio::test]
    async fn token_answer_carries_the_ttl_header() {
        let server = ImdsServer::start().await;
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let request = "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n\
            X-aws-ec2-metadata-token-ttl-seconds: 300\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(
            response
                .to_ascii_lowercase()
                .contains("x-aws-ec2-metadata-token-ttl-seconds: 300"),
            "{response}"
        );
    }

    #[tokio::test]
    async fn disabled_tags_answer_404_and_come_back() {
        let server = ImdsServer::preset_instance().await;
        let client = sdk_client(&server);
        let path = "/latest/meta-data/tags/instance/Name";

        server.set_tags_enabled(false);
        assert!(client.get(path).await.is_err());
        assert!(client.get("/latest/meta-data/tags/instance").await.is_err());
        server.set_tags_enabled(true);
        assert_eq!(client.get(path).await.unwrap().as_ref(), "web-1");
    }

    #[tokio::test]
    async fn changes_made_while_running_are_served() {
        let server = ImdsServer::preset_instance().await;
        let client = sdk_client(&server);
        let handle = server.clone();

        handle.set("/public-ipv4", "203.0.113.7");
        handle.set("tags/instance/Role", "web");
        assert_eq!(
            client
                .get("/latest/meta-data/public-ipv4")
                .await
                .unwrap()
                .as_ref(),
            "203.0.113.7"
        );
        assert_eq!(
            client
                .get("/latest/meta-data/tags/instance")
                .await
                .unwrap()
                .as_ref(),
            "Name\nRole"
        );

        assert!(handle.remove("tags/instance"));
        assert_eq!(server.get("tags/instance/Name"), None);
        assert!(client.get("/latest/meta-data/tags/instance").await.is_err());
    }

    #[tokio::test]
    async fn injected_failures_are_retried_by_the_sdk_client() {
        let server = ImdsServer::preset_instance().await;
        let client = sdk_client(&server);

        server.fail_next(2, 500);
        let id = client.get("/latest/meta-data/instance-id").await.unwrap();
        assert_eq!(id.as_ref(), "i-0123456789abcdef0");
        assert_eq!(server.get_requests(), 3);
    }

    /// Documents a trap for the agent: the SDK client caches its token for
    /// the token's TTL and does not drop it on a 401, so tokens revoked early
    /// (an IMDS restart) keep failing until a new client is built.
    #[tokio::test]
    async fn sdk_client_keeps_a_revoked_token_until_rebuilt() {
        let server = ImdsServer::preset_instance().await;
        let client = sdk_client(&server);
        client.get("/latest/meta-data/instance-id").await.unwrap();

        server.expire_tokens();
        assert!(client.get("/latest/meta-data/instance-id").await.is_err());
        assert_eq!(server.token_requests(), 1);

        let rebuilt = sdk_client(&server);
        rebuilt.get("/latest/meta-data/instance-id").await.unwrap();
        assert_eq!(server.token_requests(), 2);
    }

    #[tokio::test]
    async fn hanging_token_put_times_out_while_gets_answer_401() {
        let server = ImdsServer::preset_instance().await;
        server.hang_token_put(true);
        let client = ImdsClient::builder()
            .endpoint(server.endpoint())
            .unwrap()
            .read_timeout(Duration::from_millis(200))
            .max_attempts(1)
            .build();

        let started = Instant::now();
        assert!(client.get("/latest/meta-data/instance-id").await.is_err());
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(server.token_requests(), 1);
        assert_eq!(
            raw(&server, "GET", "/latest/meta-data/instance-id", &[])
                .await
                .0,
            401
        );
    }

    #[tokio::test]
    async fn control_api_is_off_unless_asked_for() {
        let server = ImdsServer::preset_instance().await;
        let (status, _) = raw(&server, "PUT", "/_control/tags-enabled", &[]).await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn control_api_changes_metadata_without_a_token() {
        let server = ImdsServer::bind(0, ControlApi::On).await.unwrap();
        server.set_instance(&InstanceDefaults::default());
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let request = "PUT /_control/meta-data/public-ipv4 HTTP/1.1\r\nHost: x\r\n\
            Content-Length: 11\r\nConnection: close\r\n\r\n203.0.113.9";
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 204"), "{response}");
        assert_eq!(server.get("public-ipv4").as_deref(), Some("203.0.113.9"));

        assert_eq!(
            raw(&server, "DELETE", "/_control/meta-data/tags", &[])
                .await
                .0,
            204
        );
        assert_eq!(server.get("tags/instance/Name"), None);
        assert_eq!(
            raw(&server, "DELETE", "/_control/meta-data/tags", &[])
                .await
                .0,
            404
        );
    }
}
