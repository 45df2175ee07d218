//! Trying again: the one helper behind every wait and retry of provision and destroy.
//!
//! A [`Schedule`] says how long (or how many times) to keep trying and how long to pause
//! between tries. Two ways to use it:
//! - [`Schedule::retry`] runs an operation again while it fails with an error the caller calls
//!   transient (LXD busy with the instance, a key not accepted yet, a start that hit a hook
//!   timeout), and returns the last result;
//! - [`Schedule::poll`] checks a condition until it holds (an address appeared), and says when
//!   the schedule ran out without it.
//!
//! Time is read from tokio's clock, so tests run the waits on paused time, instantly.

use std::fmt::Display;
use std::time::Duration;

use tokio::time::Instant;

/// How long or how many times to try, and the pause between two tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    limit: Limit,
    pause: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// Start another try while less than this has passed since the first one started.
    Within(Duration),
    /// At most this many tries.
    Attempts(u32),
}

impl Schedule {
    /// Tries again, `pause` apart, for as long as less than `total` has passed since the first
    /// try started. A try is never cut short: the last one may end after `total`.
    pub const fn within(total: Duration, pause: Duration) -> Self {
        Self {
            limit: Limit::Within(total),
            pause,
        }
    }

    /// Tries at most `attempts` times, `pause` apart.
    pub const fn attempts(attempts: u32, pause: Duration) -> Self {
        Self {
            limit: Limit::Attempts(attempts),
            pause,
        }
    }

    /// Whether another try may start after try number `attempt` (from 1).
    fn allows_another(&self, attempt: u32, started: Instant) -> bool {
        match self.limit {
            Limit::Within(total) => started.elapsed() < total,
            Limit::Attempts(max) => attempt < max,
        }
    }

    /// Runs `op` (given the number of the try, from 1) until it succeeds, fails with an error
    /// that `transient` does not accept, or the schedule is used up; returns its last result.
    pub async fn retry<T, E: Display>(
        &self,
        mut op: impl AsyncFnMut(u32) -> Result<T, E>,
        mut transient: impl FnMut(&E) -> bool,
    ) -> Result<T, E> {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Err(e) if transient(&e) && self.allows_another(attempt, started) => {
                    tracing::debug!(
                        "try {attempt} failed, trying again in {:?}: {e}",
                        self.pause
                    );
                    tokio::time::sleep(self.pause).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Calls `check` until it finds what it waits for (`Ok(Some)`), and returns that; `Ok(None)`
    /// when the schedule is used up first. An error ends the wait at once.
    pub async fn poll<T, E>(
        &self,
        mut check: impl AsyncFnMut() -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            if let Some(found) = check().await? {
                return Ok(Some(found));
            }
            if !self.allows_another(attempt, started) {
                return Ok(None);
            }
            tokio::time::sleep(self.pause).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[derive(Debug, PartialEq)]
    enum Failure {
        Transient,
        Fatal,
    }

    impl Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_returns_the_first_success_and_pauses_between_tries() {
        let started = Instant::now();
        let mut seen = Vec::new();
        let result = Schedule::attempts(5, 10 * SEC)
            .retry(
                async |attempt| {
                    seen.push(attempt);
                    if attempt < 3 {
                        Err(Failure::Transient)
                    } else {
                        Ok(attempt * 100)
                    }
                },
                |e| *e == Failure::Transient,
            )
            .await;
        assert_eq!(result, Ok(300));
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(started.elapsed(), 20 * SEC);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_after_the_last_attempt_with_its_error() {
        let started = Instant::now();
        let mut tries = 0;
        let result: Result<(), _> = Schedule::attempts(5, 10 * SEC)
            .retry(
                async |_| {
                    tries += 1;
                    Err(Failure::Transient)
                },
                |_| true,
            )
            .await;
        assert_eq!(result, Err(Failure::Transient));
        assert_eq!(tries, 5);
        // Four pauses: none after the last try.
        assert_eq!(started.elapsed(), 40 * SEC);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_does_not_repeat_an_error_that_is_not_transient() {
        let mut tries = 0;
        let result: Result<(), _> = Schedule::within(180 * SEC, 5 * SEC)
            .retry(
                async |_| {
                    tries += 1;
                    Err(Failure::Fatal)
                },
                |e| *e == Failure::Transient,
            )
            .await;
        assert_eq!(result, Err(Failure::Fatal));
        assert_eq!(tries, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_within_a_time_starts_no_try_after_it() {
        let started = Instant::now();
        let mut starts = Vec::new();
        let result: Result<(), _> = Schedule::within(10 * SEC, 3 * SEC)
            .retry(
                async |_| {
                    starts.push(started.elapsed().as_secs());
                    // Each try itself takes a second.
                    tokio::time::sleep(SEC).await;
                    Err(Failure::Transient)
                },
                |_| true,
            )
            .await;
        assert_eq!(result, Err(Failure::Transient));
        // Tries end at 1, 5, 9 and 13 s; 13 s is past the 10 s limit, so none starts after it.
        assert_eq!(starts, [0, 4, 8, 12]);
    }

    #[tokio::test(start_paused = true)]
    async fn poll_returns_what_it_waited_for() {
        let started = Instant::now();
        let mut checks = 0;
        let found = Schedule::within(120 * SEC, Duration::from_millis(200))
            .poll(async || {
                checks += 1;
                Ok::<_, Failure>((checks == 4).then_some("10.1.2.3"))
            })
            .await;
        assert_eq!(found, Ok(Some("10.1.2.3")));
        assert_eq!(started.elapsed(), Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn poll_says_none_once_the_time_is_up() {
        let started = Instant::now();
        let mut checks = 0;
        let found = Schedule::within(SEC, Duration::from_millis(300))
            .poll(async || {
                checks += 1;
                Ok::<Option<()>, Failure>(None)
            })
            .await;
        assert_eq!(found, Ok(None));
        // Checks at 0, 0.3, 0.6, 0.9 and 1.2 s: the last one still runs, then it stops.
        assert_eq!(checks, 5);
        assert_eq!(started.elapsed(), Duration::from_millis(1200));
    }

    #[tokio::test(start_paused = true)]
    async fn poll_stops_at_the_first_error() {
        let mut checks = 0;
        let found: Result<Option<()>, _> = Schedule::within(60 * SEC, SEC)
            .poll(async || {
                checks += 1;
                if checks == 2 {
                    Err(Failure::Fatal)
                } else {
                    Ok(None)
                }
            })
            .await;
        assert_eq!(found, Err(Failure::Fatal));
        assert_eq!(checks, 2);
    }
}
