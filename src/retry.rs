//! Retrying: which failures are worth another attempt, how long to wait
//! before it, and the loop that does both.
//!
//! Which layer retries what, so that attempts never multiply:
//!
//! - **Route 53.** The SDK client makes exactly one attempt per call (its own
//!   retries are switched off in [`crate::route53`]), and each attempt is cut
//!   off after `request_timeout`. [`Retry::call`] here is the only retry
//!   layer: every retryable failure is tried again after a capped,
//!   fully jittered exponential backoff, with no limit on attempts. While
//!   the agent runs, its waits give way to shutdown; at shutdown the caller
//!   bounds the whole call by what is left of `shutdown_timeout`.
//! - **IMDS.** The SDK's IMDS client keeps its own retries (4 attempts, 1 s
//!   connect and read timeouts, for 5xx, 401 and timeouts); a read that still
//!   fails is tried again at the next poll, and the records stay as they were
//!   (see [`crate::metadata`]). `register` alone, which must end registered,
//!   reads again by [`Backoff`] while the failure is retryable (see
//!   `MetadataError`'s [`Classify`]).
//!
//! The pure parts ([`Backoff`], [`BootJitter`], [`classify_answer`]) take the
//! random number generator as an argument, so that tests and simulations can
//! run them on a seeded one in virtual time.

use std::fmt;
use std::time::Duration;

use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use rand::rngs::{SmallRng, SysRng};
use rand::{Rng, RngExt, SeedableRng};
use tokio::time::sleep;
use tracing::warn;

use crate::notify;
use crate::shutdown::Shutdown;

/// The first retry waits up to this long.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// No retry waits longer than this. Route 53 refills its token bucket at
/// about 10 requests per second per account; 30 s lets a thousand instances
/// that booted together spread out well below that.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(30);
/// The longest random delay before the first write.
pub const DEFAULT_BOOT_JITTER: Duration = Duration::from_secs(5);

/// Error codes that mean "not now" rather than "not like this": Route 53's
/// own throttling and busy-zone answers, and the generic AWS ones for an
/// overloaded or failing service.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
];

/// The retryable codes by which the service says it is there and only
/// asks the caller to wait its turn: throttling, and a zone still applying
/// an earlier change.
const BUSY_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// True when an error code says the service is busy, not gone: see
/// [`Classify::is_busy`].
pub fn is_busy_code(code: Option<&str>) -> bool {
    code.is_some_and(|code| BUSY_CODES.contains(&code))
}

/// Whether a failure is worth another attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Throttling, a busy zone, a 5xx, a timeout, a connection refused or
    /// reset: the same request may well succeed later.
    Retryable,
    /// The request itself is wrong for Route 53 (`InvalidChangeBatch`,
    /// `NoSuchHostedZone`, `AccessDenied`, `InvalidInput`, ...): sending it
    /// again changes nothing.
    Final,
}

/// An error that knows its [`Class`].
pub trait Classify {
    fn class(&self) -> Class;

    /// True when the service answered and only asked to wait its turn
    /// (throttling, a busy zone): proof that it is reachable, unlike a
    /// timeout or a refused connection.
    fn is_busy(&self) -> bool {
        false
    }
}

/// Classifies an answer from the service by its HTTP status and error code.
/// Known retryable codes win; otherwise 5xx and 429 are retryable and every
/// other answer is final.
pub fn classify_answer(status: Option<u16>, code: Option<&str>) -> Class {
    if code.is_some_and(|code| RETRYABLE_CODES.contains(&code)) {
        return Class::Retryable;
    }
    match status {
        Some(status) if status >= 500 || status == 429 => Class::Retryable,
        _ => Class::Final,
    }
}

