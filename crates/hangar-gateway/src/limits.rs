//! Per-tenant limits: requests and tokens per minute as token buckets, and requests in flight.
//! The token bucket is charged up front with the prompt estimate plus `max_tokens`, then
//! settled on the usage the model server reports, so a burst of long answers cannot overrun
//! the limit while it is still being generated.
//!
//! The state lives outside the swappable runtime: a configuration reload changes the limits,
//! not what each tenant has already used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::Refusal;

/// A tenant's limits as configured now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantLimits {
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight.
    pub max_concurrent: Option<u32>,
}

/// What each tenant has used, kept across reloads.
#[derive(Debug, Default)]
pub struct Limiter {
    tenants: Mutex<HashMap<Arc<str>, TenantState>>,
    in_flight: AtomicU32,
}

#[derive(Debug, Default)]
struct TenantState {
    requests: Bucket,
    tokens: Bucket,
    in_flight: Arc<AtomicU32>,
}

/// A bucket refilled continuously at `per_minute / 60` per second up to one minute's worth.
/// Its level may go below zero when a request used more than it reserved: the debt is paid
/// before the next request is let through.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    level: f64,
    per_minute: f64,
    updated: Option<Instant>,
}

impl Bucket {
    fn refill(&mut self, per_minute: u64, now: Instant) {
        let per_minute = per_minute as f64;
        match self.updated {
            // A new bucket, or a limit just changed by a reload: start full at the new size.
            None => self.level = per_minute,
            Some(_) if per_minute != self.per_minute => self.level = self.level.min(per_minute),
            Some(then) => {
                let gained = now.saturating_duration_since(then).as_secs_f64() * per_minute / 60.0;
                self.level = (self.level + gained).min(per_minute);
            }
        }
        self.per_minute = per_minute;
        self.updated = Some(now);
    }

    /// Takes `amount` or says how long until it could be taken.
    fn take(&mut self, amount: f64) -> Result<(), Duration> {
        if self.level >= amount {
            self.level -= amount;
            return Ok(());
        }
        let missing = amount - self.level;
        let per_second = self.per_minute / 60.0;
        Err(Duration::from_secs_f64((missing / per_second).min(3600.0)))
    }

    /// Gives back (or, negative, charges) tokens. The debt is bounded by one minute's worth, so
    /// a model server reporting absurd usage cannot lock a tenant out for longer.
    fn give_back(&mut self, amount: f64) {
        self.level = (self.level + amount).clamp(-self.per_minute, self.per_minute);
    }
}

/// What a request holds while it runs: its place in the concurrency counts and its token
/// reservation. Dropping it frees the places; [`Admission::settle`] trues up the tokens.
#[derive(Debug)]
pub struct Admission {
    limiter: Arc<Limiter>,
    tenant: Arc<str>,
    tenant_in_flight: Arc<AtomicU32>,
    reserved_tokens: u64,
    tokens_limited: bool,
    settled: bool,
    /// The request went to a model server: dropped unsettled (the client left), it keeps its
    /// reservation rather than getting it all back.
    sent: bool,
}

