//! Waivers: accepted risks, by annotation on the object or by a waiver file with scope, reason,
//! approver and expiry. The report lists the waivers used, unused and expired.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::date::Date;
use hangar_core::ObjectRef;

/// The annotation prefix that waives a check on one object: `hangar.dev/waive.EXP-001: "<reason>"`.
pub const WAIVE_ANNOTATION_PREFIX: &str = "hangar.dev/waive.";

/// A waiver file (`--waivers`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaiverFile {
    pub waivers: Vec<Waiver>,
}

/// One accepted risk.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    /// The check id waived, e.g. `EXP-008`.
    pub check: String,
    /// Which objects it covers; an empty scope covers every object.
    #[serde(default)]
    pub scope: WaiverScope,
    /// Why the risk is accepted.
    pub reason: String,
    /// Who accepted it.
    pub approver: String,
    /// Last day the waiver applies (`YYYY-MM-DD`). Required: risks are accepted for a time.
    pub expires: String,
}

/// Which objects a waiver covers. Every given key must match; `name` may use `*` globs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaiverScope {
    pub namespace: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
}

impl WaiverFile {
    /// Reads a waiver file, rejecting unknown keys, missing fields and bad dates.
    pub fn from_yaml(text: &str) -> Result<WaiverFile, String> {
        let file: WaiverFile = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        for (i, w) in file.waivers.iter().enumerate() {
            Date::parse(&w.expires)
                .map_err(|e| format!("waivers[{i}] ({}): expires: {e}", w.check))?;
            if w.reason.trim().is_empty() || w.approver.trim().is_empty() {
                return Err(format!(
                    "waivers[{i}] ({}): a waiver needs a reason and an approver",
                    w.check
                ));
            }
        }
        Ok(file)
    }
}

impl Waiver {
    pub fn expires_on(&self) -> Option<Date> {
        Date::parse(&self.expires).ok()
    }

    pub fn is_expired(&self, today: Date) -> bool {
        self.expires_on().is_some_and(|d| d < today)
    }

    /// Whether this waiver covers `check` on `object`.
    pub fn covers(&self, check: &str, object: &ObjectRef) -> bool {
        let matches =
            |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| glob(w, have));
        self.check.eq_ignore_ascii_case(check)
            && matches(&self.scope.namespace, &object.namespace)
            && matches(&self.scope.kind, &object.kind)
            && matches(&self.scope.name, &object.name)
    }
}

/// `*` matches any run of characters; everything else matches itself. Each piece between stars
/// is taken at its first place, which is enough for `*` alone and keeps the time linear in the
/// name (trying every split was exponential in the number of stars).
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let head = pieces.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(head) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        let Some(at) = rest.find(piece) else {
            return false;
        };
        rest = rest.get(at + piece.len()..).unwrap_or_default();
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("torchserve-*", "torchserve-a"));
        assert!(glob("*", ""));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c", "abd"));
        assert!(glob("a*b*b", "abb") && !glob("a*b*b", "ab"));
        assert!(glob("*-prod", "chat-prod") && !glob("*-prod", "chat-prod-2"));
        assert!(glob("vllm", "vllm") && !glob("vllm", "vllm-2"));
        assert!(glob("**a", "a") && glob("é*", "été"));
        // Many stars against a long name that does not match: at once, not after 2^30 tries.
        let stars = "*a".repeat(30) + "!";
        assert!(!glob(&stars, &"a".repeat(200)));
    }

    #[test]
    fn a_waiver_covers_its_scope_only() {
        let file = WaiverFile::from_yaml("waivers:\n- check: EXP-008\n  scope: {namespace: research, name: \"ts-*\"}\n  reason: lab only\n  approver: jane\n  expires: 2027-03-31\n").unwrap();
        let w = &file.waivers[0];
        assert!(w.covers("EXP-008", &ObjectRef::new("Deployment", "research", "ts-1")));
        assert!(!w.covers("EXP-008", &ObjectRef::new("Deployment", "prod", "ts-1")));
        assert!(!w.covers("EXP-001", &ObjectRef::new("Deployment", "research", "ts-1")));
        assert!(w.is_expired(Date::parse("2027-04-01").unwrap()));
        assert!(!w.is_expired(Date::parse("2027-03-31").unwrap()));
    }

    #[test]
    fn bad_waiver_files_are_clear_errors() {
        let err = WaiverFile::from_yaml(
            "waivers:\n- check: EXP-008\n  reason: x\n  approver: y\n  expires: soon\n",
        )
        .unwrap_err();
        assert!(
            err.contains("expires") && err.contains("YYYY-MM-DD"),
            "{err}"
        );
        let err = WaiverFile::from_yaml("waivers:\n- check: EXP-008\n  reason: x\n  approver: y\n  expires: 2027-01-01\n  scopes: {}\n").unwrap_err();
        assert!(err.contains("scopes"), "{err}");
        let err = WaiverFile::from_yaml(
            "waivers:\n- check: EXP-008\n  reason: x\n  expires: 2027-01-01\n",
        )
        .unwrap_err();
        assert!(err.contains("approver"), "{err}");
    }
}
