//! Per-tenant limits: requests and tokens per minute as token buckets, and requests in flight.
//! The token bucket is charged up front with the prompt estimate plus `max_tokens`, then
//! settled on the usage the model server reports, so a burst of long answers cannot overrun
//! the limit while it is still being generated.
//!
//! The state lives outside the swappable runtime: a configuration reload changes the limits,
//! not what each tenant has already used.
//!
//! With `limits.shared`, the two rate buckets and the tenants' requests in flight live in Redis
//! instead ([`SharedLimits`]), so all replicas count against one limit; each replica still
//! counts its own requests in flight here too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use hangar_guard::{ExtractionSignals, ExtractionThresholds};

use crate::config::{ClientTlsConfig, SharedLimitsConfig, SharedUnavailable};
use crate::error::Refusal;
use crate::metrics::Counters;
use crate::redis::{self, Reply, Script};

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
    /// Requests whose bodies are being read and checked, before their admission.
    reading: Arc<AtomicU32>,
}

#[derive(Debug, Default)]
struct TenantState {
    requests: Bucket,
    tokens: Bucket,
    in_flight: Arc<AtomicU32>,
    reading: Arc<AtomicU32>,
}

/// A request reading and checking its body, before it is admitted: a place among as many as
/// may be in flight, gateway-wide and for its tenant, so that the bodies held in memory and the
/// work on them are bounded like the requests that follow. Given back when dropped.
#[derive(Debug)]
pub struct Reading {
    counters: [Arc<AtomicU32>; 2],
}

impl Drop for Reading {
    fn drop(&mut self) {
        for counter in &self.counters {
            counter.fetch_sub(1, Ordering::AcqRel);
        }
    }
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
            // A new bucket starts full.
            None => self.level = per_minute,
            // Refilled at the rate it had since its last use, then held to its size now (a
            // reload may have changed the limit).
            Some(then) => {
                let elapsed = now.saturating_duration_since(then).as_secs_f64();
                let gained = elapsed * self.per_minute / 60.0;
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

    fn quota(&self) -> Quota {
        Quota::new(self.level, self.per_minute as u64)
    }
}

/// Where one of a tenant's rate buckets stands, for the `x-ratelimit-*` headers OpenAI's API
/// sends and clients pace themselves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Per minute.
    pub limit: u64,
    /// What the bucket holds now: what the next requests may take at once.
    pub remaining: u64,
    /// Until the bucket is full again, as OpenAI's `x-ratelimit-reset-*` means it.
    pub reset: Duration,
}

impl Quota {
    fn new(level: f64, per_minute: u64) -> Quota {
        let limit = per_minute as f64;
        let reset = if per_minute == 0 {
            0.0
        } else {
            (limit - level).max(0.0) * 60.0 / limit
        };
        Quota {
            limit: per_minute,
            remaining: level.clamp(0.0, limit) as u64,
            reset: Duration::from_millis((reset * 1000.0).ceil() as u64),
        }
    }
}

/// A tenant's rate buckets after its request took from them or was refused, each one it has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// With `requestsPerMinute`.
    pub requests: Option<Quota>,
    /// With `tokensPerMinute`.
    pub tokens: Option<Quota>,
}

impl Quotas {
    fn of(limits: TenantLimits, requests: &Bucket, tokens: &Bucket) -> Quotas {
        Quotas {
            requests: limits.requests_per_minute.map(|_| requests.quota()),
            tokens: limits.tokens_per_minute.map(|_| tokens.quota()),
        }
    }

    /// From the levels the shared limits' script reports, in thousandths.
    fn of_levels(limits: TenantLimits, [requests, tokens]: [i64; 2]) -> Quotas {
        let quota = |level: i64, per_minute| Quota::new(level as f64 / 1000.0, per_minute);
        Quotas {
            requests: (limits.requests_per_minute).map(|rpm| quota(requests, rpm)),
            tokens: (limits.tokens_per_minute).map(|tpm| quota(tokens, tpm)),
        }
    }

    /// Writes OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers.
    pub fn write(&self, headers: &mut http::HeaderMap) {
        use http::{HeaderName, HeaderValue};
        // Most tenants have no rate limit: their answers are left as they are.
        if self.requests.is_none() && self.tokens.is_none() {
            return;
        }
        // Constants, so the names are checked at compile time, not for each answer.
        const NAMES: [[HeaderName; 3]; 2] = [
            [
                HeaderName::from_static("x-ratelimit-limit-requests"),
                HeaderName::from_static("x-ratelimit-remaining-requests"),
                HeaderName::from_static("x-ratelimit-reset-requests"),
            ],
            [
                HeaderName::from_static("x-ratelimit-limit-tokens"),
                HeaderName::from_static("x-ratelimit-remaining-tokens"),
                HeaderName::from_static("x-ratelimit-reset-tokens"),
            ],
        ];
        headers.reserve(6);
        for (quota, [limit, remaining, reset]) in [self.requests, self.tokens].iter().zip(NAMES) {
            let Some(quota) = quota else { continue };
            headers.insert(limit, HeaderValue::from(quota.limit));
            headers.insert(remaining, HeaderValue::from(quota.remaining));
            if let Ok(value) = HeaderValue::try_from(go_duration(quota.reset)) {
                headers.insert(reset, value);
            }
        }
    }
}

/// A duration as Go's `time.Duration` prints it, to the millisecond (`17ms`, `1.5s`, `6m0s`,
/// `1h2m3s`): the form OpenAI's `x-ratelimit-reset-*` headers take, which clients parse.
/// Written digit by digit: `format!` cost thousands of instructions an answer.
fn go_duration(duration: Duration) -> String {
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let mut text = String::with_capacity(16);
    if millis < 1000 {
        push_number(&mut text, millis);
        text.push_str(if millis == 0 { "s" } else { "ms" });
        return text;
    }
    let (hours, minutes, seconds) = (millis / 3_600_000, millis / 60_000 % 60, millis / 1000 % 60);
    if hours > 0 {
        push_number(&mut text, hours);
        text.push('h');
    }
    if hours > 0 || minutes > 0 {
        push_number(&mut text, minutes);
        text.push('m');
    }
    push_number(&mut text, seconds);
    let mut fraction = millis % 1000;
    if fraction > 0 {
        text.push('.');
        // Three digits, without the zeros that end them.
        for _ in 0..3 {
            push_number(&mut text, fraction / 100);
            fraction = fraction % 100 * 10;
            if fraction == 0 {
                break;
            }
        }
    }
    text.push('s');
    text
}

/// Appends `n` in decimal.
fn push_number(text: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    text.extend(digits[start..].iter().map(|&digit| char::from(digit)));
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
    /// The tokens were taken from the shared buckets (at this many per minute), so they are
    /// settled there.
    shared: Option<(Arc<SharedLimits>, u64)>,
    /// The request holds this place among the tenant's requests in flight in Redis, freed
    /// when it ends.
    shared_place: Option<(Arc<SharedLimits>, Arc<str>)>,
    /// The tenant's rate buckets once this request took from them.
    pub quotas: Quotas,
}

/// The two rate buckets, for the refusal that names the one that said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rate {
    Requests,
    Tokens,
}

/// What the shared limits' script answered a take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SharedTake {
    refusal: Option<SharedRefusal>,
    /// The requests and tokens buckets' levels after the take, or before a refusal by a rate
    /// (not with one by the requests in flight).
    levels: Option<[i64; 2]>,
}

/// Why the shared limits refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SharedRefusal {
    /// A rate bucket, and the wait until it could give.
    Rate(Rate, Duration),
    /// The tenant's requests in flight across the replicas.
    InFlight,
}

/// The refusal of a request past its tenant's `max` requests in flight.
fn overloaded() -> Refusal {
    Refusal::unavailable(
        "gateway_overloaded",
        "the gateway is at its limit of requests in flight; try again shortly",
        Duration::from_secs(1),
    )
}

fn in_flight_refusal(max: u32) -> Refusal {
    Refusal::rate_limited(
        "concurrency_limit",
        format!("this tenant is at its limit of requests in flight ({max})"),
        Duration::from_secs(1),
    )
}

impl Rate {
    fn refusal(self, per_minute: u64, wait: Duration) -> Refusal {
        let (code, unit) = match self {
            Rate::Requests => ("requests_per_minute", "requests"),
            Rate::Tokens => ("tokens_per_minute", "tokens"),
        };
        Refusal::rate_limited(
            code,
            format!("this tenant's limit of {per_minute} {unit} per minute is reached"),
            wait,
        )
    }
}

/// A prompt whose estimate alone is more than a whole minute's tokens could never be let
/// through, whatever its `max_tokens`: the refusal names the prompt (`param`, the field holding
/// it), so the client is not told to lower `max_tokens`.
pub fn check_prompt(
    limits: TenantLimits,
    prompt_tokens: u64,
    param: &'static str,
) -> Result<(), Refusal> {
    match limits.tokens_per_minute {
        Some(per_minute) if prompt_tokens > per_minute => Err(Refusal::bad_request(
            "tokens_exceed_limit",
            format!(
                "the prompt is too long for this tenant's limit: its estimate alone is \
                 {prompt_tokens} tokens, more than this tenant's {per_minute} tokens per minute"
            ),
        )
        .with_param(param)),
        _ => Ok(()),
    }
}