/// Classifies an SDK failure. Timeouts, unreadable answers and failures to
/// reach the endpoint (refused, reset, DNS, and credentials that could not be
/// loaded yet) are retryable; a request the SDK could not even build is
/// final; the service's own answers go through [`classify_answer`].
pub fn classify_sdk<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Class {
    match error {
        SdkError::ConstructionFailure(_) => Class::Final,
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Class::Retryable,
        SdkError::DispatchFailure(failure) if failure.is_user() => Class::Final,
        SdkError::DispatchFailure(_) => Class::Retryable,
        SdkError::ServiceError(service) => {
            classify_answer(Some(service.raw().status().as_u16()), service.err().code())
        }
        // A kind of failure the SDK may add later is not known to pass.
        _ => Class::Final,
    }
}

/// Capped exponential backoff with full jitter: before retry `n` (counting
/// from 0), wait a uniformly random time between zero and
/// `min(cap, base * 2^n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: DEFAULT_BACKOFF_BASE,
            cap: DEFAULT_BACKOFF_CAP,
        }
    }
}

impl Backoff {
    /// The longest wait before retry `retry`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A random wait before retry `retry`.
    pub fn delay<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        up_to(self.ceiling(retry), rng)
    }
}

/// A random delay before the first write, so that a fleet launched together
/// does not write all at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootJitter {
    pub max: Duration,
}

impl BootJitter {
    pub fn delay<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        up_to(self.max, rng)
    }
}

/// A uniformly random duration in `0..=max`, to the nanosecond.
fn up_to<R: Rng + ?Sized>(max: Duration, rng: &mut R) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=nanos))
}

/// A generator seeded by the operating system, so that instances booted from
/// one image still draw different delays. Should the OS refuse, the clock
/// and process id stand in: worse spreading, but no failure.
pub fn os_seeded() -> SmallRng {
    SmallRng::try_from_rng(&mut SysRng).unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or_default();
        SmallRng::seed_from_u64(nanos ^ u64::from(std::process::id()))
    })
}

/// Why [`Retry::call`] stopped without a result.
#[derive(Debug)]
pub enum GaveUp<E> {
    /// The failure is final: retrying cannot help.
    Final(E),
    /// Shutdown was asked for while waiting to retry.
    Interrupted,
}

/// Runs calls again after retryable failures, waiting by a [`Backoff`].
#[derive(Debug)]
pub struct Retry<R = SmallRng> {
    pub backoff: Backoff,
    rng: R,
    /// While set, every wait gives way to shutdown.
    interrupt: Option<Shutdown>,
    /// While set, systemd is asked to wait longer for the start before
    /// every wait on a busy service, by the wait and this much more.
    start_slack: Option<Duration>,
    /// The call not finished yet: see [`Retry::under_way`].
    under_way: Option<UnderWay>,
}

/// A call [`Retry::call`] has not finished.
#[derive(Debug)]
struct UnderWay {
    what: String,
    /// The attempt sent last, from 1.
    attempt: u32,
    /// How an attempt failed: the one before the last, or while `waiting`
    /// the last.
    failed: Option<String>,
    /// Between a failed attempt and the next.
    waiting: bool,
}

impl fmt::Display for UnderWay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let UnderWay {
            what,
            attempt,
            failed,
            waiting,
        } = self;
        match (failed, waiting) {
            (Some(failed), true) => write!(
                f,
                "{what} failed (attempt {attempt}: {failed}) and was waiting to try again"
            ),
            (Some(failed), false) => write!(
                f,
                "{what} had no answer to attempt {attempt} (attempt {} failed: {failed})",
                attempt.saturating_sub(1)
            ),
            (None, _) => write!(f, "{what} had no answer to attempt {attempt}"),
        }
    }
}

impl<R: Rng> Retry<R> {
    pub fn new(backoff: Backoff, rng: R) -> Self {
        Retry {
            backoff,
            rng,
            interrupt: None,
            start_slack: None,
            under_way: None,
        }
    }

    /// What the last call left unfinished, for a caller that stops waiting
    /// for it (a one-shot command out of time): the call whose attempt has
    /// not answered, or that waits to try again, with the failure before.
    /// `None` when no call is under way. A call that hangs logs nothing, so
    /// only this can name it.
    pub fn under_way(&self) -> Option<String> {
        self.under_way.as_ref().map(ToString::to_string)
    }

