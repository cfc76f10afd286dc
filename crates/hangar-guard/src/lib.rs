//! The gateway's guards, run on every request: redaction of secrets and personal data
//! ([`Redactor`]), prompt-injection heuristics ([`InjectionScanner`]), system-prompt canaries
//! ([`CanaryWatch`]) and model-extraction signals per key ([`ExtractionMonitor`]).
//!
//! Pure: no I/O, no async, no clocks (time is passed in), no panics on any input. The redactor
//! and the scanner are built once and shared across threads; on a clean prompt neither
//! allocates (but for the scanner's copy of a prompt in Cyrillic or Greek, whose look-alikes of
//! Latin letters it reads as Latin).

mod base64;
pub mod canary;
pub mod extraction;
pub mod injection;
pub mod redact;

pub use canary::{CanaryWatch, new_canary_token};
pub use extraction::{
    ExtractionAlert, ExtractionMonitor, ExtractionReason, ExtractionSignals, ExtractionThresholds,
};
pub use injection::{BLOCK_SCORE, GuardAction, InjectionScanner, InjectionSignal};
pub use redact::{Redaction, Redactor, SecretKind};