/// A reservation larger than a whole minute's tokens could never be let through.
fn check_reservation(limits: TenantLimits, tokens: u64) -> Result<(), Refusal> {
    match limits.tokens_per_minute {
        Some(per_minute) if tokens > per_minute => Err(Refusal::bad_request(
            "tokens_exceed_limit",
            format!(
                "this request reserves {tokens} tokens (prompt estimate + max_tokens, or this \
                 tenant's maxTokens when the request sets none), more than this tenant's \
                 {per_minute} tokens per minute; set a lower max_tokens"
            ),
        )
        .with_param("max_tokens")),
        _ => Ok(()),
    }
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
        check_reservation(limits, tokens)?;
        self.enter_gateway(global_max)?;
        match self.admit_tenant(tenant, limits, Some((tokens, now))) {
            Ok((tenant_in_flight, quotas)) => {
                let mut admission = self.admission(tenant, limits, tokens, tenant_in_flight);
                admission.quotas = quotas;
                Ok(admission)
            }
            Err(refusal) => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                Err(refusal)
            }
        }
    }

    /// [`Limiter::admit`] with the rate buckets in Redis. When Redis cannot answer within
    /// `limits.shared.timeout`, `onUnavailable` decides: this replica's own buckets, or a 503.
    /// Each such request is counted in `fallbacks` by what was done.
    pub async fn admit_shared(
        self: &Arc<Self>,
        shared: &Arc<SharedLimits>,
        tenant: &Arc<str>,
        limits: TenantLimits,
        global_max: u32,
        tokens: u64,
        fallbacks: &Counters,
    ) -> Result<Admission, Refusal> {
        check_reservation(limits, tokens)?;
        self.enter_gateway(global_max)?;
        let tenant_in_flight = match self.admit_tenant(tenant, limits, None) {
            Ok((count, _)) => count,
            Err(refusal) => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                return Err(refusal);
            }
        };
        // From here on, dropping the admission gives back the places in flight.
        let mut admission = self.admission(tenant, limits, tokens, tenant_in_flight);
        let most_in_flight = limits.max_concurrent.filter(|_| shared.config.concurrency);
        if limits.requests_per_minute.is_none()
            && limits.tokens_per_minute.is_none()
            && most_in_flight.is_none()
        {
            return Ok(admission);
        }
        // Nothing is given back until Redis says it took the tokens: a client that leaves while
        // Redis is asked (or a call that times out after Redis ran it) may leave them charged,
        // never given twice. The place is freed in any case unless Redis refused it: freeing
        // one never taken changes nothing.
        admission.settled = true;
        let place = most_in_flight.map(|most| (most, shared.new_place()));
        admission.shared_place =
            (place.as_ref()).map(|(_, name)| (Arc::clone(shared), Arc::clone(name)));
        let refused = match shared.take(tenant, limits, tokens, place.clone()).await {
            Ok(SharedTake {
                refusal: None,
                levels,
            }) => {
                admission.settled = false;
                admission.quotas =
                    (levels.map(|levels| Quotas::of_levels(limits, levels))).unwrap_or_default();
                admission.shared = limits
                    .tokens_per_minute
                    .map(|per_minute| (Arc::clone(shared), per_minute));
                if let Some((_, place)) = place {
                    shared.hold(tenant, &place, Taken::Surely);
                }
                return Ok(admission);
            }
            Ok(SharedTake {
                refusal: Some(refusal),
                levels,
            }) => {
                admission.shared_place = None;
                let refusal = match refusal {
                    SharedRefusal::Rate(rate @ Rate::Requests, wait) => {
                        rate.refusal(limits.requests_per_minute.unwrap_or(0), wait)
                    }
                    SharedRefusal::Rate(rate @ Rate::Tokens, wait) => {
                        rate.refusal(limits.tokens_per_minute.unwrap_or(0), wait)
                    }
                    SharedRefusal::InFlight => in_flight_refusal(most_in_flight.unwrap_or(0)),
                };
                match levels {
                    Some(levels) => refusal.with_quotas(Quotas::of_levels(limits, levels)),
                    None => refusal,
                }
            }
            Err(Unavailable { may_have_run }) => {
                if !may_have_run {
                    // Never sent, or refused with an error: there is no place to free.
                    admission.shared_place = None;
                }
                match shared.config.on_unavailable {
                    SharedUnavailable::Local => {
                        fallbacks.add(&[SharedUnavailable::Local.as_str()], 1);
                        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
                        let state = tenants.entry(Arc::clone(tenant)).or_default();
                        match take_buckets(state, limits, tokens, Instant::now()) {
                            Ok(quotas) => {
                                admission.settled = false;
                                admission.quotas = quotas;
                                // The call may have taken the place: if so, it lasts as long
                                // as the request.
                                if let Some((_, place)) = &admission.shared_place {
                                    shared.hold(tenant, place, Taken::Maybe);
                                }
                                return Ok(admission);
                            }
                            Err(refusal) => refusal,
                        }
                    }
                    SharedUnavailable::Refuse => {
                        fallbacks.add(&[SharedUnavailable::Refuse.as_str()], 1);
                        Refusal::unavailable(
                            "limits_unavailable",
                            "the gateway cannot reach its shared rate limits; try again shortly",
                            SHARED_REST,
                        )
                    }
                }
            }
        };
        Err(refused)
    }

    /// Takes a place among the requests in flight across the gateway.
    /// A place among the requests reading their bodies: at most `global_max` across the
    /// gateway and the tenant's `maxConcurrent`, refused as being in flight past those would be.
    pub fn start_reading(
        &self,
        tenant: &Arc<str>,
        limits: TenantLimits,
        global_max: u32,
    ) -> Result<Reading, Refusal> {
        let tenant_reading = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(&tenants.entry(Arc::clone(tenant)).or_default().reading)
        };
        let take = |counter: &AtomicU32, max: u32| {
            let ok = counter.fetch_add(1, Ordering::AcqRel) < max;
            if !ok {
                counter.fetch_sub(1, Ordering::AcqRel);
            }
            ok
        };
        if !take(&self.reading, global_max) {
            return Err(overloaded());
        }
        if !take(&tenant_reading, limits.max_concurrent.unwrap_or(u32::MAX)) {
            self.reading.fetch_sub(1, Ordering::AcqRel);
            return Err(in_flight_refusal(limits.max_concurrent.unwrap_or(u32::MAX)));
        }
        Ok(Reading {
            counters: [Arc::clone(&self.reading), tenant_reading],
        })
    }

    fn enter_gateway(&self, global_max: u32) -> Result<(), Refusal> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= global_max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(overloaded());
        }
        Ok(())
    }

    fn admission(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        limits: TenantLimits,
        tokens: u64,
        tenant_in_flight: Arc<AtomicU32>,
    ) -> Admission {
        Admission {
            limiter: Arc::clone(self),
            tenant: Arc::clone(tenant),
            tenant_in_flight,
            reserved_tokens: tokens,
            tokens_limited: limits.tokens_per_minute.is_some(),
            settled: false,
            sent: false,
            shared: None,
            shared_place: None,
            quotas: Quotas::default(),
        }
    }

    /// Takes a place among the tenant's requests in flight and, with `buckets` (the tokens and
    /// the time), one request and the tokens from its local buckets.
    fn admit_tenant(
        &self,
        tenant: &Arc<str>,
        limits: TenantLimits,
        buckets: Option<(u64, Instant)>,
    ) -> Result<(Arc<AtomicU32>, Quotas), Refusal> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let state = tenants.entry(Arc::clone(tenant)).or_default();
        if let Some(max) = limits.max_concurrent
            && state.in_flight.load(Ordering::Acquire) >= max
        {
            // Where the rates stand, as on every other answer to a tenant with a rate.
            let quotas = buckets.map(|(_, now)| {
                let (requests, tokens) = buckets_at(state, limits, now);
                Quotas::of(limits, &requests, &tokens)
            });
            return Err(in_flight_refusal(max).with_quotas(quotas.unwrap_or_default()));
        }
        let quotas = match buckets {
            Some((tokens, now)) => take_buckets(state, limits, tokens, now)?,
            None => Quotas::default(),
        };
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok((Arc::clone(&state.in_flight), quotas))
    }

    /// Requests in flight across the gateway.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Requests reading and checking their bodies, before their admission.
    pub fn reading(&self) -> u32 {
        self.reading.load(Ordering::Acquire)
    }
}

/// The tenant's two local buckets as they stand at `now`, refilled, without changing them.
fn buckets_at(state: &TenantState, limits: TenantLimits, now: Instant) -> (Bucket, Bucket) {
    let (mut requests, mut tokens) = (state.requests, state.tokens);
    if let Some(rpm) = limits.requests_per_minute {
        requests.refill(rpm, now);
    }
    if let Some(tpm) = limits.tokens_per_minute {
        tokens.refill(tpm, now);
    }
    (requests, tokens)
}