    /// While `slack` is set, a retry that waits on a busy service (see
    /// [`Classify::is_busy`]) first asks systemd to extend the start timeout
    /// by the wait plus `slack`; `None` once the start is over. A service
    /// that does not answer at all earns no extension, so the start fails
    /// in bounded time.
    pub fn extend_start_while_busy(&mut self, slack: Option<Duration>) {
        self.start_slack = slack;
    }

    /// Asks systemd, while the start is being extended, to allow `wait`
    /// more (plus the slack) before READY=1.
    pub fn extend_start(&self, wait: Duration) {
        if let Some(slack) = self.start_slack {
            notify::extend_start(wait.saturating_add(slack));
        }
    }

    /// Makes every later wait give way to `shutdown` (or, with `None`, run to
    /// its end: at shutdown the deadline bounds the caller instead).
    pub fn interrupt_on(&mut self, shutdown: Option<Shutdown>) {
        self.interrupt = shutdown;
    }

    /// The generator, for other random delays drawn alongside.
    pub fn rng(&mut self) -> &mut R {
        &mut self.rng
    }

    /// Calls `attempt` until it succeeds or fails for good. Between attempts
    /// it waits by the backoff; there is no limit on attempts. `attempt` may
    /// be an async closure that borrows mutably what it calls (the agent's
    /// own pass, say), or a plain one that returns a future.
    pub async fn call<T, E, F>(&mut self, what: &str, mut attempt: F) -> Result<T, GaveUp<E>>
    where
        F: AsyncFnMut() -> Result<T, E>,
        E: Classify + fmt::Display,
    {
        let mut retry = 0;
        self.under_way = Some(UnderWay {
            what: what.to_string(),
            attempt: 1,
            failed: None,
            waiting: false,
        });
        loop {
            let error = match attempt().await {
                Ok(value) => {
                    self.under_way = None;
                    return Ok(value);
                }
                Err(error) => error,
            };
            if error.class() == Class::Final {
                self.under_way = None;
                return Err(GaveUp::Final(error));
            }
            if let Some(under_way) = &mut self.under_way {
                under_way.failed = Some(error.to_string());
                under_way.waiting = true;
            }
            let delay = self.backoff.delay(retry, &mut self.rng);
            warn!(
                call = what, attempt = retry + 1, retry_in_ms = delay.as_millis() as u64,
                error = %error, "call failed; will retry"
            );
            notify::status(&format!(
                "retrying {what} (attempt {} failed: {error})",
                retry + 1
            ));
            if error.is_busy() {
                self.extend_start(delay);
            }
            if !self.wait(delay).await {
                return Err(GaveUp::Interrupted);
            }
            retry = retry.saturating_add(1);
            if let Some(under_way) = &mut self.under_way {
                under_way.attempt = retry.saturating_add(1);
                under_way.waiting = false;
            }
        }
    }

    /// Asks `check` until it answers true, waiting by the backoff between
    /// questions; failures of `check` itself are retried as in [`call`].
    ///
    /// [`call`]: Retry::call
    pub async fn poll_until<E, F>(&mut self, what: &str, mut check: F) -> Result<(), GaveUp<E>>
    where
        F: AsyncFnMut() -> Result<bool, E>,
        E: Classify + fmt::Display,
    {
        let mut poll = 0;
        while !self.call(what, &mut check).await? {
            let delay = self.backoff.delay(poll, &mut self.rng);
            if !self.wait(delay).await {
                return Err(GaveUp::Interrupted);
            }
            poll = poll.saturating_add(1);
        }
        Ok(())
    }

