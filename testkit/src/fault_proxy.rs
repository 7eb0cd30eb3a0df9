//! An HTTP proxy in front of the Route 53 emulator that injects the faults
//! the real service and network produce: Route 53's own XML errors
//! (`Throttling`, `PriorRequestNotComplete`, `AccessDenied`), bare 500s,
//! requests that hang or are held for a while, answers lost after the
//! change was made, changes still PENDING, and refused connections.
//! It counts the requests it sees by Route 53 action, and keeps when each
//! one arrived and was answered; it can also throttle each action with a
//! token bucket of its own, as Route 53 does.
//!
//! It reads each request itself (head and `Content-Length` body), so it can
//! answer one request on a kept-alive connection and let the next through.
//! A request it lets through goes to the emulator on a connection of its
//! own, marked `Connection: close` both ways, so the client never reuses a
//! connection the proxy is about to close.
//!
//! It runs in the test's own runtime and listens on an OS-chosen loopback
//! port; it never sends traffic anywhere but the emulator it was given.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::token_bucket::TokenBucket;

/// The Route 53 API actions the agent uses, told apart by method and path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    GetHostedZone,
    ListRecords,
    ChangeRecords,
    GetChange,
    Other,
}

const ACTIONS: [Action; 5] = [
    Action::GetHostedZone,
    Action::ListRecords,
    Action::ChangeRecords,
    Action::GetChange,
    Action::Other,
];

impl Action {
    fn of(method: &str, path: &str) -> Action {
        let path = path.split('?').next().unwrap_or("");
        let path = path
            .trim_start_matches("/2013-04-01/")
            .trim_end_matches('/');
        let parts: Vec<&str> = path.split('/').collect();
        match (method, parts.as_slice()) {
            ("POST", ["hostedzone", _, "rrset"]) => Action::ChangeRecords,
            ("GET", ["hostedzone", _, "rrset"]) => Action::ListRecords,
            ("GET", ["hostedzone", _]) => Action::GetHostedZone,
            ("GET", ["change", _]) => Action::GetChange,
            _ => Action::Other,
        }
    }

    fn index(self) -> usize {
        ACTIONS.iter().position(|a| *a == self).unwrap_or(4)
    }
}

/// What the proxy does with a request instead of passing it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 with Route 53's `Throttling` error ("Rate exceeded").
    Throttling,
    /// HTTP 400 with `PriorRequestNotComplete`.
    PriorRequestNotComplete,
    /// HTTP 403 with `AccessDenied`.
    AccessDenied,
    /// HTTP 400 with `InvalidChangeBatch`, in the standard error shape
    /// Route 53 uses for it now (it once had a root element of its own).
    InvalidChangeBatch,
    /// HTTP 500 with an empty body.
    ServerError,
    /// Never answer; keep the connection open.
    Hang,
    /// Hold the request this long, then pass it on.
    Delay(Duration),
    /// Pass the request on, wait for the emulator's answer, then close the
    /// connection without giving it to the client: the change is made, and
    /// the client sees the connection drop.
    Lost,
    /// For GetChange: answer that the change is still PENDING, as Route 53
    /// does for up to a minute or so after a change.
    Pending,
}

/// Which requests a rule applies to, and how often.
struct Rule {
    action: Action,
    /// Only requests whose path or body holds this text (a zone id, a
    /// record name).
    contains: Option<String>,
    /// Faults to apply in turn; the last one repeats when `forever`.
    faults: VecDeque<Fault>,
    forever: bool,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    hang_all: bool,
}

struct Shared {
    upstream: String,
    state: Mutex<State>,
    counts: [AtomicU64; 5],
    refusing: watch::Sender<bool>,
    /// Every request seen, in order of arrival.
    exchanges: Mutex<Vec<Exchange>>,
    /// One bucket per action while throttling, with the time it counts from.
    buckets: Mutex<Option<(Instant, Vec<TokenBucket>)>>,
}

/// One request the proxy saw, and what became of it.
#[derive(Clone, Copy, Debug)]
pub struct Exchange {
    pub action: Action,
    pub arrived: Instant,
    /// When the answer was written back; `None` while pending or when the
    /// client went away first.
    pub answered: Option<Instant>,
    /// Answered with `Throttling` by the proxy's own token bucket.
    pub throttled: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn exchanges(&self) -> MutexGuard<'_, Vec<Exchange>> {
        self.exchanges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the action's token bucket, if any, turns this request away.
    fn over_rate(&self, action: Action, now: Instant) -> bool {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match buckets.as_mut() {
            Some((origin, buckets)) => {
                !buckets[action.index()].take(now.duration_since(*origin).as_secs_f64())
            }
            None => false,
        }
    }