/// Takes one request and `tokens` from the tenant's local buckets, or neither, and says where
/// the buckets stand then.
fn take_buckets(
    state: &mut TenantState,
    limits: TenantLimits,
    tokens: u64,
    now: Instant,
) -> Result<Quotas, Refusal> {
    let (mut requests, mut token_bucket) = buckets_at(state, limits, now);
    let refilled = Quotas::of(limits, &requests, &token_bucket);
    if let Some(rpm) = limits.requests_per_minute
        && let Err(wait) = requests.take(1.0)
    {
        return Err(Rate::Requests.refusal(rpm, wait).with_quotas(refilled));
    }
    if let Some(tpm) = limits.tokens_per_minute
        && let Err(wait) = token_bucket.take(tokens as f64)
    {
        return Err(Rate::Tokens.refusal(tpm, wait).with_quotas(refilled));
    }
    // Both buckets are committed together, so a refusal by one costs nothing from the other.
    state.requests = requests;
    state.tokens = token_bucket;
    Ok(Quotas::of(limits, &requests, &token_bucket))
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
        let difference = self.reserved_tokens as f64 - used_tokens as f64;
        self.reserved_tokens = used_tokens;
        if let Some((shared, per_minute)) = &self.shared {
            shared.give_back(&self.tenant, *per_minute, difference);
            return;
        }
        let mut tenants = self
            .limiter
            .tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(state) = tenants.get_mut(&self.tenant) {
            state.tokens.give_back(difference);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // Never settled and never sent: the request failed before any model worked on it.
        if !self.settled && !self.sent {
            self.settle(0);
        }
        if let Some((shared, place)) = self.shared_place.take() {
            shared.release(&self.tenant, place);
        }
        self.tenant_in_flight.fetch_sub(1, Ordering::AcqRel);
        self.limiter.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// After Redis failed, how long requests are decided without asking it, so that an outage
/// (or a server that no longer answers) does not cost every request the whole timeout.
const SHARED_REST: Duration = Duration::from_secs(1);

/// How long tokens owed back to tenants are gathered before they are sent to Redis.
const GIVE_BACK_EVERY: Duration = Duration::from_millis(50);
/// How long tokens owed back wait for a Redis that rests after failures: by then the buckets
/// are full again, and a replaced configuration's Redis is not tried for ever.
const GIVE_BACK_FOR: Duration = Duration::from_secs(120);
/// The most places one call frees.
const RELEASE_BATCH: usize = 500;
/// How long a place in flight in Redis lasts unless its replica renews it: the longest the
/// places of a replica that died (or of a call that timed out after Redis ran it) stay taken.
const PLACE_LEASE: Duration = Duration::from_secs(15);
/// How often a replica renews the leases of the places its requests hold.
const PLACE_RENEW_EVERY: Duration = Duration::from_secs(5);

/// The script behind both operations on the shared buckets.
static SHARED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("limits.lua")));
/// The script recording a request in its caller's shared extraction window.
static EXTRACTION_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("extraction.lua")));

/// Whether Redis took a place a request holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// Redis said so: renewing it puts it back if Redis lost it.
    Surely,
    /// The call timed out, so Redis may never have run it: renewing it only extends it if
    /// Redis has it, never takes a place past the tenant's limit.
    Maybe,
}

/// Redis could not say (the outage is logged where it starts).
#[derive(Debug)]
struct Unavailable {
    /// Redis may have run the call: it failed or timed out once sent, rather than meet a resting
    /// node, never leave, or be refused.
    may_have_run: bool,
}

/// A place in flight and whether Redis surely took it.
type HeldPlace = (Arc<str>, Taken);

/// The tenants' rate buckets in Redis, shared by every replica (`limits.shared`).
#[derive(Debug)]
pub struct SharedLimits {
    config: SharedLimitsConfig,
    client: redis::Client,
    /// The last call failed: the outage is logged when it starts and when it ends.
    down: AtomicBool,
    /// What the TLS files held when this was built, so that a reload with new certificates
    /// connects again.
    tls_files: Vec<Vec<u8>>,
    /// What is sent to Redis off the requests' path.
    backlog: Mutex<Backlog>,
    /// This replica's name in its places in flight, random at start.
    replica: String,
    /// The number of the next place.
    places_taken: AtomicU64,
    /// The places in flight this replica's requests hold, by tenant, renewed every
    /// [`PLACE_RENEW_EVERY`].
    held: Mutex<HashMap<Arc<str>, Vec<HeldPlace>>>,
    /// The task renewing leases runs.
    renewing: AtomicBool,
    /// How long a place lasts unless renewed, and how often held ones are: [`PLACE_LEASE`] and
    /// [`PLACE_RENEW_EVERY`] (shorter in tests).
    lease: (Duration, Duration),
}