    /// Waits `period`; false when shutdown cut the wait short.
    pub async fn wait(&mut self, period: Duration) -> bool {
        match &mut self.interrupt {
            None => {
                sleep(period).await;
                true
            }
            Some(shutdown) => tokio::select! {
                _ = sleep(period) => true,
                _ = shutdown.requested() => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use tokio::time::Instant;

    use super::*;
    use crate::shutdown::{self, Reason};

    #[derive(Debug)]
    struct Failure(Class);

    impl Classify for Failure {
        fn class(&self) -> Class {
            self.0
        }
    }

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }

    /// Tokio's timers tick in whole milliseconds: each of `waits` sleeps
    /// may end up to a millisecond after the drawn delay.
    fn assert_close(elapsed: Duration, expected: Duration, waits: u32) {
        let slack = Duration::from_millis(1) * waits;
        assert!(
            elapsed >= expected && elapsed <= expected + slack,
            "waited {elapsed:?}, drew {expected:?}"
        );
    }

    fn seeded() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn ceilings_double_from_the_base_up_to_the_cap() {
        let backoff = Backoff::default();
        let ceilings: Vec<u64> = (0..8).map(|n| backoff.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff.ceiling(u32::MAX), DEFAULT_BACKOFF_CAP);
    }

    #[test]
    fn delays_are_fully_jittered_below_the_ceiling() {
        let backoff = Backoff::default();
        let mut rng = seeded();
        for retry in 0..10 {
            let ceiling = backoff.ceiling(retry);
            let delays: Vec<Duration> = (0..2000).map(|_| backoff.delay(retry, &mut rng)).collect();
            assert!(delays.iter().all(|delay| *delay <= ceiling));
            // Full jitter: the whole range is used, not just its top.
            let mean = delays.iter().sum::<Duration>() / delays.len() as u32;
            assert!(
                mean > ceiling.mul_f64(0.45) && mean < ceiling.mul_f64(0.55),
                "retry {retry}: mean {mean:?} of ceiling {ceiling:?}"
            );
            assert!(delays.iter().any(|delay| *delay < ceiling / 10));
        }
    }

    #[test]
    fn boot_jitter_stays_within_its_maximum_and_zero_means_none() {
        let mut rng = seeded();
        let jitter = BootJitter { max: 5 * SECOND };
        assert!((0..1000).all(|_| jitter.delay(&mut rng) <= 5 * SECOND));
        let none = BootJitter {
            max: Duration::ZERO,
        };
        assert_eq!(none.delay(&mut rng), Duration::ZERO);
    }

    #[test]
    fn answers_are_classified_by_code_then_status() {
        for code in [
            "Throttling",
            "PriorRequestNotComplete",
            "ServiceUnavailable",
        ] {
            assert_eq!(classify_answer(Some(400), Some(code)), Class::Retryable);
        }
        for code in [
            "InvalidChangeBatch",
            "NoSuchHostedZone",
            "AccessDenied",
            "InvalidInput",
        ] {
            assert_eq!(classify_answer(Some(400), Some(code)), Class::Final);
        }
        assert_eq!(classify_answer(Some(500), None), Class::Retryable);
        assert_eq!(classify_answer(Some(503), None), Class::Retryable);
        assert_eq!(classify_answer(Some(429), None), Class::Retryable);
        assert_eq!(classify_answer(Some(403), None), Class::Final);
        assert_eq!(classify_answer(None, None), Class::Final);
    }

    /// Fails with `failures` in turn, then succeeds; counts attempts.
    fn scripted(
        failures: Vec<Class>,
        attempts: &Cell<usize>,
    ) -> impl AsyncFnMut() -> Result<&'static str, Failure> + '_ {
        async move || {
            let n = attempts.get();
            attempts.set(n + 1);
            match failures.get(n) {
                Some(class) => Err(Failure(*class)),
                None => Ok("done"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_given_up_on_says_what_it_was_waiting_for() {
        let mut retry = Retry::new(Backoff::default(), seeded());
        assert_eq!(retry.under_way(), None);
        let attempts = Cell::new(0);
        // One failure, then an attempt that never answers.
        let call = retry.call("find hosted zone", || {
            attempts.set(attempts.get() + 1);
            let first = attempts.get() == 1;
            async move {
                if first {
                    Err::<(), _>(Failure(Class::Retryable))
                } else {
                    std::future::pending().await
                }
            }
        });
        let given_up = tokio::time::timeout(Duration::from_secs(60), call).await;
        assert!(given_up.is_err());
        assert_eq!(
            retry.under_way().as_deref(),
            Some("find hosted zone had no answer to attempt 2 (attempt 1 failed: Retryable)")
        );

        // Given up on while waiting to try again.
        let waiting = retry.call("write records", || {
            std::future::ready(Err::<(), _>(Failure(Class::Retryable)))
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(1), waiting)
                .await
                .is_err()
        );
        assert_eq!(
            retry.under_way().as_deref(),
            Some("write records failed (attempt 1: Retryable) and was waiting to try again")
        );

        // Done: nothing under way.
        let done = Cell::new(0);
        let _ = retry.call("write records", scripted(vec![], &done)).await;
        assert_eq!(retry.under_way(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_failures_wait_the_drawn_delays_then_succeed() {
        let mut expected_rng = seeded();
        let backoff = Backoff::default();
        let expected: Duration = (0..6).map(|n| backoff.delay(n, &mut expected_rng)).sum();

        let mut retry = Retry::new(backoff, seeded());
        let attempts = Cell::new(0);
        let began = Instant::now();
        let result = retry
            .call("test", scripted(vec![Class::Retryable; 6], &attempts))
            .await;
        assert!(matches!(result, Ok("done")));
        assert_eq!(attempts.get(), 7);
        assert_close(began.elapsed(), expected, 6);
        // The sum of ceilings 1+2+4+8+16+30 bounds it.
        assert!(began.elapsed() <= Duration::from_secs(61));
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_have_no_limit_while_retryable() {
        let mut retry = Retry::new(Backoff::default(), seeded());
        let attempts = Cell::new(0);
        let began = Instant::now();
        let result = retry
            .call("test", scripted(vec![Class::Retryable; 100], &attempts))
            .await;
        assert!(matches!(result, Ok("done")));
        assert_eq!(attempts.get(), 101);
        // Never faster than a spin, never slower than the cap allows.
        assert!(began.elapsed() > Duration::from_secs(60 * 10));
        assert!(began.elapsed() <= Duration::from_secs(100 * 30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_failure_ends_at_once() {
        let mut retry = Retry::new(Backoff::default(), seeded());
        let attempts = Cell::new(0);
        let began = Instant::now();
        let script = vec![Class::Retryable, Class::Final, Class::Retryable];
        let result = retry.call("test", scripted(script, &attempts)).await;
        assert!(matches!(result, Err(GaveUp::Final(Failure(Class::Final)))));
        assert_eq!(attempts.get(), 2);
        assert!(began.elapsed() <= Backoff::default().ceiling(0));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_interrupts_a_wait_but_not_an_attempt() {
        let (trigger, shutdown) = shutdown::channel();
        let mut retry = Retry::new(Backoff::default(), seeded());
        retry.interrupt_on(Some(shutdown));
        tokio::spawn(async move {
            sleep(Duration::from_secs(45)).await;
            trigger.request(Reason::Requested);
        });
        let attempts = Cell::new(0);
        let began = Instant::now();
        let result = retry
            .call("test", scripted(vec![Class::Retryable; 1000], &attempts))
            .await;
        assert!(matches!(result, Err(GaveUp::Interrupted)));
        assert_eq!(began.elapsed(), Duration::from_secs(45));
        assert!(attempts.get() > 1);
    }

    #[tokio::test(start_paused = true)]
    async fn polling_waits_by_the_backoff_until_true() {
        let backoff = Backoff {
            base: SECOND,
            cap: 4 * SECOND,
        };
        let mut expected_rng = seeded();
        let expected: Duration = (0..4).map(|n| backoff.delay(n, &mut expected_rng)).sum();

        let mut retry = Retry::new(backoff, seeded());
        let polls = Cell::new(0);
        let began = Instant::now();
        let result: Result<(), GaveUp<Failure>> = retry
            .poll_until("GetChange", || {
                polls.set(polls.get() + 1);
                std::future::ready(Ok(polls.get() == 5))
            })
            .await;
        assert!(result.is_ok());
        assert_eq!(polls.get(), 5);
        assert_close(began.elapsed(), expected, 4);
    }
}