    /// The fault for this request, if any rule takes it.
    fn fault_for(&self, action: Action, path: &str, body: &[u8]) -> Option<Fault> {
        let mut state = self.lock();
        if state.hang_all {
            return Some(Fault::Hang);
        }
        let body = String::from_utf8_lossy(body);
        let position = state.rules.iter().position(|rule| {
            rule.action == action
                && rule
                    .contains
                    .as_deref()
                    .is_none_or(|text| path.contains(text) || body.contains(text))
        })?;
        let rule = &mut state.rules[position];
        let fault = if rule.forever && rule.faults.len() == 1 {
            rule.faults.front().cloned()
        } else {
            rule.faults.pop_front()
        };
        if rule.faults.is_empty() {
            state.rules.remove(position);
        }
        fault
    }
}

/// A running fault proxy. Dropping it stops accepting connections.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on an OS-chosen loopback port in front of `upstream`
    /// (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fault proxy to a loopback port");
        let port = listener.local_addr().expect("fault proxy address").port();
        let (refusing, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State::default()),
            counts: Default::default(),
            refusing,
            exchanges: Mutex::new(Vec::new()),
            buckets: Mutex::new(None),
        });
        let task = tokio::spawn(accept_loop(listener, port, shared.clone()));
        FaultProxy { port, shared, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Applies `faults`, in turn, to the next requests for `action`.
    pub fn inject(&self, action: Action, faults: &[Fault]) {
        self.add(action, None, faults, false);
    }

    /// Applies `fault` to every request for `action` whose path or body
    /// holds `text`, from now on.
    pub fn always(&self, action: Action, text: &str, fault: Fault) {
        self.add(action, Some(text.to_string()), &[fault], true);
    }

    fn add(&self, action: Action, contains: Option<String>, faults: &[Fault], forever: bool) {
        if faults.is_empty() {
            return;
        }
        self.shared.lock().rules.push(Rule {
            action,
            contains,
            faults: faults.iter().cloned().collect(),
            forever,
        });
    }

    /// From now on no request is answered, on open connections or new ones:
    /// a Route 53 endpoint behind a broken network.
    pub fn hang(&self) {
        self.shared.lock().hang_all = true;
    }

    /// While on, the port is closed: connections are refused, and requests
    /// on connections already open are dropped unanswered.
    pub fn refuse(&self, refuse: bool) {
        self.shared.refusing.send_replace(refuse);
    }

    /// From now on, answers `Throttling` to each action's requests beyond
    /// `rate` a second with a burst of `burst`, each action with a bucket of
    /// its own (Route 53 limits each API action separately).
    pub fn throttle(&self, rate: f64, burst: u32) {
        let buckets = ACTIONS
            .iter()
            .map(|_| TokenBucket::new(rate, burst))
            .collect();
        *self
            .shared
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((Instant::now(), buckets));
    }

    /// Every request seen so far, in order of arrival.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.exchanges().clone()
    }

    /// Requests seen for `action`, faulted or passed on.
    pub fn count(&self, action: Action) -> u64 {
        self.shared.counts[action.index()].load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, port: u16, shared: Arc<Shared>) {
    let mut listener = Some(listener);
    let mut refusing = shared.refusing.subscribe();
    loop {
        let Some(open) = &listener else {
            // Closed while refusing: wait to be told to accept again, then
            // take the same port back.
            if refusing.wait_for(|refuse| !*refuse).await.is_err() {
                return;
            }
            listener = rebind(port).await;
            continue;
        };
        tokio::select! {
            accepted = open.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(serve(client, shared.clone()));
                }
            }
            changed = refusing.changed() => {
                if changed.is_err() {
                    return;
                }
                if *refusing.borrow() {
                    listener = None;
                }
            }
        }
    }
}

async fn rebind(port: u16) -> Option<TcpListener> {
    for _ in 0..50 {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return Some(listener);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the fault proxy could not take port {port} back");
}

/// One request as read from the client.
struct Request {
    method: String,
    path: String,
    /// The head's lines after the request line, without `Connection`.
    headers: Vec<String>,
    body: Vec<u8>,
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut client, &mut buffer).await {
        let action = Action::of(&request.method, &request.path);
        shared.counts[action.index()].fetch_add(1, Ordering::Relaxed);
        let arrived = Instant::now();
        let throttled = shared.over_rate(action, arrived);
        let seen = {
            let mut exchanges = shared.exchanges();
            exchanges.push(Exchange {
                action,
                arrived,
                answered: None,
                throttled,
            });
            exchanges.len() - 1
        };
        let answered = || shared.exchanges()[seen].answered = Some(Instant::now());
        if *shared.refusing.borrow() {
            return;
        }
        let fault = if throttled {
            Some(Fault::Throttling)
        } else {
            shared.fault_for(action, &request.path, &request.body)
        };
        let answer = match fault {
            None => {
                if forward(&mut client, &request, &shared.upstream).await {
                    answered();
                }
                return;
            }
            Some(Fault::Delay(period)) => {
                tokio::time::sleep(period).await;
                if forward(&mut client, &request, &shared.upstream).await {
                    answered();
                }
                return;
            }
            Some(Fault::Lost) => {
                forward(&mut tokio::io::sink(), &request, &shared.upstream).await;
                return;
            }
            Some(Fault::Hang) => return std::future::pending().await,
            Some(Fault::Throttling) => error_answer(400, "Throttling", "Rate exceeded"),
            Some(Fault::PriorRequestNotComplete) => error_answer(
                400,
                "PriorRequestNotComplete",
                "The request was rejected because Route 53 was still processing a prior \
                 request.",
            ),
            Some(Fault::AccessDenied) => error_answer(
                403,
                "AccessDenied",
                "User is not authorized to perform: route53:ChangeResourceRecordSets",
            ),
            Some(Fault::InvalidChangeBatch) => error_answer(
                400,
                "InvalidChangeBatch",
                "[RRSet of type A with DNS name is not permitted in zone]",
            ),
            Some(Fault::Pending) => pending_answer(&request.path),
            Some(Fault::ServerError) => {
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_string()
            }
        };
        if client.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
        answered();
    }
}