impl SharedLimits {
    /// The shared buckets of `config`, reading its password file; nothing connects yet.
    pub fn new(config: &SharedLimitsConfig) -> Result<SharedLimits, String> {
        let password = match &config.password_file {
            None => None,
            Some(path) => {
                let shown = path.display();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("limits.shared.passwordFile: cannot read {shown}: {e}"))?;
                match text.trim() {
                    "" => return Err(format!("limits.shared.passwordFile: {shown} is empty")),
                    password => Some(password.to_owned()),
                }
            }
        };
        let mut target = redis::Target::parse(&config.url, password)
            .map_err(|e| format!("limits.shared.url: {e}"))?;
        target.sentinel.clone_from(&config.sentinel_master);
        let tls_files = (config.tls.iter().flat_map(ClientTlsConfig::files))
            .map(|path| std::fs::read(path).unwrap_or_default())
            .collect();
        let tls = if target.tls {
            let tls = config.tls.as_ref();
            Some(crate::pem::client_config(
                tls,
                "limits.shared.tls",
                "Redis",
            )?)
        } else {
            None
        };
        Ok(SharedLimits {
            config: config.clone(),
            client: redis::Client::new(target, tls.map(Arc::new)),
            down: AtomicBool::new(false),
            tls_files,
            backlog: Mutex::new(Backlog::default()),
            replica: replica_name(),
            places_taken: AtomicU64::new(0),
            held: Mutex::new(HashMap::new()),
            renewing: AtomicBool::new(false),
            lease: (PLACE_LEASE, PLACE_RENEW_EVERY),
        })
    }

    /// This, when it reaches the same server with the same settings as `other` would (a
    /// reload keeps its connections and what it knows of an outage).
    pub fn same_as(&self, other: &SharedLimits) -> bool {
        self.config == other.config
            && self.client.target() == other.client.target()
            && self.tls_files == other.tls_files
    }

    /// Runs the limits' script as requests will (so the login, the database, the user's
    /// permissions and a writable server are all checked), and with `extraction` the
    /// extraction windows' script, and says how long it took.
    pub async fn reach(&self) -> Result<Duration, Unreached> {
        let started = Instant::now();
        // The limits' own script on keys of their own (gone two minutes later), whose hash tag
        // `{check` no tenant's can be: a give-back as settlements do, and with `concurrency` a
        // place taken and freed.
        let keys = [self.key("{check"), self.in_flight_key("{check")];
        let keys = [keys[0].as_str(), keys[1].as_str()];
        let lease = self.lease.0.as_millis().to_string();
        let place = self.new_place();
        let mut calls = vec![(&keys[..1], vec!["give", "1", "0"])];
        if self.config.concurrency {
            let take = vec!["take", "0", "0", "0", "1000000", &place, &lease];
            calls.extend([(&keys[..], take), (&keys[1..], vec!["release", &place])]);
        }
        let extraction = self.extraction_keys("{check", "check");
        let extraction = [&*extraction[0], &*extraction[1], &*extraction[2]];
        let asked = async {
            for (keys, args) in calls {
                self.client.eval(&SHARED_SCRIPT, keys, &args).await?;
            }
            if self.config.extraction {
                // A request that never alerts, in a window of a second.
                let args = ["0", "0", "0", "1000", "1", "1000000", "1", "1"];
                self.client
                    .eval(&EXTRACTION_SCRIPT, &extraction, &args)
                    .await?;
            }
            Ok::<_, redis::RedisError>(())
        };
        match tokio::time::timeout(Duration::from_secs(5), asked).await {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => {
                let said = e.to_string();
                // Redis 7.0 names the script's line, not the command or key it refused.
                let acl = ["NOPERM", "can't run this command", "can't access"];
                let why = match acl.iter().any(|r| said.contains(r)) {
                    true => format!("{said} ({})", self.acl_needs()),
                    false => said,
                };
                Err(Unreached {
                    refused: e.answered(),
                    why,
                })
            }
            Err(_) => Err(Unreached {
                refused: false,
                why: "no answer within 5 s".to_owned(),
            }),
        }
    }

    /// What an ACL user needs for these settings.
    fn acl_needs(&self) -> String {
        let mut commands = vec!["+evalsha", "+eval", "+get", "+set", "+time"];
        if self.config.concurrency || self.config.extraction {
            commands.extend(["+zadd", "+zcard", "+zremrangebyscore", "+pexpire"]);
        }
        if self.config.concurrency {
            commands.push("+zrem");
        }
        if self.config.extraction {
            commands.extend([
                "+zremrangebyrank",
                "+hget",
                "+hmget",
                "+hset",
                "+hincrby",
                "+hdel",
                "+del",
            ]);
        }
        if self.client.target().database != 0 {
            commands.push("+select");
        }
        if self.config.sentinel_master.is_some() {
            commands.push("+role");
        }
        format!(
            "the user needs {} on ~{}:*, and +asking with a Redis Cluster",
            commands.join(" "),
            self.config.prefix
        )
    }

    /// The Redis Cluster nodes a redirection sent calls to (none for a single server).
    pub fn cluster_nodes(&self) -> Vec<String> {
        self.client.cluster_nodes()
    }

    /// The key holding `tenant`'s buckets. The tenant is the key's hash tag, so that its two
    /// keys are on one Redis Cluster node, which a script using both needs.
    fn key(&self, tenant: &str) -> String {
        format!("{}:{{{tenant}}}:rates", self.config.prefix)
    }

    /// The key holding `tenant`'s places in flight.
    fn in_flight_key(&self, tenant: &str) -> String {
        format!("{}:{{{tenant}}}:inflight", self.config.prefix)
    }

    /// Whether the replicas share the callers' extraction windows here (`extraction`).
    pub fn shares_extraction(&self) -> bool {
        self.config.extraction
    }

    /// Records a request of `key_id` (of `tenant`) in the caller's extraction window that every
    /// replica shares, and returns the window's signals after it, and whether they crossed
    /// `thresholds` with no replica having raised an alert for the caller within the window:
    /// this request then raises it. `None` when Redis could not answer within `timeout` (the
    /// outage is logged as for the limits).
    pub async fn record_extraction(
        &self,
        tenant: &str,
        key_id: &str,
        prompt_hash: u64,
        tokens: (u64, u64),
        thresholds: &ExtractionThresholds,
    ) -> Option<(ExtractionSignals, bool)> {
        let keys = self.extraction_keys(tenant, key_id);
        let keys = [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()];
        let remembered = thresholds.remembered() as u64;
        let args = [
            format!("{prompt_hash:016x}"),
            tokens.0.to_string(),
            tokens.1.to_string(),
            thresholds.window.as_millis().max(1).to_string(),
            remembered.to_string(),
            thresholds.min_requests.to_string(),
            thresholds.distinct_ratio.to_string(),
            thresholds.output_input_ratio.to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (reply, _) = self
            .call_script(&EXTRACTION_SCRIPT, &keys, &args)
            .await
            .ok()?;
        let counts = reply.counts()?;
        let &[requests, distinct, prompt_tokens, completion_tokens, alert] = counts.as_slice()
        else {
            return None;
        };
        let signals = ExtractionSignals::of_counts(
            requests,
            distinct,
            remembered,
            prompt_tokens,
            completion_tokens,
        );
        Some((signals, alert == 1))
    }

    /// The three keys of a caller's extraction window: on its tenant's Redis Cluster node, and
    /// named by a digest of its key id, which may be any token subject (braces included).
    fn extraction_keys(&self, tenant: &str, key_id: &str) -> [String; 3] {
        let digest = ring::digest::digest(&ring::digest::SHA256, key_id.as_bytes());
        let caller = hangar_ledger::hex(&digest.as_ref()[..12]);
        let base = format!("{}:{{{tenant}}}:extraction:{caller}", self.config.prefix);
        [
            format!("{base}:prompts"),
            format!("{base}:counts"),
            format!("{base}:alerted"),
        ]
    }

    /// A name for a place in flight no other replica or request uses.
    fn new_place(&self) -> Arc<str> {
        let number = self.places_taken.fetch_add(1, Ordering::Relaxed);
        format!("{}:{number}", self.replica).into()
    }

    /// Takes one request and `tokens` and, with `place` (the tenant's most requests in flight
    /// and a new place's name), a place in flight: `Ok(None)` when taken, `Ok(Some(…))` with
    /// what refused.
    async fn take(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        limits: TenantLimits,
        tokens: u64,
        place: Option<(u32, Arc<str>)>,
    ) -> Result<SharedTake, Unavailable> {
        // The tenant's places this replica freed since its last sending are freed first, in
        // the same call: a client that waits for each answer before its next request would
        // otherwise meet its own finished requests still counted.
        let mut freed = FreedOnTheWay {
            shared: Arc::clone(self),
            tenant: Arc::clone(tenant),
            places: match place {
                Some(_) => self.take_freed(tenant),
                None => Vec::new(),
            },
        };
        let taken = (self.take_with(tenant, limits, tokens, place, &freed.places)).await;
        if taken.is_ok() {
            // Redis ran the script, which freed them.
            freed.places.clear();
        }
        taken
    }

    /// Up to [`RELEASE_BATCH`] of the places the backlog holds for `tenant`, taken out of it.
    fn take_freed(&self, tenant: &Arc<str>) -> Vec<(Arc<str>, Instant)> {
        let mut backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        let Some(places) = backlog.freed.get_mut(tenant) else {
            return Vec::new();
        };
        let taken: Vec<_> = places.drain(..places.len().min(RELEASE_BATCH)).collect();
        if places.is_empty() {
            backlog.freed.remove(tenant);
        }
        taken
    }

    async fn take_with(
        &self,
        tenant: &str,
        limits: TenantLimits,
        tokens: u64,
        place: Option<(u32, Arc<str>)>,
        freed: &[(Arc<str>, Instant)],
    ) -> Result<SharedTake, Unavailable> {
        let key = self.key(tenant);
        let requests = limits.requests_per_minute.unwrap_or(0).to_string();
        let per_minute = limits.tokens_per_minute.unwrap_or(0).to_string();
        let tokens = tokens.to_string();
        let mut keys = vec![key.as_str()];
        let mut args = vec!["take", &requests, &per_minute, &tokens];
        // (key, most in flight, lease) for a place; only then are they written.
        let in_flight = (place.as_ref()).map(|(most, _)| {
            let lease = self.lease.0.as_millis().to_string();
            (self.in_flight_key(tenant), most.to_string(), lease)
        });
        if let (Some((in_flight_key, most, lease)), Some((_, name))) = (&in_flight, &place) {
            keys.push(in_flight_key);
            args.extend([most.as_str(), name, lease]);
            args.extend(freed.iter().map(|(place, _)| &**place));
        }
        let (reply, node) = self.call(&keys, &args).await?;
        let decision = match &reply {
            Reply::Array(Some(items)) => match items.as_slice() {
                [decision, wait, levels @ ..] => {
                    let levels = match levels {
                        [Reply::Integer(requests), Reply::Integer(tokens)] => {
                            Some([*requests, *tokens])
                        }
                        _ => None,
                    };
                    let refusal = match (decision, wait) {
                        (Reply::Integer(0), _) => Some(None),
                        (Reply::Integer(rate @ (1 | 2)), Reply::Integer(wait)) => {
                            let rate = if *rate == 1 {
                                Rate::Requests
                            } else {
                                Rate::Tokens
                            };
                            let wait = (*wait).clamp(0, 3_600_000).unsigned_abs();
                            let wait = Duration::from_millis(wait);
                            Some(Some(SharedRefusal::Rate(rate, wait)))
                        }
                        (Reply::Integer(3), _) => Some(Some(SharedRefusal::InFlight)),
                        _ => None,
                    };
                    refusal.map(|refusal| SharedTake { refusal, levels })
                }
                _ => None,
            },
            _ => None,
        };
        decision.ok_or_else(|| self.failed(node, &format!("unexpected reply {reply:?}"), true))
    }

    /// Notes that a request of `tenant` holds `place`, so that its lease is renewed while it
    /// runs; starts the renewing task at the first.
    fn hold(self: &Arc<Self>, tenant: &Arc<str>, place: &Arc<str>, taken: Taken) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.entry(Arc::clone(tenant))
            .or_default()
            .push((Arc::clone(place), taken));
        drop(held);
        if !self.renewing.swap(true, Ordering::AcqRel)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(renew_places(Arc::downgrade(self)));
        }
    }

    /// Frees `place` of `tenant`, off the request's path (see [`Backlog`]).
    fn release(self: &Arc<Self>, tenant: &Arc<str>, place: Arc<str>) {
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(places) = held.get_mut(tenant) {
                places.retain(|(held, _)| *held != place);
                if places.is_empty() {
                    held.remove(tenant);
                }
            }
        }
        self.add_to_backlog(|backlog| backlog.free(tenant, place));
    }

    /// Gives `amount` tokens back to `tenant` (charges them when negative), off the request's
    /// path (see [`Backlog`]). A give-back lost to an outage leaves the tenant charged its
    /// reservations.
    fn give_back(self: &Arc<Self>, tenant: &Arc<str>, tokens_per_minute: u64, amount: f64) {
        self.add_to_backlog(|backlog| backlog.owe(tenant, tokens_per_minute, amount));
    }

    /// Adds to the backlog with `add`; the first addition since the last sending schedules the
    /// next.
    fn add_to_backlog(self: &Arc<Self>, add: impl FnOnce(&mut Backlog)) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.add_to_backlog_unsent(add) {
            self.send_backlog_after(&runtime, GIVE_BACK_EVERY);
        }
    }

    /// Adds to the backlog with `add`; true when it was empty (no sending is scheduled).
    fn add_to_backlog_unsent(&self, add: impl FnOnce(&mut Backlog)) -> bool {
        let mut backlog = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
        let first = backlog.is_empty();
        add(&mut backlog);
        first
    }

    fn send_backlog_after(self: &Arc<Self>, runtime: &tokio::runtime::Handle, wait: Duration) {
        let shared = Arc::clone(self);
        runtime.spawn(async move {
            tokio::time::sleep(wait).await;
            shared.send_backlog().await;
        });
    }

    /// Sends the backlog, and keeps for another try after [`SHARED_REST`] what Redis did not
    /// take: tokens only if their call surely did not run (it met a node resting after a
    /// failure, was never sent, or Redis refused it with an error), for [`GIVE_BACK_FOR`], since
    /// a call that failed otherwise may have run and must not give them twice; places (freeing
    /// one twice changes nothing) while their leases last.
    async fn send_backlog(self: Arc<Self>) {
        let backlog = std::mem::take(&mut *self.backlog.lock().unwrap_or_else(|p| p.into_inner()));
        let mut unsent = Backlog::default();
        for (tenant, owed) in backlog.owed {
            let rate = owed.per_minute.to_string();
            // Charges first, then refunds: the script holds the level within a minute's worth
            // after each, as a local bucket after each settlement.
            let charged = owed.charged.to_string();
            let refunded = owed.refunded.to_string();
            let give = ["give", rate.as_str(), charged.as_str(), refunded.as_str()];
            let sent = self.call(&[&self.key(&tenant)], &give).await;
            if matches!(
                sent,
                Err(Unavailable {
                    may_have_run: false
                })
            ) && owed.since.elapsed() < GIVE_BACK_FOR
            {
                unsent.owed.insert(tenant, owed);
            }
        }
        for (tenant, mut places) in backlog.freed {
            places.retain(|(_, freed)| freed.elapsed() < self.lease.0);
            for batch in places.chunks(RELEASE_BATCH) {
                let mut release = vec!["release"];
                release.extend(batch.iter().map(|(place, _)| &**place));
                let key = self.in_flight_key(&tenant);
                if self.call(&[&key], &release).await.is_err() {
                    let unfreed = unsent.freed.entry(Arc::clone(&tenant)).or_default();
                    unfreed.extend_from_slice(batch);
                }
            }
        }
        if unsent.is_empty() {
            return;
        }
        let unscheduled = self.add_to_backlog_unsent(|backlog| backlog.merge(unsent));
        if unscheduled && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.send_backlog_after(&runtime, SHARED_REST);
        }
    }

    /// Runs the script on `keys` (one tenant's: all on one cluster node), unless a node it goes
    /// to failed within the last [`SHARED_REST`]; with the reply, the node that gave it.
    async fn call(&self, keys: &[&str], args: &[&str]) -> Result<(Reply, Arc<str>), Unavailable> {
        self.call_script(&SHARED_SCRIPT, keys, args).await
    }

    /// [`SharedLimits::call`] with another script.
    async fn call_script(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<(Reply, Arc<str>), Unavailable> {
        let mut node = self
            .client
            .node_for(keys.first().copied().unwrap_or_default());
        let timeout = self.config.timeout.get();
        let call = self.client.eval_from(&mut node, script, keys, args);
        let answered = tokio::time::timeout(timeout, call).await;
        // `node` is now the last node asked (after redirections), the one to blame.
        match answered {
            Ok(Ok(reply)) => {
                if self.down.swap(false, Ordering::AcqRel) {
                    tracing::info!(url = %self.config.url, "the shared rate limits answer again");
                }
                Ok((reply, node))
            }
            Ok(Err(redis::RedisError::Resting(_))) => Err(Unavailable {
                may_have_run: false,
            }),
            // A refusal (`READONLY` from a primary just demoted, `LOADING`, `BUSY`, `NOPERM`, a
            // redirection too many…): Redis did not run the script, or stopped it at its first
            // write (see `redis::refused_before_running`). Or the call never left: its
            // connection could not be made, or failed before its turn. Other error replies (a
            // proxy's `ERR` after forwarding the call, an ACL's refusal inside the script) may
            // have run.
            Ok(Err(e @ (redis::RedisError::Server(_) | redis::RedisError::Unsent(_)))) => {
                Err(self.failed(node, &e.to_string(), false))
            }
            Ok(Err(e)) => Err(self.failed(node, &e.to_string(), true)),
            Err(_) => {
                let why = format!("no answer within {}", self.config.timeout);
                Err(self.failed(node, &why, true))
            }
        }
    }

    /// Extends the leases of `places`, which `tenant`'s requests held a moment ago, where Redis
    /// has them; then puts back those Redis lost (restarted without persistence, a failover
    /// before they were replicated, a lapse while it was away) that it surely took and that are
    /// still held now, as their requests still run. A place freed meanwhile (the renewal slowed
    /// on its way, or sent again, after the release) is thus not taken again for a lease.
    async fn renew(&self, tenant: &Arc<str>, places: &[HeldPlace]) {
        if places.is_empty() {
            return;
        }
        let key = self.in_flight_key(tenant);
        let lease = self.lease.0.as_millis().to_string();
        let mut renewal = vec!["renew", lease.as_str(), "0"];
        renewal.extend(places.iter().map(|(place, _)| &**place));
        // The reply names the places Redis did not have.
        let Ok((Reply::Array(Some(replies)), _)) = self.call(&[&key], &renewal).await else {
            return;
        };
        let missing: Vec<&[u8]> = (replies.iter())
            .filter_map(|reply| match reply {
                Reply::Bulk(Some(place)) => Some(place.as_slice()),
                _ => None,
            })
            .collect();
        let lost: Vec<Arc<str>> = {
            let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let still_held = held.get(tenant).map(Vec::as_slice).unwrap_or_default();
            (still_held.iter())
                .filter(|(place, taken)| {
                    *taken == Taken::Surely && missing.iter().any(|name| *name == place.as_bytes())
                })
                .map(|(place, _)| Arc::clone(place))
                .collect()
        };
        if lost.is_empty() {
            return;
        }
        let count = lost.len().to_string();
        let mut put_back = vec!["renew", lease.as_str(), count.as_str()];
        put_back.extend(lost.iter().map(|place| &**place));
        let _ = self.call(&[&key], &put_back).await;
    }

    /// Rests `node`, which failed (one failed cluster node leaves the others' tenants shared),
    /// after a call that `may_have_run`.
    fn failed(&self, node: Arc<str>, why: &str, may_have_run: bool) -> Unavailable {
        self.client.rest(node, SHARED_REST);
        if !self.down.swap(true, Ordering::AcqRel) {
            let instead = match self.config.on_unavailable {
                SharedUnavailable::Local => "each replica counts on its own until it is back",
                SharedUnavailable::Refuse => {
                    "tenants with a shared limit (a rate, or maxConcurrent) are refused until it is back"
                }
            };
            tracing::warn!(url = %self.config.url, "the shared rate limits are unavailable ({why}); {instead}");
        }
        Unavailable { may_have_run }
    }
}