impl Limiter {
    /// Admits a request of `tenant` that reserves `tokens`, or refuses it: 503 when the gateway
    /// is full (`global_max`), 429 past a tenant limit, both with `Retry-After`.
    pub fn admit(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        limits: TenantLimits,
        global_max: u32,
        tokens: u64,
        now: Instant,
    ) -> Result<Admission, Refusal> {
        if let Some(per_minute) = limits.tokens_per_minute
            && tokens > per_minute
        {
            return Err(Refusal::bad_request(
                "tokens_exceed_limit",
                format!(
                    "this request reserves {tokens} tokens (prompt estimate + max_tokens), more \
                     than this tenant's {per_minute} tokens per minute; lower max_tokens"
                ),
            )
            .with_param("max_tokens"));
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= global_max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::unavailable(
                "gateway_overloaded",
                "the gateway is at its limit of requests in flight; try again shortly",
                Duration::from_secs(1),
            ));
        }
        match self.admit_tenant(tenant, limits, tokens, now) {
            Ok(tenant_in_flight) => Ok(Admission {
                limiter: Arc::clone(self),
                tenant: Arc::clone(tenant),
                tenant_in_flight,
                reserved_tokens: tokens,
                tokens_limited: limits.tokens_per_minute.is_some(),
                settled: false,
                sent: false,
            }),
            Err(refusal) => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                Err(refusal)
            }
        }
    }

    fn admit_tenant(
        &self,
        tenant: &Arc<str>,
        limits: TenantLimits,
        tokens: u64,
        now: Instant,
    ) -> Result<Arc<AtomicU32>, Refusal> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let state = tenants.entry(Arc::clone(tenant)).or_default();
        if let Some(max) = limits.max_concurrent
            && state.in_flight.load(Ordering::Acquire) >= max
        {
            return Err(Refusal::rate_limited(
                "concurrency_limit",
                format!("this tenant already has {max} requests in flight, its limit"),
                Duration::from_secs(1),
            ));
        }
        let mut requests = state.requests;
        let mut token_bucket = state.tokens;
        if let Some(rpm) = limits.requests_per_minute {
            requests.refill(rpm, now);
            requests.take(1.0).map_err(|wait| {
                Refusal::rate_limited(
                    "requests_per_minute",
                    format!("this tenant's limit of {rpm} requests per minute is reached"),
                    wait,
                )
            })?;
        }
        if let Some(tpm) = limits.tokens_per_minute {
            token_bucket.refill(tpm, now);
            token_bucket.take(tokens as f64).map_err(|wait| {
                Refusal::rate_limited(
                    "tokens_per_minute",
                    format!("this tenant's limit of {tpm} tokens per minute is reached"),
                    wait,
                )
            })?;
        }
        // Both buckets are committed together, so a refusal by one costs nothing from the other.
        state.requests = requests;
        state.tokens = token_bucket;
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(Arc::clone(&state.in_flight))
    }

    /// Requests in flight across the gateway.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl Admission {
    /// Marks the request as sent to a model server (see [`Admission`]'s drop).
    pub fn mark_sent(&mut self) {
        self.sent = true;
    }

    /// Gives the whole reservation back unless the request settled already: for a request the
    /// model server failed.
    pub fn release(&mut self) {
        if !self.settled {
            self.settle(0);
        }
    }

    /// Trues up the token reservation with what the request really used: the unused part goes
    /// back, an overrun is charged.
    pub fn settle(&mut self, used_tokens: u64) {
        self.settled = true;
        if !self.tokens_limited || used_tokens == self.reserved_tokens {
            return;
        }
        let mut tenants = self
            .limiter
            .tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(state) = tenants.get_mut(&self.tenant) {
            let difference = self.reserved_tokens as f64 - used_tokens as f64;
            state.tokens.give_back(difference);
        }
        self.reserved_tokens = used_tokens;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // Never settled and never sent: the request failed before any model worked on it.
        if !self.settled && !self.sent {
            self.settle(0);
        }
        self.tenant_in_flight.fetch_sub(1, Ordering::AcqRel);
        self.limiter.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Arc<str> {
        Arc::from("payments")
    }

    #[test]
    fn requests_per_minute_refuse_with_the_wait_and_refill_over_time() {
        let limiter = Arc::new(Limiter::default());
        let limits = TenantLimits {
            requests_per_minute: Some(60),
            ..Default::default()
        };
        let start = Instant::now();
        let held: Vec<_> = (0..60)
            .map(|_| limiter.admit(&tenant(), limits, 100, 0, start).unwrap())
            .collect();
        drop(held);
        let refusal = limiter.admit(&tenant(), limits, 100, 0, start).unwrap_err();
        assert_eq!(refusal.status, http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refusal.retry_after, Some(Duration::from_secs(1)));
        // One second later, one request's worth has come back.
        assert!(
            limiter
                .admit(&tenant(), limits, 100, 0, start + Duration::from_secs(1))
                .is_ok()
        );
    }

    #[test]
    fn tokens_are_reserved_up_front_and_settled_on_usage() {
        let limiter = Arc::new(Limiter::default());
        let limits = TenantLimits {
            tokens_per_minute: Some(1000),
            ..Default::default()
        };
        let now = Instant::now();
        let mut first = limiter.admit(&tenant(), limits, 100, 600, now).unwrap();
        // 400 left: a second 600-token reservation waits.
        assert!(limiter.admit(&tenant(), limits, 100, 600, now).is_err());
        // The first used only 100 of its 600: 500 come back, and the second fits.
        first.settle(100);
        assert!(limiter.admit(&tenant(), limits, 100, 600, now).is_ok());
    }

    #[test]
    fn absurd_reported_usage_costs_at_most_a_minute() {
        let limiter = Arc::new(Limiter::default());
        let limits = TenantLimits {
            tokens_per_minute: Some(600),
            ..Default::default()
        };
        let now = Instant::now();
        let mut first = limiter.admit(&tenant(), limits, 100, 10, now).unwrap();
        first.settle(u64::MAX);
        drop(first);
        assert!(
            limiter
                .admit(&tenant(), limits, 100, 10, now + Duration::from_secs(60))
                .is_err()
        );
        assert!(
            limiter
                .admit(&tenant(), limits, 100, 10, now + Duration::from_secs(121))
                .is_ok()
        );
    }

    #[test]
    fn a_request_that_fails_before_an_answer_gives_its_tokens_back() {
        let limiter = Arc::new(Limiter::default());
        let limits = TenantLimits {
            tokens_per_minute: Some(1000),
            ..Default::default()
        };
        let now = Instant::now();
        drop(limiter.admit(&tenant(), limits, 100, 900, now).unwrap());
        assert!(limiter.admit(&tenant(), limits, 100, 900, now).is_ok());
    }

    #[test]
    fn an_overrun_is_charged_to_the_next_request() {
        let limiter = Arc::new(Limiter::default());
        let limits = TenantLimits {
            tokens_per_minute: Some(1000),
            ..Default::default()
        };
        let now = Instant::now();
        let mut first = limiter.admit(&tenant(), limits, 100, 100, now).unwrap();
        first.settle(1000);
        assert!(limiter.admit(&tenant(), limits, 100, 1, now).is_err());
    }

    #[test]
    fn a_reservation_larger_than_the_limit_is_a_bad_request_not_a_wait() {
        let limiter = Arc::new(Limiter::default());
        let limits = TenantLimits {
            tokens_per_minute: Some(1000),
            ..Default::default()
        };
        let refusal = limiter
            .admit(&tenant(), limits, 100, 5000, Instant::now())
            .unwrap_err();
        assert_eq!(refusal.status, http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn concurrency_is_freed_when_the_request_ends() {
        let limiter = Arc::new(Limiter::default());
        let limits = TenantLimits {
            max_concurrent: Some(2),
            ..Default::default()
        };
        let now = Instant::now();
        let a = limiter.admit(&tenant(), limits, 100, 0, now).unwrap();
        let _b = limiter.admit(&tenant(), limits, 100, 0, now).unwrap();
        assert_eq!(
            limiter
                .admit(&tenant(), limits, 100, 0, now)
                .unwrap_err()
                .code,
            "concurrency_limit"
        );
        drop(a);
        assert!(limiter.admit(&tenant(), limits, 100, 0, now).is_ok());
    }

    #[test]
    fn the_gateway_wide_cap_is_503_and_releases() {
        let limiter = Arc::new(Limiter::default());
        let now = Instant::now();
        let a = limiter
            .admit(&tenant(), TenantLimits::default(), 1, 0, now)
            .unwrap();
        let refusal = limiter
            .admit(&Arc::from("other"), TenantLimits::default(), 1, 0, now)
            .unwrap_err();
        assert_eq!(refusal.status, http::StatusCode::SERVICE_UNAVAILABLE);
        drop(a);
        assert_eq!(limiter.in_flight(), 0);
    }

    #[test]
    fn a_refused_token_reservation_does_not_spend_a_request() {
        let limiter = Arc::new(Limiter::default());
        let limits = TenantLimits {
            requests_per_minute: Some(2),
            tokens_per_minute: Some(100),
            ..Default::default()
        };
        let now = Instant::now();
        let _a = limiter.admit(&tenant(), limits, 100, 90, now).unwrap();
        assert!(limiter.admit(&tenant(), limits, 100, 90, now).is_err());
        // The refused request did not use the second of two requests per minute.
        assert!(limiter.admit(&tenant(), limits, 100, 5, now).is_ok());
    }
}