/// An error answer in Route 53's own shape.
fn error_answer(status: u16, code: &str, message: &str) -> String {
    static REQUEST_IDS: AtomicU64 = AtomicU64::new(0);
    let request_id = format!(
        "fault-proxy-{:08}",
        REQUEST_IDS.fetch_add(1, Ordering::Relaxed)
    );
    let reason = if status == 403 {
        "Forbidden"
    } else {
        "Bad Request"
    };
    let body = format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse \
         xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>{request_id}</RequestId></ErrorResponse>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\nx-amzn-RequestId: \
         {request_id}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A GetChange answer saying the change the path names is PENDING.
fn pending_answer(path: &str) -> String {
    let change_id = path
        .split('?')
        .next()
        .and_then(|path| path.rsplit('/').next())
        .unwrap_or_default();
    let body = format!(
        "<?xml version=\"1.0\"?>\n<GetChangeResponse \
         xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeInfo>\
         <Id>/change/{change_id}</Id><Status>PENDING</Status>\
         <SubmittedAt>2026-01-01T00:00:00.000Z</SubmittedAt></ChangeInfo></GetChangeResponse>"
    );
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads one request; `None` when the client closed or sent nonsense.
/// Bytes past the request stay in `buffer` for the next one.
async fn read_request(client: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            break end;
        }
        if !read_more(client, buffer).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let mut length = 0;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok()?;
        }
        if !name.eq_ignore_ascii_case("connection") {
            headers.push(line.to_string());
        }
    }
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        if !read_more(client, buffer).await {
            return None;
        }
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(read) => {
            buffer.extend_from_slice(&chunk[..read]);
            true
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Passes the request to the emulator and its answer back, then closes the
/// client's connection (the answer says so). True when the whole answer was
/// passed back.
async fn forward<C>(client: &mut C, request: &Request, upstream: &str) -> bool
where
    C: AsyncWrite + Unpin,
{
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return false;
    };
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for header in &request.headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    if server.write_all(head.as_bytes()).await.is_err()
        || server.write_all(&request.body).await.is_err()
    {
        return false;
    }

    // Rewrite the answer's head so it says `Connection: close` whatever the
    // emulator chose, then pass the rest through untouched.
    let mut answer = Vec::new();
    let head_end = loop {
        if let Some(end) = find(&answer, b"\r\n\r\n") {
            break end;
        }
        if !read_more(&mut server, &mut answer).await {
            return false;
        }
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).into_owned();
    let mut rewritten: String = head
        .split("\r\n")
        .filter(|line| {
            !line
                .split_once(':')
                .is_some_and(|(name, _)| name.eq_ignore_ascii_case("connection"))
        })
        .map(|line| format!("{line}\r\n"))
        .collect();
    rewritten.push_str("Connection: close\r\n\r\n");
    if client.write_all(rewritten.as_bytes()).await.is_err()
        || client.write_all(&answer[head_end + 4..]).await.is_err()
    {
        return false;
    }
    let copied = tokio::io::copy(&mut server, client).await;
    let _ = client.shutdown().await;
    copied.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_told_apart_by_method_and_path() {
        assert_eq!(
            Action::of("POST", "/2013-04-01/hostedzone/Z1/rrset/"),
            Action::ChangeRecords
        );
        assert_eq!(
            Action::of("GET", "/2013-04-01/hostedzone/Z1/rrset?name=a"),
            Action::ListRecords
        );
        assert_eq!(
            Action::of("GET", "/2013-04-01/hostedzone/Z1"),
            Action::GetHostedZone
        );
        assert_eq!(
            Action::of("GET", "/2013-04-01/change/C1"),
            Action::GetChange
        );
        assert_eq!(Action::of("POST", "/2013-04-01/hostedzone"), Action::Other);
    }

    #[test]
    fn errors_take_route53s_xml_shape() {
        let answer = error_answer(400, "Throttling", "Rate exceeded");
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        assert!(answer.contains(
            "<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
             <Error><Type>Sender</Type><Code>Throttling</Code>"
        ));
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