/// Why [`SharedLimits::reach`] did not get through.
#[derive(Debug)]
pub struct Unreached {
    /// Redis answered, with a refusal (a login, an ACL, a script): a setting to fix, where
    /// not being reached from one place may say little of another.
    pub refused: bool,
    pub why: String,
}

/// Places freed that ride on a take call; back to the backlog unless Redis surely ran it: the
/// call failed, or was dropped with its request (a client that left while Redis was asked),
/// perhaps before it was sent. Freeing a place twice changes nothing.
struct FreedOnTheWay {
    shared: Arc<SharedLimits>,
    tenant: Arc<str>,
    places: Vec<(Arc<str>, Instant)>,
}

impl Drop for FreedOnTheWay {
    fn drop(&mut self) {
        if self.places.is_empty() {
            return;
        }
        let places = std::mem::take(&mut self.places);
        let tenant = Arc::clone(&self.tenant);
        self.shared.add_to_backlog(|backlog| {
            backlog.freed.entry(tenant).or_default().extend(places);
        });
    }
}

/// What a replica sends to Redis off the requests' path, gathered for [`GIVE_BACK_EVERY`] so
/// that a busy tenant costs Redis one call for each rather than one a request.
#[derive(Debug, Default)]
struct Backlog {
    /// Tokens owed back to each tenant.
    owed: HashMap<Arc<str>, Owed>,
    /// The places in flight each tenant's requests freed, and when.
    freed: HashMap<Arc<str>, Vec<(Arc<str>, Instant)>>,
}

/// Tokens owed back to a tenant, or charged. Charges and refunds are summed apart: one sum
/// held within a minute's worth would lose a refund in the debt of a huge overrun.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Owed {
    /// Its tokens per minute, the latest.
    per_minute: u64,
    /// The overruns charged (zero or less).
    charged: f64,
    /// The unused reservations given back (zero or more).
    refunded: f64,
    /// When the oldest part was owed.
    since: Instant,
}

impl Backlog {
    fn is_empty(&self) -> bool {
        self.owed.is_empty() && self.freed.is_empty()
    }

    /// Adds `amount` to what `tenant` is owed (a charge when negative), at its latest rate.
    fn owe(&mut self, tenant: &Arc<str>, per_minute: u64, amount: f64) {
        let owed = self.owed.entry(Arc::clone(tenant)).or_insert(Owed {
            per_minute,
            charged: 0.0,
            refunded: 0.0,
            since: Instant::now(),
        });
        owed.per_minute = per_minute;
        if amount < 0.0 {
            owed.charged += amount;
        } else {
            owed.refunded += amount;
        }
    }

    /// Notes that `tenant`'s request freed `place` now.
    fn free(&mut self, tenant: &Arc<str>, place: Arc<str>) {
        let freed = self.freed.entry(Arc::clone(tenant)).or_default();
        freed.push((place, Instant::now()));
    }

    /// Takes in what an earlier sending could not send, before what came since.
    fn merge(&mut self, earlier: Backlog) {
        for (tenant, old) in earlier.owed {
            let owed = self.owed.entry(tenant).or_insert(Owed {
                charged: 0.0,
                refunded: 0.0,
                ..old
            });
            owed.charged += old.charged;
            owed.refunded += old.refunded;
            owed.since = owed.since.min(old.since);
        }
        for (tenant, places) in earlier.freed {
            self.freed.entry(tenant).or_default().extend(places);
        }
    }
}

/// Renews the leases of the places the replica's requests hold, every [`PLACE_RENEW_EVERY`],
/// until the shared limits are dropped (replaced by a reload, and their last request ended).
async fn renew_places(shared: Weak<SharedLimits>) {
    let Some(every) = shared.upgrade().map(|shared| shared.lease.1) else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let tenants: Vec<Arc<str>> = (shared.held.lock().unwrap_or_else(|p| p.into_inner()))
            .keys()
            .cloned()
            .collect();
        for tenant in tenants {
            // The places held now, not when the first tenant's were renewed.
            let places = (shared.held.lock().unwrap_or_else(|p| p.into_inner()))
                .get(&tenant)
                .cloned()
                .unwrap_or_default();
            shared.renew(&tenant, &places).await;
        }
    }
}

/// A random name for this replica's places in flight.
fn replica_name() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // Unique enough among replicas: the process and the time it started.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return format!("{}-{nanos}", std::process::id());
    }
    hangar_ledger::hex(&bytes)
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

    /// The `x-ratelimit-*` headers `quotas` writes, by name.
    fn quota_headers(quotas: &Quotas) -> Vec<(String, String)> {
        let mut headers = http::HeaderMap::new();
        quotas.write(&mut headers);
        let mut written: Vec<_> = (headers.iter())
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        written.sort();
        written
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn durations_are_written_as_go_writes_them() {
        let text = |millis| go_duration(Duration::from_millis(millis));
        assert_eq!(text(0), "0s");
        assert_eq!(text(17), "17ms");
        assert_eq!(text(1000), "1s");
        assert_eq!(text(8640), "8.64s");
        assert_eq!(text(360_000), "6m0s");
        assert_eq!(text(3_723_500), "1h2m3.5s");
        assert_eq!(text(1005), "1.005s");
        assert_eq!(text(60_050), "1m0.05s");
        assert_eq!(text(3_600_000), "1h0m0s");
        assert_eq!(text(u64::MAX), "5124095576030h25m51.615s");
    }

    #[test]
    fn an_admission_and_a_refusal_say_where_the_buckets_stand() {
        let limiter = Arc::new(Limiter::default());
        let limits = TenantLimits {
            requests_per_minute: Some(60),
            tokens_per_minute: Some(1000),
            ..Default::default()
        };
        let now = Instant::now();
        let first = limiter.admit(&tenant(), limits, 100, 400, now).unwrap();
        assert_eq!(
            quota_headers(&first.quotas),
            [
                pair("x-ratelimit-limit-requests", "60"),
                pair("x-ratelimit-limit-tokens", "1000"),
                pair("x-ratelimit-remaining-requests", "59"),
                pair("x-ratelimit-remaining-tokens", "600"),
                // One request comes back a second; 400 tokens in 24 seconds.
                pair("x-ratelimit-reset-requests", "1s"),
                pair("x-ratelimit-reset-tokens", "24s"),
            ]
        );
        // Refused by the tokens: the buckets as they stand, the refused request taking nothing.
        let refusal = limiter.admit(&tenant(), limits, 100, 700, now).unwrap_err();
        let quotas = refusal.quotas.as_deref().unwrap();
        assert_eq!(quotas.requests.unwrap().remaining, 59);
        assert_eq!(quotas.tokens.unwrap().remaining, 600);
        // A tenant without rate limits gets no headers.
        let unlimited = limiter.admit(&"other".into(), TenantLimits::default(), 100, 400, now);
        assert_eq!(quota_headers(&unlimited.unwrap().quotas), []);
        // Refused for its requests in flight: the same, nothing taken.
        let capped = TenantLimits {
            max_concurrent: Some(1),
            ..limits
        };
        let refusal = limiter.admit(&tenant(), capped, 100, 10, now).unwrap_err();
        assert_eq!(refusal.code, "concurrency_limit");
        let quotas = refusal.quotas.as_deref().unwrap();
        assert_eq!(quotas.requests.unwrap().remaining, 59);
        assert_eq!(quotas.tokens.unwrap().remaining, 600);
        drop(first);
        let capped_without_rates = TenantLimits {
            max_concurrent: Some(0),
            ..Default::default()
        };
        let refusal = limiter.admit(&"third".into(), capped_without_rates, 100, 10, now);
        assert_eq!(
            quota_headers(refusal.unwrap_err().quotas.as_deref().unwrap()),
            []
        );
    }

    #[test]
    fn a_bucket_in_debt_has_nothing_remaining_and_resets_past_a_minute() {
        let quota = Quota::new(-500.0, 1000);
        assert_eq!(quota.remaining, 0);
        assert_eq!(quota.reset, Duration::from_secs(90));
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
    fn a_changed_limit_keeps_what_the_old_one_refilled_and_holds_to_the_new_size() {
        let limiter = Arc::new(Limiter::default());
        let at = |per_minute| TenantLimits {
            requests_per_minute: Some(per_minute),
            ..Default::default()
        };
        let start = Instant::now();
        for _ in 0..60 {
            drop(limiter.admit(&tenant(), at(60), 100, 0, start).unwrap());
        }
        assert!(limiter.admit(&tenant(), at(60), 100, 0, start).is_err());
        // Ten minutes idle, then the limit is raised: the bucket is full at its new size…
        let later = start + Duration::from_secs(600);
        for _ in 0..120 {
            drop(limiter.admit(&tenant(), at(120), 100, 0, later).unwrap());
        }
        assert!(limiter.admit(&tenant(), at(120), 100, 0, later).is_err());
        // …and a limit that flips between two values (replicas reloaded one after the other)
        // still refills, each second at the rate it had: two requests back after the second at
        // 120 (one spent, one left), one more after the second at 60.
        let flip = later + Duration::from_secs(1);
        assert!(limiter.admit(&tenant(), at(60), 100, 0, flip).is_ok());
        let flop = flip + Duration::from_secs(1);
        for _ in 0..2 {
            assert!(limiter.admit(&tenant(), at(120), 100, 0, flop).is_ok());
        }
        assert!(limiter.admit(&tenant(), at(120), 100, 0, flop).is_err());
    }

    #[tokio::test]
    async fn what_redis_did_not_take_back_is_kept_while_it_may_still_be_sent() {
        // A server that takes connections and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}", silent.local_addr().unwrap());
        let config: crate::config::SharedLimitsConfig =
            serde_json::from_value(serde_json::json!({ "url": url })).unwrap();
        let shared = Arc::new(SharedLimits::new(&config).unwrap());
        let owed = |shared: &SharedLimits| {
            let backlog = shared.backlog.lock().unwrap();
            backlog
                .owed
                .get(&tenant())
                .map(|o| (o.per_minute, o.charged + o.refunded))
        };
        let freed = |shared: &SharedLimits| {
            let backlog = shared.backlog.lock().unwrap();
            let places = backlog.freed.get(&tenant()).into_iter().flatten();
            places
                .map(|(place, _)| place.to_string())
                .collect::<Vec<_>>()
        };
        assert!(shared.add_to_backlog_unsent(|b| b.owe(&tenant(), 300, 50.0)));
        assert!(!shared.add_to_backlog_unsent(|b| b.owe(&tenant(), 300, 30.0)));
        shared.add_to_backlog_unsent(|b| b.free(&tenant(), "r:1".into()));
        // Redis is asked and does not answer: the tokens may have been given, so they are not
        // sent again; freeing a place twice is harmless, so it is kept.
        Arc::clone(&shared).send_backlog().await;
        assert_eq!(owed(&shared), None, "never given twice");
        assert_eq!(freed(&shared), ["r:1"], "kept for the next try");
        // While Redis rests after that failure it is not asked: both wait for it.
        shared.add_to_backlog_unsent(|b| b.owe(&tenant(), 300, 20.0));
        Arc::clone(&shared).send_backlog().await;
        assert_eq!(
            owed(&shared),
            Some((300, 20.0)),
            "kept: Redis was not asked"
        );
        assert_eq!(freed(&shared), ["r:1"]);
        // Places whose leases ended, and tokens owed for two minutes, are given up.
        let long_ago = Instant::now() - Duration::from_secs(121);
        shared.add_to_backlog_unsent(|b| {
            b.owed.values_mut().for_each(|owed| owed.since = long_ago);
            b.freed
                .values_mut()
                .flatten()
                .for_each(|(_, at)| *at = long_ago);
        });
        Arc::clone(&shared).send_backlog().await;
        assert_eq!(owed(&shared), None, "given up after two minutes");
        assert_eq!(freed(&shared), Vec::<String>::new(), "its lease has ended");
        drop(silent);
    }

    #[tokio::test]
    async fn tokens_owed_back_are_sent_again_when_their_call_never_left() {
        // Nothing listens on the port: no connection, so the call was never sent.
        let port = hangar_testkit::redis::free_port().unwrap();
        let owed = owed_after_sending_a_refund(&format!("redis://127.0.0.1:{port}")).await;
        assert_eq!(owed, Some((300, 50.0)), "kept for when Redis is back");
    }

    /// What is still owed back to the tenant after one refund (50 tokens of a 300-a-minute
    /// bucket) was sent to Redis at `url`, within a second.
    async fn owed_after_sending_a_refund(url: &str) -> Option<(u64, f64)> {
        let config: crate::config::SharedLimitsConfig =
            serde_json::from_value(serde_json::json!({"url": url, "timeout": "1s"})).unwrap();
        let shared = Arc::new(SharedLimits::new(&config).unwrap());
        shared.add_to_backlog_unsent(|b| b.owe(&tenant(), 300, 50.0));
        Arc::clone(&shared).send_backlog().await;
        let backlog = shared.backlog.lock().unwrap();
        backlog
            .owed
            .get(&tenant())
            .map(|o| (o.per_minute, o.refunded))
    }

    #[tokio::test]
    async fn a_take_refused_after_it_charged_the_rates_may_have_run() {
        // An ACL user without `+zadd`: the script charges the rates, then its place is refused.
        let rates = ["~hangar:*", "+evalsha", "+eval", "+get", "+set", "+time"];
        let places = ["+zremrangebyscore", "+zcard", "+pexpire"];
        let mut args = vec!["--user", "gateway", "on", ">pw"];
        args.extend(rates.iter().chain(&places));
        let redis = hangar_testkit::redis::RedisServer::start(&args).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "pw").unwrap();
        let config: crate::config::SharedLimitsConfig = serde_json::from_value(serde_json::json!({
            "url": format!("redis://gateway@127.0.0.1:{}", redis.port()),
            "passwordFile": password,
            "timeout": "1s",
        }))
        .unwrap();
        let shared = Arc::new(SharedLimits::new(&config).unwrap());
        let limits = TenantLimits {
            requests_per_minute: Some(60),
            max_concurrent: Some(1),
            ..TenantLimits::default()
        };
        let place = Some((1, shared.new_place()));
        let taken = shared.take(&tenant(), limits, 0, place).await;
        assert!(
            matches!(taken, Err(Unavailable { may_have_run: true })),
            "{taken:?}"
        );
        let key = shared.key(&tenant());
        let charged = hangar_testkit::redis::cli(redis.port(), &["get", &key]).unwrap();
        assert!(!charged.trim().is_empty(), "the rates were charged");
    }

    #[tokio::test]
    async fn tokens_owed_back_are_sent_again_when_redis_refused_them_with_an_error() {
        // A replica (its primary away, so it serves all the same) refuses every write with
        // `READONLY`, as a primary demoted in a failover does: the script did not run.
        let away = hangar_testkit::redis::free_port().unwrap().to_string();
        let replica =
            hangar_testkit::redis::RedisServer::start(&["--replicaof", "127.0.0.1", &away])
                .unwrap();
        let owed = owed_after_sending_a_refund(&replica.url()).await;
        assert_eq!(owed, Some((300, 50.0)), "kept for the new primary");
    }

    #[tokio::test]
    async fn a_refund_settled_with_an_absurd_overrun_is_not_lost_in_its_debt() {
        let (redis, shared) = one_place_in_redis();
        let shared = Arc::new(shared);
        // Within one sending, one request reports absurd usage and another leaves 500 of its
        // reservation unused.
        shared.add_to_backlog_unsent(|b| {
            b.owe(&tenant(), 1000, -1e12);
            b.owe(&tenant(), 1000, 500.0);
        });
        Arc::clone(&shared).send_backlog().await;
        let saved = hangar_testkit::redis::cli(redis.port(), &["get", &shared.key(&tenant())]);
        let saved = saved.unwrap();
        // As in a local bucket: the overrun costs a minute's worth of debt, and the refund is
        // given back on top of that.
        let tokens: f64 = saved.split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(tokens, -500.0, "{saved}");
    }

    #[tokio::test]
    async fn a_place_redis_lost_is_put_back_while_its_request_runs() {
        let (redis, mut shared) = one_place_in_redis();
        shared.lease = (Duration::from_millis(400), Duration::from_millis(100));
        let shared = Arc::new(shared);
        let (limiter, limits, fallbacks, tenant) = one_place_tenant();
        let admit = || limiter.admit_shared(&shared, &tenant, limits, 100, 0, &fallbacks);
        let held = admit().await.unwrap();
        // Redis loses the tenant's places (restarted without persistence, say).
        let key = shared.in_flight_key(&tenant);
        let places = || hangar_testkit::redis::cli(redis.port(), &["zcard", &key]).unwrap();
        hangar_testkit::redis::cli(redis.port(), &["del", &key]).unwrap();
        assert_eq!(places().trim(), "0");
        // The next renewal puts the place back: another replica's request is refused again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(places().trim(), "1");
        let other = Arc::new(Limiter::default());
        let refused = other.admit_shared(&shared, &tenant, limits, 100, 0, &fallbacks);
        assert!(refused.await.is_err());
        drop(held);
    }

    #[tokio::test]
    async fn a_place_taken_after_its_call_timed_out_lasts_as_long_as_its_request() {
        let redis = hangar_testkit::redis::RedisServer::start(&[]).unwrap();
        let config: crate::config::SharedLimitsConfig =
            serde_json::from_value(serde_json::json!({"url": redis.url(), "timeout": "100ms"}))
                .unwrap();
        let mut shared = SharedLimits::new(&config).unwrap();
        // Leases outlast the second Redis is left alone after the timeout, when nothing is
        // renewed.
        shared.lease = (Duration::from_millis(1500), Duration::from_millis(200));
        let shared = Arc::new(shared);
        // Connected, and the script loaded.
        shared.reach().await.unwrap();
        let (limiter, limits, fallbacks, tenant) = one_place_tenant();
        // Redis takes the place only after the call timed out; the request, decided by the
        // replica alone, runs on.
        redis.freeze().unwrap();
        let admitted = limiter.admit_shared(&shared, &tenant, limits, 100, 0, &fallbacks);
        let held = admitted.await.unwrap();
        redis.thaw().unwrap();
        let key = shared.in_flight_key(&tenant);
        let places = || hangar_testkit::redis::cli(redis.port(), &["zcard", &key]).unwrap();
        // Well past its first lease, the place is still held...
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(places().trim(), "1", "renewed while its request runs");
        // ...and freed when the request ends.
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(places().trim(), "0");
    }

    #[tokio::test]
    async fn a_renewal_that_crosses_its_places_release_does_not_take_it_again() {
        let (redis, shared) = one_place_in_redis();
        let shared = Arc::new(shared);
        let (limiter, limits, fallbacks, tenant) = one_place_tenant();
        let admit = || limiter.admit_shared(&shared, &tenant, limits, 100, 0, &fallbacks);
        let held = admit().await.unwrap();
        let key = shared.in_flight_key(&tenant);
        let places = || hangar_testkit::redis::cli(redis.port(), &["zcard", &key]).unwrap();
        // A renewal of the places held now...
        let renewing = shared.held.lock().unwrap().get(&tenant).cloned().unwrap();
        assert_eq!(renewing.len(), 1);
        // ...reaches Redis only after the request ended and its place was freed.
        drop(held);
        Arc::clone(&shared).send_backlog().await;
        assert_eq!(places().trim(), "0");
        shared.renew(&tenant, &renewing).await;
        assert_eq!(places().trim(), "0", "the freed place is not taken again");
        let again = admit().await.unwrap();
        // A place Redis lost while its request runs is put back all the same.
        hangar_testkit::redis::cli(redis.port(), &["del", &key]).unwrap();
        let renewing = shared.held.lock().unwrap().get(&tenant).cloned().unwrap();
        shared.renew(&tenant, &renewing).await;
        assert_eq!(places().trim(), "1", "put back");
        drop(again);
    }

    /// A Redis for the shared limits, and the limits.
    fn one_place_in_redis() -> (hangar_testkit::redis::RedisServer, SharedLimits) {
        let redis = hangar_testkit::redis::RedisServer::start(&[]).unwrap();
        let config: crate::config::SharedLimitsConfig =
            serde_json::from_value(serde_json::json!({"url": redis.url(), "timeout": "1s"}))
                .unwrap();
        let shared = SharedLimits::new(&config).unwrap();
        (redis, shared)
    }

    /// A limiter, the limits of a tenant with one request in flight at most, the fallbacks'
    /// counter and the tenant.
    fn one_place_tenant() -> (Arc<Limiter>, TenantLimits, Counters, Arc<str>) {
        let limits = TenantLimits {
            max_concurrent: Some(1),
            ..TenantLimits::default()
        };
        let fallbacks = Counters::new("fallbacks", "", &["action"]);
        (Arc::new(Limiter::default()), limits, fallbacks, tenant())
    }

    #[tokio::test]
    async fn the_shared_buckets_say_where_they_stand_as_the_local_ones_do() {
        let (_redis, shared) = one_place_in_redis();
        let shared = Arc::new(shared);
        let (limiter, _, fallbacks, tenant) = one_place_tenant();
        let limits = TenantLimits {
            requests_per_minute: Some(60),
            tokens_per_minute: Some(1000),
            ..Default::default()
        };
        let admit =
            |tokens| limiter.admit_shared(&shared, &tenant, limits, 100, tokens, &fallbacks);
        let first = admit(400).await.unwrap();
        let (requests, tokens) = (first.quotas.requests.unwrap(), first.quotas.tokens.unwrap());
        assert_eq!((requests.limit, requests.remaining), (60, 59));
        assert_eq!((tokens.limit, tokens.remaining), (1000, 600));
        assert!(
            tokens.reset <= Duration::from_secs(24),
            "{:?}",
            tokens.reset
        );
        assert!(tokens.reset > Duration::from_secs(23), "{:?}", tokens.reset);
        // The buckets refill meanwhile (a token each 60 ms, a request a second): a slow
        // machine may see a little more.
        let refusal = admit(700).await.unwrap_err();
        assert_eq!(refusal.code, "tokens_per_minute");
        let quotas = refusal.quotas.as_deref().unwrap();
        assert!((59..=60).contains(&quotas.requests.unwrap().remaining));
        assert!((600..=620).contains(&quotas.tokens.unwrap().remaining));
    }

    #[tokio::test]
    async fn a_place_in_flight_is_renewed_while_its_request_runs_and_freed_when_it_ends() {
        let (redis, mut shared) = one_place_in_redis();
        shared.lease = (Duration::from_millis(400), Duration::from_millis(100));
        let shared = Arc::new(shared);
        let (limiter, limits, fallbacks, tenant) = one_place_tenant();
        let admit = || limiter.admit_shared(&shared, &tenant, limits, 100, 0, &fallbacks);
        let held = admit().await.unwrap();
        let places = || {
            let key = shared.in_flight_key(&tenant);
            hangar_testkit::redis::cli(redis.port(), &["zcard", &key]).unwrap()
        };
        // Three leases later the place is still held, renewed by the replica.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(places().trim(), "1");
        // Another replica's request is refused meanwhile (its own count would let it in).
        let other = Arc::new(Limiter::default());
        let refused = other.admit_shared(&shared, &tenant, limits, 100, 0, &fallbacks);
        assert!(refused.await.is_err());
        drop(held);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(places().trim(), "0");
        let again = admit().await.unwrap();

        // With `concurrency: false` each replica counts on its own, and Redis is not asked.
        let per_replica: crate::config::SharedLimitsConfig =
            serde_json::from_value(serde_json::json!({"url": redis.url(), "concurrency": false}))
                .unwrap();
        let per_replica = Arc::new(SharedLimits::new(&per_replica).unwrap());
        let own = other.admit_shared(&per_replica, &tenant, limits, 100, 0, &fallbacks);
        assert!(own.await.is_ok());
        assert_eq!(places().trim(), "1", "only `again`'s place");
        drop(again);
    }

    #[tokio::test]
    async fn a_client_asking_one_request_at_a_time_never_meets_its_own_ended_requests() {
        let (redis, shared) = one_place_in_redis();
        let shared = Arc::new(shared);
        let (limiter, limits, fallbacks, tenant) = one_place_tenant();
        let admit = || limiter.admit_shared(&shared, &tenant, limits, 100, 0, &fallbacks);
        // Each request asks the moment the one before has ended, well within the 50 ms
        // after which freed places are sent on their own.
        for asked in 0..20 {
            let admitted = admit().await;
            assert!(admitted.is_ok(), "request {asked}: {:?}", admitted.err());
        }
        // The last one's place is freed by the backlog as before.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let key = shared.in_flight_key(&tenant);
        let places = hangar_testkit::redis::cli(redis.port(), &["zcard", &key]).unwrap();
        assert_eq!(places.trim(), "0");
    }

    #[tokio::test]
    async fn places_freed_on_a_call_its_client_left_go_back_to_be_sent_again() {
        // A server that takes connections and never answers: the call is dropped with its
        // request, having run nowhere.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://127.0.0.1:{}", silent.local_addr().unwrap().port());
        let config: crate::config::SharedLimitsConfig =
            serde_json::from_value(serde_json::json!({"url": url, "timeout": "5s"})).unwrap();
        let shared = Arc::new(SharedLimits::new(&config).unwrap());
        let (_, limits, _, tenant) = one_place_tenant();
        shared.add_to_backlog_unsent(|backlog| backlog.free(&tenant, "ended".into()));
        let place = Some((1, shared.new_place()));
        let left = tokio::time::timeout(
            Duration::from_millis(200),
            shared.take(&tenant, limits, 0, place),
        );
        assert!(left.await.is_err(), "the client left");
        let backlog = shared.backlog.lock().unwrap();
        let waiting: Vec<&str> = (backlog.freed.get(&tenant).into_iter().flatten())
            .map(|(place, _)| &**place)
            .collect();
        assert_eq!(waiting, ["ended"]);
    }

    #[tokio::test]
    async fn a_place_taken_for_a_client_that_left_meanwhile_is_freed() {
        let (redis, shared) = one_place_in_redis();
        let shared = Arc::new(shared);
        let (limiter, limits, fallbacks, tenant) = one_place_tenant();
        let admit = || limiter.admit_shared(&shared, &tenant, limits, 100, 0, &fallbacks);
        // Connected, and the script loaded; the place is freed again.
        drop(admit().await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Redis takes the place only after the client left (as after a call that timed out).
        redis.freeze().unwrap();
        let left = tokio::time::timeout(Duration::from_millis(200), admit()).await;
        assert!(left.is_err());
        redis.thaw().unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let key = shared.in_flight_key(&tenant);
        let places = hangar_testkit::redis::cli(redis.port(), &["zcard", &key]).unwrap();
        assert_eq!(places.trim(), "0");
        assert!(admit().await.is_ok(), "the tenant's one place is free");
    }

    #[tokio::test]
    async fn a_call_that_fails_after_a_redirection_rests_the_node_it_was_sent_to() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A cluster node that takes connections and never answers, and one that sends every
        // call there.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_port = silent.local_addr().unwrap().port();
        let seed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let seed_port = seed.local_addr().unwrap().port();
        let reads = Arc::new(AtomicU32::new(0));
        let key_a = format!("hangar:{{{}}}:rates", tenant());
        let moved = format!("-MOVED {} 127.0.0.1:{silent_port}\r\n", redis::slot(&key_a));
        let counted = Arc::clone(&reads);
        tokio::spawn(async move {
            while let Ok((mut connection, _)) = seed.accept().await {
                let (counted, moved) = (Arc::clone(&counted), moved.clone());
                tokio::spawn(async move {
                    let mut buffer = [0; 4096];
                    while connection.read(&mut buffer).await.unwrap_or(0) > 0 {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let _ = connection.write_all(moved.as_bytes()).await;
                    }
                });
            }
        });
        let url = format!("redis://127.0.0.1:{seed_port}");
        let config: crate::config::SharedLimitsConfig =
            serde_json::from_value(serde_json::json!({"url": url, "timeout": "200ms"})).unwrap();
        let shared = Arc::new(SharedLimits::new(&config).unwrap());
        let limiter = Arc::new(Limiter::default());
        let fallbacks = Counters::new("fallbacks", "", &["action"]);
        let other: Arc<str> = "other".into();
        let per_minute = TenantLimits {
            requests_per_minute: Some(60),
            ..Default::default()
        };
        let admit = |tenant: &Arc<str>| {
            let (tenant, shared, limiter, fallbacks) =
                (Arc::clone(tenant), &shared, &limiter, &fallbacks);
            async move {
                limiter
                    .admit_shared(shared, &tenant, per_minute, 100, 0, fallbacks)
                    .await
            }
        };
        // The tenant's call goes on to the silent node and times out there: that node rests...
        assert!(admit(&tenant()).await.is_ok(), "decided locally");
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // ...not the URL's, which another tenant's call still reaches; sent on to the resting
        // node, it is decided at once rather than wait there again...
        let started = Instant::now();
        assert!(admit(&other).await.is_ok());
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        assert!(started.elapsed() < Duration::from_millis(100));
        // ...while the tenant's next call, on the resting node, is decided at once.
        let started = Instant::now();
        assert!(admit(&tenant()).await.is_ok());
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        drop(silent);
    }

    #[test]
    fn new_redis_certificates_make_a_new_connection_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let certified = rcgen::generate_simple_self_signed(vec!["redis".to_owned()]).unwrap();
        std::fs::write(&ca, certified.cert.pem()).unwrap();
        let config: crate::config::SharedLimitsConfig = serde_json::from_value(
            serde_json::json!({"url": "rediss://redis", "tls": {"caFile": ca}}),
        )
        .unwrap();
        let first = SharedLimits::new(&config).unwrap();
        assert!(first.same_as(&SharedLimits::new(&config).unwrap()));
        let renewed = rcgen::generate_simple_self_signed(vec!["redis".to_owned()]).unwrap();
        std::fs::write(&ca, renewed.cert.pem()).unwrap();
        assert!(!first.same_as(&SharedLimits::new(&config).unwrap()));
        std::fs::write(&ca, "not a certificate").unwrap();
        let error = SharedLimits::new(&config).unwrap_err();
        assert!(error.starts_with("limits.shared.tls.caFile: "), "{error}");
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
    fn a_prompt_over_the_limit_by_itself_is_named_not_max_tokens() {
        let limits = TenantLimits {
            tokens_per_minute: Some(2000),
            ..Default::default()
        };
        let refusal = check_prompt(limits, 2254, "messages").unwrap_err();
        assert_eq!(refusal.code, "tokens_exceed_limit");
        assert_eq!(refusal.param.as_deref(), Some("messages"));
        assert!(
            refusal.message.contains("prompt is too long"),
            "{}",
            refusal.message
        );
        assert!(
            !refusal.message.contains("max_tokens"),
            "{}",
            refusal.message
        );
        assert!(check_prompt(limits, 2000, "messages").is_ok());
        assert!(check_prompt(TenantLimits::default(), 1 << 40, "input").is_ok());
    }

    #[test]
    fn the_concurrency_refusal_reads_right_for_a_limit_of_one() {
        assert_eq!(
            in_flight_refusal(1).message,
            "this tenant is at its limit of requests in flight (1)"
        );
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
