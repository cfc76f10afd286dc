//! Prompt-injection heuristics (OWASP LLM01): phrases that try to override the system prompt,
//! extract it, swap the model's persona or spoof chat-template turns; invisible Unicode that
//! smuggles instructions; base64 payloads to be decoded and obeyed.
//!
//! Heuristics, not a classifier: a score and the rules that fired, for the gateway to log, flag
//! or block. All phrase rules run in two regex sets, one for the English, one for the
//! translations, whose DFAs read the text together in one pass; text without a match costs that
//! pass, a sampled probe for base64 runs, and a byte scan when it is not ASCII. The regexes that weigh a match are compiled the
//! first time a rule fires.
//!
//! The phrase rules read the words as a model does: decomposed text is composed, zero-width and
//! other format characters are dropped, full-width forms, styled letters and Cyrillic or Greek
//! look-alikes of Latin letters read as ASCII (in a copy, made only for non-ASCII text that has
//! one), and `_`, `-` and Markdown emphasis join words as a space does, and leetspeak's digits
//! and symbols as the letters they stand for (`1gn0r3`; both in the patterns themselves, so
//! ASCII text is never copied). The two strongest requests, to ignore the instructions and to
//! show the system prompt, are read in ten other languages too (`translations.rs`). Text that
//! names ROT13 or a Caesar cipher, or asks to be read backwards, is also read so, and text
//! with words spelled letter by letter (`I G N O R E`) or joined by dots, put back together.
//!
//! Where a phrase stands weighs as much as the phrase: a request where one starts ("Ignore all
//! previous instructions", "please ignore…") blocks; the same words in a sentence about them
//! ("why does the model ignore the system prompt?"), negated, or in a condition for people
//! ("if you use Windows, ignore the instructions above") flag or count for nothing. Only the
//! words around a match are read, and the first matches weighed, so that a long prompt costs
//! a scan, not a scan a match.
//!
//! No pattern has a bounded gap like `.{0,60}`: on text dense with trigger words such gaps make
//! a combined DFA explode (milliseconds per prompt). "X within N characters of Y" is checked in
//! code instead (`near`), only when the rarer half already matched.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use regex::Regex;
use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{self as lazy, DFA};
use regex_automata::nfa::thompson::{self, pikevm::PikeVM};
use regex_automata::util::pool::Pool;
use regex_automata::{Input, MatchKind, PatternSet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization as _;

use crate::redact::next_byte;

/// A score at or above which a prompt should be blocked when the tenant's action is
/// [`GuardAction::Block`]: one strong rule (`ignore-instructions`, `jailbreak-persona`, a
/// direct request for the system prompt) or two weaker ones. Lower scores are flagged instead.
pub const BLOCK_SCORE: u32 = 60;

/// What the gateway does when a guard fires (a tenant's `injection` setting).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    /// Do not scan.
    Off,
    /// Record the decision in the audit log and metrics only.
    Log,
    /// Record it and tell the client (the `x-hangar-guard` response header).
    Flag,
    /// Refuse the request (400), or cut an answer that leaks a canary.
    Block,
}

impl GuardAction {
    /// The name used in configuration, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardAction::Off => "off",
            GuardAction::Log => "log",
            GuardAction::Flag => "flag",
            GuardAction::Block => "block",
        }
    }

    /// What to do with `signal` when this is the configured action: `Block` blocks only
    /// signals that reach [`BLOCK_SCORE`] and flags the rest; the others apply as they are.
    pub fn for_signal(self, signal: &InjectionSignal) -> GuardAction {
        match self {
            GuardAction::Block if !signal.is_blocking() => GuardAction::Flag,
            action => action,
        }
    }
}

/// Why a prompt looks like an injection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InjectionSignal {
    /// The sum of the weights of the rules that fired; compare with [`BLOCK_SCORE`].
    pub score: u32,
    /// The ids of the rules that fired, in a stable order (e.g. `ignore-instructions`).
    pub rules: Vec<&'static str>,
}

impl InjectionSignal {
    /// Whether the score reaches [`BLOCK_SCORE`].
    pub fn is_blocking(&self) -> bool {
        self.score >= BLOCK_SCORE
    }
}

/// Scans prompts for injection attempts. Build it once and share it (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct InjectionScanner {
    /// `None` only if the built-in patterns failed to compile, a bug the tests catch.
    regexes: Option<Regexes>,
}

#[derive(Debug, Clone)]
struct Regexes {
    phrases: Phrases,
    decode: Regex,
    follow: Regex,
    encoded: Regex,
    /// The shift of a Caesar cipher a prompt names.
    shift: Regex,
}

/// The phrase rules, their letters widened to leetspeak's stand-ins (`1gn0r3`): one scan reads
/// both spellings, for what the plain one alone costs.
#[derive(Debug, Clone)]
struct Phrases {
    /// The phrase rules in English, then [`NO_RESTRICTIONS`], [`ROT13_HINT`], [`REVERSED_HINT`]
    /// and [`SPACED_HINT`].
    set: Arc<ForwardSet>,
    /// The translations of the rules that have them, a pattern a rule, in their own set: one
    /// set with the English takes more memory at its peak to compile, and the allocator keeps
    /// what the process once took. Two sets left the gateway 7 MiB smaller with 1,000 streams
    /// (`bench/BENCHMARKS.md`); [`both_match`] reads them in one pass.
    translated_set: Arc<ForwardSet>,
    /// The rule each pattern of `translated_set` translates.
    translated_rules: Vec<usize>,
    /// The phrase rules one by one, in English and translated, to weigh a rule that fired by
    /// where it matched: compiled the first time one fires, which most text never does.
    rules: Vec<LazyRegex>,
    translations: Vec<Option<LazyRegex>>,
    role_play: Regex,
    no_restrictions: Regex,
}

/// What the phrase sets found in a text.
#[derive(Debug, Clone, Copy, Default)]
struct Matched {
    /// By index in [`Phrases::set`].
    english: [bool; SET_LEN],
    /// By phrase rule.
    translated: [bool; PHRASE_RULES.len()],
}

impl Matched {
    fn hinted(&self, hint: usize) -> bool {
        self.english.get(hint).is_some_and(|&matched| matched)
    }
}

/// Patterns searched for which of them match, never where: forward only. `RegexSet` also
/// compiles every pattern reversed, to find where a match starts, which was the larger part
/// of the phrase sets' memory (1.8 of 3.0 MiB) and never ran.
struct ForwardSet {
    /// The lazy DFA, which builds its states as the text needs them...
    dfa: DFA,
    /// ...and the NFA simulation that answers when the DFA gives up (its cache thrashing, or a
    /// Unicode word boundary meeting non-ASCII text).
    pikevm: PikeVM,
    /// A thread's caches. The simulation's is made the first time the DFA gives up on that
    /// thread: it keeps room for every pattern's match bounds at every NFA state, 4.4 MiB a
    /// thread for the two sets, which most threads never need.
    caches: Pool<Caches, NewCaches>,
}

type Caches = (lazy::Cache, Option<thompson::pikevm::Cache>);

type NewCaches =
    Box<dyn Fn() -> Caches + Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>;

impl std::fmt::Debug for ForwardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardSet")
            .field("patterns", &self.dfa.pattern_len())
            .finish_non_exhaustive()
    }
}

impl ForwardSet {
    fn new<P: AsRef<str>>(patterns: impl IntoIterator<Item = P>) -> Option<ForwardSet> {
        let patterns: Vec<P> = patterns.into_iter().collect();
        // `regex`'s own size limit, so that each pattern of a set that compiled compiles alone
        // (see `LazyRegex`).
        let config = thompson::Config::new()
            .which_captures(thompson::WhichCaptures::Implicit)
            .nfa_size_limit(Some(REGEX_SIZE_LIMIT));
        let nfa = thompson::NFA::compiler()
            .configure(config)
            .build_many(&patterns)
            .ok()?;
        // As `regex` configures its own lazy DFA: Unicode word boundaries read as ASCII ones
        // until a non-ASCII byte makes the DFA give up, and giving up when its cache is
        // cleared too often for too little progress.
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true)
                    .minimum_cache_clear_count(Some(3))
                    .minimum_bytes_per_state(Some(10)),
            )
            .build_from_nfa(nfa.clone())
            .ok()?;
        let pikevm = PikeVM::builder()
            .configure(PikeVM::config().match_kind(MatchKind::All))
            .build_from_nfa(nfa)
            .ok()?;
        let for_dfa = dfa.clone();
        let caches: NewCaches = Box::new(move || (for_dfa.create_cache(), None));
        Some(ForwardSet {
            dfa,
            pikevm,
            caches: Pool::new(caches),
        })
    }

    /// Whether a pattern matches somewhere in `text`, with `caches` taken from this set's pool.
    fn is_match_with(&self, caches: &mut Caches, text: &str) -> bool {
        let input = Input::new(text).earliest(true);
        let (dfa_cache, pikevm_cache) = caches;
        match self.dfa.try_search_fwd(dfa_cache, &input) {
            Ok(found) => found.is_some(),
            Err(_) => {
                let pikevm_cache = pikevm_cache.get_or_insert_with(|| self.pikevm.create_cache());
                self.pikevm.is_match(pikevm_cache, input)
            }
        }
    }

    /// The indexes of the patterns that match somewhere in `text`.
    fn matches(&self, text: &str) -> PatternSet {
        let input = Input::new(text);
        let mut found = PatternSet::new(self.dfa.pattern_len());
        let mut caches = self.caches.get();
        let (dfa_cache, pikevm_cache) = &mut *caches;
        if (self.dfa)
            .try_which_overlapping_matches(dfa_cache, &input, &mut found)
            .is_err()
        {
            found.clear();
            let pikevm_cache = pikevm_cache.get_or_insert_with(|| self.pikevm.create_cache());
            (self.pikevm).which_overlapping_matches(pikevm_cache, &input, &mut found);
        }
        found
    }
}

/// Whether a pattern of `first` and one of `second` match somewhere in `text`, both sets' DFAs
/// walked in one pass: each step of a walk waits on the load of its transition, so the CPU
/// takes a second, independent walk in the same loop for little more than the first alone.
fn both_match(first: &ForwardSet, second: &ForwardSet, text: &str) -> (bool, bool) {
    let mut first_caches = first.caches.get();
    let mut second_caches = second.caches.get();
    let (first_walked, second_walked) = {
        let mut first_walk = Walk::start(&first.dfa, &mut first_caches.0, text);
        let mut second_walk = Walk::start(&second.dfa, &mut second_caches.0, text);
        for (at, &byte) in text.as_bytes().iter().enumerate() {
            first_walk.step(at, byte);
            second_walk.step(at, byte);
        }
        (
            first_walk.finish(text.len()),
            second_walk.finish(text.len()),
        )
    };
    let answer = |set: &ForwardSet, caches: &mut Caches, walked: Walked| match walked {
        Walked::Matched => true,
        Walked::At(_) | Walked::Missed => false,
        Walked::GaveUp => set.is_match_with(caches, text),
    };
    (
        answer(first, &mut first_caches, first_walked),
        answer(second, &mut second_caches, second_walked),
    )
}

/// Where a walk of a lazy DFA over a text stands.
#[derive(Debug, Clone, Copy)]
enum Walked {
    /// In this state, with the text read up to here.
    At(LazyStateID),
    Matched,
    /// In the dead state: no pattern can match from here on.
    Missed,
    /// The DFA gave up (a byte it cannot read, or its cache cleared too often for too little
    /// progress): the set's own search, which falls back on the NFA, must answer.
    GaveUp,
}

impl Walked {
    fn from_state(state: LazyStateID) -> Walked {
        if !state.is_tagged() {
            Walked::At(state)
        } else if state.is_match() {
            Walked::Matched
        } else if state.is_dead() {
            Walked::Missed
        } else if state.is_quit() {
            Walked::GaveUp
        } else {
            Walked::At(state)
        }
    }
}

/// A search for any match, forward, a byte at a time, as the DFA's own search makes it (the
/// cache told of the search's progress before each new state, for its give-up rule).
struct Walk<'a> {
    dfa: &'a DFA,
    cache: &'a mut lazy::Cache,
    walked: Walked,
}

impl<'a> Walk<'a> {
    fn start(dfa: &'a DFA, cache: &'a mut lazy::Cache, text: &str) -> Walk<'a> {
        cache.search_start(0);
        let walked = (dfa.start_state_forward(cache, &Input::new(text)))
            .map_or(Walked::GaveUp, Walked::from_state);
        Walk { dfa, cache, walked }
    }

    #[inline]
    fn step(&mut self, at: usize, byte: u8) {
        let Walked::At(current) = self.walked else {
            return;
        };
        let known = (!current.is_tagged())
            .then(|| self.dfa.next_state_untagged(self.cache, current, byte))
            .filter(|next| !next.is_unknown());
        self.walked = match known {
            Some(next) => Walked::from_state(next),
            None => self.computed(at, current, byte),
        };
    }

    /// The next state of one the cache has not computed yet, or of a start state tagged as
    /// such (never in this crate's configuration). Kept out of [`Walk::step`]: inlined there,
    /// it makes the whole pass half as slow again (`guard_speed`).
    #[inline(never)]
    fn computed(&mut self, at: usize, current: LazyStateID, byte: u8) -> Walked {
        self.cache.search_update(at);
        (self.dfa.next_state(self.cache, current, byte)).map_or(Walked::GaveUp, Walked::from_state)
    }

    /// Where the walk ends, past the end of the text (a DFA tells a match a byte late).
    fn finish(self, len: usize) -> Walked {
        let walked = match self.walked {
            Walked::At(current) => {
                self.cache.search_update(len);
                (self.dfa.next_eoi_state(self.cache, current))
                    .map_or(Walked::GaveUp, Walked::from_state)
            }
            walked => walked,
        };
        self.cache.search_finish(len);
        walked
    }
}

/// `regex::Regex`'s default size limit for a compiled pattern.
const REGEX_SIZE_LIMIT: usize = 10 << 20;

/// A regex compiled the first time it is needed. Its pattern is one of a set that compiled,
/// so it compiles too (a set's size limit is that of the whole).
#[derive(Debug, Clone)]
struct LazyRegex {
    pattern: String,
    regex: OnceLock<Option<Regex>>,
}

impl LazyRegex {
    fn new(pattern: String) -> LazyRegex {
        LazyRegex {
            pattern,
            regex: OnceLock::new(),
        }
    }

    fn get(&self) -> Option<&Regex> {
        (self.regex.get_or_init(|| Regex::new(&self.pattern).ok())).as_ref()
    }
}

impl Default for InjectionScanner {
    fn default() -> Self {
        InjectionScanner {
            regexes: Regexes::new(),
        }
    }
}

impl Regexes {
    fn new() -> Option<Regexes> {
        Some(Regexes {
            phrases: Phrases::new()?,
            decode: Regex::new(DECODE).ok()?,
            follow: Regex::new(FOLLOW).ok()?,
            encoded: Regex::new(ENCODED).ok()?,
            shift: Regex::new(&folded(SHIFT)).ok()?,
        })
    }
}

impl Phrases {
    fn new() -> Option<Phrases> {
        let compiled = |pattern: &str| loosened(&leet_spelled(pattern));
        let rules: Vec<String> = PHRASE_RULES.iter().map(|p| compiled(p.pattern)).collect();
        let translations: Vec<Option<String>> = (PHRASE_RULES.iter())
            .map(PhraseRule::translations)
            .collect();
        let translated_rules: Vec<usize> = (translations.iter().enumerate())
            .filter_map(|(rule, pattern)| pattern.as_ref().map(|_| rule))
            .collect();
        let no_restrictions = compiled(NO_RESTRICTIONS);
        let hints = [ROT13_HINT, REVERSED_HINT, SPACED_HINT].map(folded);
        Some(Phrases {
            set: Arc::new(ForwardSet::new(
                rules.iter().chain([&no_restrictions]).chain(&hints),
            )?),
            translated_set: Arc::new(ForwardSet::new(translations.iter().flatten())?),
            translated_rules,
            rules: rules.into_iter().map(LazyRegex::new).collect(),
            translations: (translations.into_iter())
                .map(|pattern| pattern.map(LazyRegex::new))
                .collect(),
            role_play: Regex::new(&compiled(ROLE_PLAY)).ok()?,
            no_restrictions: Regex::new(&no_restrictions).ok()?,
        })
    }
}

/// `pattern` with each ASCII letter that has leetspeak stand-ins widened to a class of them
/// (`e` to `[e3]`); escapes, classes and group flags are kept as they are.
fn leet_spelled(pattern: &str) -> String {
    let mut spelled = String::with_capacity(pattern.len() * 2);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        spelled.push(c);
        match c {
            '\\' => {
                spelled.extend(chars.next());
                // `\p{Han}`, `\x{2a}`: a class's name or a code, not letters.
                if chars.peek() == Some(&'{') {
                    for name in chars.by_ref() {
                        spelled.push(name);
                        if name == '}' {
                            break;
                        }
                    }
                }
            }
            '[' => in_class = true,
            ']' => in_class = false,
            // `(?i)`, `(?:`, `(?-u:`: flags, not letters (nor a group's `<name>`).
            '(' if !in_class && chars.peek() == Some(&'?') => {
                for flag in chars.by_ref() {
                    spelled.push(flag);
                    if matches!(flag, ':' | ')' | '<') {
                        break;
                    }
                }
            }
            _ if !in_class => {
                if let Some(class) = leet_class(c) {
                    spelled.pop();
                    spelled.push_str(class);
                }
            }
            _ => {}
        }
    }
    spelled
}

/// A letter with the digits and symbols leetspeak writes for it; for `i`, also the `l` that
/// looks like a capital `I` (`lgnore all prevlous lnstructions`).
fn leet_class(letter: char) -> Option<&'static str> {
    Some(match letter {
        'a' => "[a4@]",
        'A' => "[A4@]",
        'e' => "[e3]",
        'E' => "[E3]",
        'i' => "[il1!|]",
        'I' => "[Il1!|]",
        'l' => "[l1|]",
        'L' => "[L1|]",
        'o' => "[o0]",
        'O' => "[O0]",
        's' => "[s5$]",
        'S' => "[S5$]",
        't' => "[t7]",
        'T' => "[T7]",
        _ => return None,
    })
}

/// Between two words of a phrase: blanks, or what joins words in identifiers and Markdown
/// (`ignore_all_previous…`, `ignore-all-previous…`, `**Ignore** all previous…`).
const WORD_GAP: &str = r"[\s_*`-]+";
/// At the edge of a phrase: a word boundary, or the `_` of an identifier or of emphasis.
const WORD_EDGE: &str = r"(?:(?-u:\b)|_)";

/// `pattern` with its word gaps (`\s+`) and word edges (`(?-u:\b)`) widened to
/// [`WORD_GAP`] and [`WORD_EDGE`].
fn loosened(pattern: &str) -> String {
    pattern
        .replace(r"\s+", WORD_GAP)
        .replace(r"(?-u:\b)", WORD_EDGE)
}

/// A rule: its id in signals and logs, and what it adds to the score.
struct Rule {
    id: &'static str,
    weight: u32,
}

/// A rule matched by a regex of the set.
struct PhraseRule {
    rule: Rule,
    pattern: &'static str,
    /// The same requests in other languages, a pattern each (see `translations.rs`).
    translations: fn() -> Vec<String>,
}

impl PhraseRule {
    /// The translations as one pattern, if the rule has any, those in Latin letters widened to
    /// leetspeak's stand-ins.
    fn translations(&self) -> Option<String> {
        let translations = (self.translations)();
        (!translations.is_empty()).then(|| {
            let each = translations.iter().map(|translation| {
                // Folded Russian is in Latin letters too, but nobody writes it in leetspeak.
                let letters = if in_latin_letters(translation) {
                    leet_spelled(&folded(translation))
                } else {
                    folded(translation)
                };
                format!("(?:{})", loosened(&letters))
            });
            each.collect::<Vec<_>>().join("|")
        })
    }
}

/// Whether most of `pattern`'s letters are Latin ones (`ü` and `ç` are; `п`, `指` are not): a
/// Spanish pattern may hold Russian words of a list the languages share, a Russian one `\s`.
fn in_latin_letters(pattern: &str) -> bool {
    let letters = pattern.chars().filter(|c| c.is_alphabetic());
    let latin = letters.clone().filter(|&c| c <= '\u{24f}').count();
    latin * 2 > letters.count()
}

fn untranslated() -> Vec<String> {
    Vec::new()
}

/// `pattern` spelled as [`plain_letters`] leaves the text: Cyrillic letters drawn like Latin
/// ones (the `о` of `покажи`) are the Latin ones.
fn folded(pattern: &str) -> String {
    pattern
        .chars()
        .map(|c| latin_look_alike(c).unwrap_or(c))
        .collect()
}

// Rules are numbered in this order: the phrase rules, then the two scanned in code.
const HIDDEN_UNICODE: Rule = Rule {
    id: "hidden-unicode",
    weight: 50,
};
const ENCODED_PAYLOAD: Rule = Rule {
    id: "encoded-payload",
    weight: 40,
};
const IGNORE_INSTRUCTIONS_RULE: usize = 0;
const REVEAL_SYSTEM_PROMPT_RULE: usize = 1;
const ROLE_OVERRIDE_RULE: usize = 2;
/// Chat-template tokens (`<|im_start|>`): no words, so never "written as an identifier".
const DELIMITER_SPOOF_RULE: usize = 4;
const HIDDEN_UNICODE_RULE: usize = PHRASE_RULES.len();
const ENCODED_PAYLOAD_RULE: usize = PHRASE_RULES.len() + 1;
const RULE_COUNT: usize = PHRASE_RULES.len() + 2;

const PHRASE_RULES: &[PhraseRule] = &[
    // OWASP LLM01 scenario 1 and Perez & Ribeiro, "Ignore Previous Prompt" (2022): the classic
    // "ignore all previous instructions" / "ignore the above directions and …" / "ignore the
    // instructions above" / "ignore what you were told". "Forget all the rules" alone is not
    // one: "forget all the rules of chess" is a fine request.
    PhraseRule {
        rule: Rule {
            id: "ignore-instructions",
            weight: 60,
        },
        pattern: r"(?i)(?-u:\b)(?:(?:ignore|disregard|forget|overlook|bypass|override|set\s+aside|put\s+aside)\s+(?:(?:all|any|every|of|the|your|these|those)\s+)*(?:(?:previous|prior|preceding|above|earlier|former|foregoing|original|initial|system|developer|safety|existing)\s+)+(?:[a-z]+\s+)?(?:instructions?|rules|guidelines|directions|directives|prompts?|commands|context|constraints|guardrails|restrictions|policies)|(?:ignore|disregard)\s+(?:all|any)\s+(?:of\s+)?(?:the\s+|your\s+)?(?:instructions|rules|guidelines|restrictions|guardrails)|(?:ignore|disregard|forget)\s+your\s+(?:rules|instructions|guidelines|guardrails|restrictions|programming)(?-u:\b)|forget\s+(?:all|any)\s+(?:of\s+)?(?:(?:the\s+)?(?:instructions|guidelines|restrictions|guardrails)|your\s+(?:instructions|rules|guidelines|restrictions|guardrails))|(?:ignore|disregard|forget)\s+(?:everything|all)\s+(?:above|before|prior|previously|you\s+(?:were|have\s+been)\s+told)|(?:ignore|disregard)\s+(?:all\s+of\s+)?the\s+above\s*(?:,|\.|and|then)|(?:ignore|disregard|forget|drop|set\s+aside)\s+(?:(?:all|any|of|the|your|these|those)\s+)*(?:instructions?|rules|guidelines|guidance|directions|directives|prompts?|commands)\s+(?:above|given\s+(?:above|before|earlier)|you\s+(?:were|have\s+been)\s+given)|(?:previous|prior|above|earlier|original|system)\s+(?:instructions|rules|guidelines)\s+(?:above\s+)?(?:no\s+longer\s+apply|are\s+(?:void|revoked|cancell?ed|no\s+longer\s+valid))|(?:the\s+)?(?:instructions|rules|guidelines)\s+above\s+(?:no\s+longer\s+apply|are\s+(?:void|revoked|cancell?ed|no\s+longer\s+valid))|(?:ignore|disregard|forget)\s+(?:everything\s+|all\s+)?what\s+you\s+(?:were|have\s+been|'ve\s+been|’ve\s+been)\s+(?:told|given|instructed|asked)(?:\s+(?:before|earlier|previously|above|so\s+far|until\s+now)|\s*[.!,;:]|\s*$))",
        translations: translations::ignore_instructions,
    },
    // OWASP LLM07 (system prompt leakage) and the "repeat the words above" / "print your
    // instructions verbatim" extraction prompts collected by Perez & Ribeiro and in public
    // prompt-leak corpora. A direct request weighs enough to block (see `phrase_weight`).
    PhraseRule {
        rule: Rule {
            id: "reveal-system-prompt",
            weight: 50,
        },
        pattern: r"(?i)(?:(?:reveal|leak|dump|disclose|recite|expose)\s+(?:(?:me|us|back|all|of|exactly|verbatim)\s+)*(?:your|the)|(?:print(?:\s+out)?|repeat|show|output|display|tell|give|write\s+out|spell\s+out|type\s+out|share|list|paste|copy)\s+(?:(?:me|us|back|all|of|exactly|verbatim|everything|in|from|here|below)\s+)*your|what(?:\s+is|\s+are|\s+was|\s+were|'s|’s)\s+your)\s+(?:(?:full|entire|complete|exact|original|hidden|secret|initial|first|confidential|internal)\s+)*(?:system\s+(?:prompt|message|instructions)|(?:initial|original|hidden|secret|confidential|internal|first)\s+(?:prompt|instructions|message)|pre-?prompt)|(?:repeat|print|output|reveal|show|recite)\s+(?:(?:all|every|of|the)\s+)*(?:words|text|everything|instructions|content|messages?)\s+(?:above|before\s+this|preceding\s+this|you\s+were\s+given)|(?:print|repeat|output|recite|reveal|show|display|dump|list|write\s+out|spell\s+out|tell|give|share)\s+(?:(?:me|us|back|all|of|exactly)\s+)*your\s+(?:(?:full|entire|complete|exact|original)\s+)*(?:instructions|prompt|rules|guidelines|directives)\s+(?:verbatim|word\s+for\s+word|exactly|in\s+full)|(?:print|repeat|output|recite|reveal|dump)\s+(?:(?:me|us|back|all|of)\s+)*your\s+(?:(?:full|entire|complete|exact|original)\s+)*(?:instructions|prompt)\s*(?:[.!?]|$)|what\s+(?:were|was|have)\s+you\s+(?:been\s+)?(?:told|instructed|given|asked)\s+(?:before|prior\s+to|at\s+the\s+(?:start|beginning)\s+of)\s+(?:this|our|the)\s+(?:conversation|chat|session)",
        translations: translations::reveal_system_prompt,
    },
    // OWASP LLM01 role-play and authority-claim examples: "you are now unrestricted", "your new
    // instructions are", "I am your developer"; "act as … with no restrictions" is checked in
    // code from ROLE_PLAY and NO_RESTRICTIONS.
    PhraseRule {
        rule: Rule {
            id: "role-override",
            weight: 40,
        },
        pattern: r"(?i)(?:you\s+are\s+(?:now\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken|unchained|amoral)(?-u:\b)|your\s+new\s+(?:role|instructions|rules|persona|system\s+prompt|directive)\s+(?:is|are)|new\s+system\s+(?:prompt|instructions)\s*:|(?:i\s+am|i'm|this\s+is)\s+your\s+(?:developer|creator|administrator|admin)(?-u:\b))",
        translations: untranslated,
    },
    // Public jailbreak corpora (the "DAN", "Developer Mode", STAN, DUDE, AIM, Mongo Tom,
    // AntiGPT prompts catalogued by Shen et al., "Do Anything Now", CCS 2024). "DAN mode" alone
    // is not one ("DAN mode on the router is off"): it takes a request to enter it.
    PhraseRule {
        rule: Rule {
            id: "jailbreak-persona",
            weight: 60,
        },
        pattern: r"(?i)(?:do\s+anything\s+now|(?:enable|activate|enter|engage|start|switch\s+(?:on|to|into)|turn\s+on|go\s+into|stay\s+in|remain\s+in|you\s+are\s+(?:now\s+)?in|you're\s+(?:now\s+)?in)\s+(?:the\s+)?(?-i:DAN)\s*mode|(?-i:(?-u:\b)DAN)\s*mode\s+(?:enabled|activated|engaged)|(?-i:(?-u:\b)DAN(?-u:\b))\s*(?:jailbreak|v?[0-9]+(?:\.[0-9]+)?(?-u:\b))|(?:act|respond|answer|reply|pretend)\s+(?:as|like|to\s+be)\s+(?-i:DAN)(?-u:\b)|(?:chatgpt|assistant|model|you)\s+with\s+developer\s+mode\s+enabled|developer\s+mode\s+output|jailbr(?:ea|o)k(?:en)?\s+mode|strive\s+to\s+avoid\s+norms|evil\s+confidant|mongo\s+tom|anti-?gpt|better-?dan|always\s+intelligent\s+and\s+machiavellian|unfiltered\s+and\s+amoral|(?-i:(?-u:\b)(?:STAN|DUDE|AIM|DAN)),?\s+which\s+stands\s+for)",
        translations: untranslated,
    },
    // Chat-template tokens of ChatML, Llama 2/3, Gemma, Zephyr and Alpaca-style headers, which
    // let user text pose as a system or assistant turn (OWASP LLM01, "delimiter" attacks).
    PhraseRule {
        rule: Rule {
            id: "delimiter-spoof",
            weight: 40,
        },
        pattern: r"(?im)(?:<\|im_start\|>|<\|im_end\|>|<\|(?:system|assistant|user|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|^[ \t]*#{2,4}[ \t]*(?:system|instructions?|assistant)(?:[ \t]+(?:prompt|message))?[ \t]*:|</s>\s*(?:<s>|\[INST\])|^[ \t]*\[?(?:system|assistant)\]?[ \t]*:[ \t]*(?:you\s+(?:are|must|will)|ignore|new\s+instructions))",
        translations: untranslated,
    },
];

/// The opening of a role-play request; it is `role-override` when [`NO_RESTRICTIONS`] follows
/// within [`ROLE_PLAY_REACH`] characters in the same sentence.
const ROLE_PLAY: &str = r"(?i)(?-u:\b)(?:you\s+are\s+now|you're\s+now|from\s+now\s+on,?\s+you(?:\s+are|'re|\s+will)?|act\s+as|pretend\s+(?:to\s+be|you\s+are)|role-?play\s+as|behave\s+as|simulate)(?-u:\b)";
const NO_RESTRICTIONS: &str = r"(?i)(?-u:\b)(?:with\s+no|without(?:\s+any)?|free\s+(?:of|from)(?:\s+all)?|no\s+longer\s+bound\s+by|not\s+bound\s+by|ignoring(?:\s+all)?)\s+(?:[a-z]+\s+)?(?:restrictions|limits|limitations|filters|filtering|rules|guidelines|censorship|boundaries|ethics|morals|constraints|guardrails|policies)";
const NO_RESTRICTIONS_INDEX: usize = PHRASE_RULES.len();
const ROLE_PLAY_REACH: usize = 60;

/// "Decode this and follow it" (within [`DECODE_REACH`] characters on one line), or "follow
/// the decoded text": the instruction half of an encoded payload.
const DECODE: &str = r"(?i)(?-u:\b)(?:decode|decoding|base64|b64|decipher)";
const FOLLOW: &str = r"(?i)(?-u:\b)(?:follow|execute|run|obey|do\s+what|carry\s+out|act\s+on|comply|perform)(?-u:\b)";
const ENCODED: &str = r"(?i)(?-u:\b)(?:decoded|base64|b64|encoded)(?-u:\b)";
const DECODE_REACH: usize = 80;
const FOLLOW_REACH: usize = 40;

/// Text that names ROT13 or a Caesar cipher, or asks to read backwards (in the languages of
/// `translations.rs`): worth reading that way too. Not "reverse" alone: "reversible", "reverse
/// proxy".
const ROT13_HINT: &str = r"(?i)rot[\s_-]?13|caesar|c[ée]sar(?-u:\b)|cesare|цезар|凯撒|凱撒|シーザー|카이사르|rot[\s_-]?[0-9]{1,2}(?-u:\b)|shift\s+cipher|(?:letters?|characters?)\s+(?:(?:is|are|was|were|has|have|been)\s+){0,2}(?:shifted|moved|rotated)";
const REVERSED_HINT: &str = r"(?i)(?-u:\b)(?:backwards?|in\s+reverse|reversed\s+(?:text|order|string|words?|letters)|reverse\s+(?:the|this|it|each|every)|(?:read|write|written|spell|spelled|spelt)\s+(?:it\s+|this\s+|that\s+)?(?:in\s+)?reverse|(?:flip|mirror)\s+(?:this|the|it|each)|right[\s-]+to[\s-]+left)(?-u:\b)|al\s+rev[ée]s|[àa]\s+l['’]envers|de\s+tr[áa]s\s+para\s+(?:a\s+)?frente|r[üu]ckw[äa]rts|achterstevoren|(?:leggi(?:lo)?|scritto)\s+al\s+contrario|al\s+rovescio|all['’]indietro|задом\s+наперё?е?д|в\s+обратном\s+порядке|倒着|倒著|倒过来|倒過來|反过来|反過來|逆から|逆さま|거꾸로";
/// The shift a prompt names: after a word for it ("shift 3", "位移5"), or before "places".
const SHIFT: &str = r"(?i)(?:shift(?:ed)?|moved|desplazamiento|deslocamento|spostamento|d[ée]calage|d[ée]cal[ée]|verschiebung|verschoben|сдвиг\w*|key|clave|rot|位移|偏移|ずらし|이동)(?:[\s:=(+-]|(?:of|by|left|right|back|forward|de|di|um|на)\s)*([0-9]{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen)(?-u:\b)|(?-u:\b)([0-9]{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen)\s+(?:places|positions|letters|posiciones|posições|posicoes|lettres|stellen|posizioni|позици\w*)";
/// Words written letter by letter (`I G N O R E`, `i.g.n.o.r.e`, `忽 略 之 前`), or joined into
/// one token (`Ignore.all.previous`, `IgnoreAllPrevious`): worth reading with the words put
/// back together.
const SPACED_HINT: &str = r"(?:^|[^\p{L}\p{N}])\p{L}(?:[\s.,;:*·_|/\x{3000}-]{1,4}\p{L}){2,}(?:[^\p{L}\p{N}]|$)|\p{L}{2,}(?:(?:[.·+/]|%20)\p{L}{2,}){2,}|\p{Lu}\p{Ll}+(?:\p{Lu}\p{Ll}+){2,}";
const ROT13_HINT_INDEX: usize = NO_RESTRICTIONS_INDEX + 1;
const REVERSED_HINT_INDEX: usize = NO_RESTRICTIONS_INDEX + 2;
const SPACED_HINT_INDEX: usize = NO_RESTRICTIONS_INDEX + 3;
const SET_LEN: usize = SPACED_HINT_INDEX + 1;

/// Base64 runs shorter than this are ignored (identifiers, short hashes).
const MIN_BLOB: usize = 40;
/// At most this many blobs are decoded per prompt, each from at most this many characters.
const MAX_BLOBS: usize = 8;
const MAX_BLOB_CHARS: usize = 16 * 1024;

impl InjectionScanner {
    /// A scanner with the built-in rules.
    pub fn new() -> InjectionScanner {
        InjectionScanner::default()
    }

    /// Whether the rules compiled (always true unless the built-in patterns have a bug).
    pub fn is_ready(&self) -> bool {
        self.regexes.is_some()
    }

    /// The rules `text` triggers, or `None` when it looks benign.
    pub fn scan(&self, text: &str) -> Option<InjectionSignal> {
        let regexes = self.regexes.as_ref()?;
        let mut fired = Fired::default();
        if !text.is_ascii() && has_hidden_unicode(text) {
            fired.fire(HIDDEN_UNICODE_RULE, HIDDEN_UNICODE.weight);
        }
        let original = text;
        let text = plain_letters(text);
        let matched = regexes.phrases.matches(&text);
        let plain = (matched.as_ref()).map_or_else(Fired::default, |matched| {
            regexes.phrases.weigh(&text, matched)
        });
        fired.merge(plain);
        // `!gnore`: a leetspeak `i` that opens a word has no word's edge before it.
        if let Some(opened) = leet_openings_as_letters(&text) {
            fired.merge(regexes.phrases.phrase_rules(&opened));
        }
        fired.merge(regexes.rewritten_payload(original, &text, matched.as_ref(), plain));
        fired.merge(regexes.encoded_payload(&text));
        signal(fired)
    }
}

/// The weight each rule fired with, in [`signal`]'s order; 0 for those that did not fire.
#[derive(Debug, Default, Clone, Copy)]
struct Fired([u32; RULE_COUNT]);

impl Fired {
    fn fire(&mut self, rule: usize, weight: u32) {
        if let Some(fired) = self.0.get_mut(rule) {
            *fired = (*fired).max(weight);
        }
    }

    fn merge(&mut self, other: Fired) {
        for (rule, weight) in other.0.into_iter().enumerate() {
            self.fire(rule, weight);
        }
    }

    fn any(&self) -> bool {
        self.0.iter().any(|&weight| weight > 0)
    }

    /// Forgets the phrase rules that fired below their full weight: mentions, not requests.
    fn keep_full_weight(&mut self) {
        for (rule, weight) in self.0.iter_mut().enumerate() {
            if *weight < phrase_rule_weight(rule) {
                *weight = 0;
            }
        }
    }

    /// Forgets the rules that fired no more strongly than in `other`.
    fn keep_stronger_than(&mut self, other: Fired) {
        for (weight, before) in self.0.iter_mut().zip(other.0) {
            if *weight <= before {
                *weight = 0;
            }
        }
    }

    /// Forgets every rule but `rules`.
    fn keep_only(&mut self, rules: &[usize]) {
        for (rule, weight) in self.0.iter_mut().enumerate() {
            if !rules.contains(&rule) {
                *weight = 0;
            }
        }
    }
}

impl Phrases {
    /// The phrase rules that match, with their weights.
    fn phrase_rules(&self, text: &str) -> Fired {
        (self.matches(text)).map_or_else(Fired::default, |matched| self.weigh(text, &matched))
    }

    /// What the sets find in `text`, or `None` when they find nothing, as in most text: a scan
    /// that can stop at the first match tells that in two-thirds of the time a search for every
    /// match takes.
    fn matches(&self, text: &str) -> Option<Matched> {
        let (english, translated) = both_match(&self.set, &self.translated_set, text);
        if !english && !translated {
            return None;
        }
        let mut matched = Matched::default();
        if english {
            for index in self.set.matches(text).iter() {
                if let Some(slot) = matched.english.get_mut(index.as_usize()) {
                    *slot = true;
                }
            }
        }
        if translated {
            for index in self.translated_set.matches(text).iter() {
                let rule = self.translated_rules.get(index.as_usize()).copied();
                if let Some(slot) = rule.and_then(|rule| matched.translated.get_mut(rule)) {
                    *slot = true;
                }
            }
        }
        Some(matched)
    }

    /// The phrase rules among the sets' `matched` in `text`, with their weights.
    fn weigh(&self, text: &str, matched: &Matched) -> Fired {
        let mut fired = Fired::default();
        for rule in 0..PHRASE_RULES.len() {
            let english = matched.english.get(rule).is_some_and(|&m| m);
            let translated = matched.translated.get(rule).is_some_and(|&m| m);
            if english || translated {
                fired.fire(rule, self.phrase_weight(rule, text, english, translated));
            }
        }
        if matched.hinted(NO_RESTRICTIONS_INDEX)
            && near(
                text,
                &self.role_play,
                &self.no_restrictions,
                ROLE_PLAY_REACH,
                &['.', '\n'],
            )
        {
            fired.fire(ROLE_OVERRIDE_RULE, phrase_rule_weight(ROLE_OVERRIDE_RULE));
        }
        fired
    }

    /// What phrase rule `index`, which matched `text`, weighs there, the most of its matches:
    /// a direct request for the system prompt enough to block on its own (a question about it,
    /// or a sentence that mentions one, does not); an override nothing when negated, half (a
    /// flag) in a sentence about it, about a topic or in a condition for people; a phrase
    /// written as one identifier (`override_system_prompt`, `--ignore-previous-rules`: code,
    /// more often than not) half. Quoting a phrase does not lower it: quotes would be the
    /// cheapest way round `block`. Only run for rules that fired.
    fn phrase_weight(
        &self,
        index: usize,
        text: &str,
        english_matched: bool,
        translated_matched: bool,
    ) -> u32 {
        let weight = phrase_rule_weight(index);
        let weigh = |found: regex::Match<'_>, translated: bool| {
            let phrase = found.as_str();
            let before = text.get(..found.start()).unwrap_or_default();
            let after = text.get(found.end()..).unwrap_or_default();
            if index == IGNORE_INSTRUCTIONS_RULE && not_an_override(before, after) {
                0
            } else if index != DELIMITER_SPOOF_RULE && is_identifier(phrase) {
                weight / 2
            } else if (translated || index == IGNORE_INSTRUCTIONS_RULE) && !opens_a_request(before)
            {
                // "Why does Llama ignore the system prompt?", "¿Por qué el modelo ignora sus
                // instrucciones?": said of someone, not asked of the model.
                weight / 2
            } else if index == IGNORE_INSTRUCTIONS_RULE
                && (in_a_condition_for_people(before) || names_a_topic(head(after, LOOK_BACK)))
            {
                weight / 2
            } else if index == REVEAL_SYSTEM_PROMPT_RULE
                && (if translated {
                    !is_translated_question(phrase)
                } else {
                    is_direct_request(text, found.start(), phrase)
                })
            {
                weight.max(BLOCK_SCORE)
            } else {
                weight
            }
        };
        let Some(english) = self.rules.get(index).and_then(LazyRegex::get) else {
            return 0;
        };
        // The first matches tell: a prompt made of the phrase, repeated, is not weighed whole.
        let mut most = 0;
        if english_matched {
            let found = english.find_iter(text).take(MAX_WEIGHED);
            most = found.map(|found| weigh(found, false)).max().unwrap_or(0);
        }
        let translation = (self.translations.get(index))
            .filter(|_| translated_matched)
            .and_then(|translation| translation.as_ref()?.get());
        if let Some(translation) = translation {
            // A match the English alone does not make is a translation's.
            let found = translation.find_iter(text).take(MAX_WEIGHED);
            let weights = found.map(|found| weigh(found, !english.is_match(found.as_str())));
            most = most.max(weights.max().unwrap_or(0));
        }
        most
    }
}

impl Regexes {
    /// Decodes long base64 runs; a payload that decodes to text fires when the text itself
    /// triggers phrase rules (added too) or when the prompt asks to decode and follow it.
    fn encoded_payload(&self, text: &str) -> Fired {
        let mut readable_payload = false;
        for blob in base64_runs(text.as_bytes()).take(MAX_BLOBS) {
            let Some(decoded) = decode_base64_text(blob) else {
                continue;
            };
            let mut inner = self.phrases.phrase_rules(&plain_letters(&decoded));
            if inner.any() {
                inner.fire(ENCODED_PAYLOAD_RULE, ENCODED_PAYLOAD.weight);
                return inner;
            }
            readable_payload = true;
        }
        let mut fired = Fired::default();
        if readable_payload && self.asks_to_decode_and_follow(text) {
            fired.fire(ENCODED_PAYLOAD_RULE, ENCODED_PAYLOAD.weight);
        }
        fired
    }

    /// Reads the text in ROT13 or another shift (of the Latin or the Russian alphabet), or
    /// backwards, when it names that way of writing (the phrase set `matched` the hint), with
    /// spelled-out words put together, or turned right side up when it is written upside down
    /// (`snoᴉʌǝɹd llɐ ǝɹouƃᴉ`): a payload that then triggers phrase rules more strongly than the
    /// `plain` text did fires them, with `encoded-payload`. A mention the plain text already
    /// showed gains nothing from a rewrite that leaves it as it was. `text` is `original` with
    /// plain letters.
    fn rewritten_payload(
        &self,
        original: &str,
        text: &str,
        matched: Option<&Matched>,
        plain: Fired,
    ) -> Fired {
        let hinted = |hint: usize| matched.is_some_and(|matched| matched.hinted(hint));
        let mut rewritings = Vec::new();
        if hinted(ROT13_HINT_INDEX) {
            // Each shift the prompt names ("shift 3", "by four"; a decoy number may come
            // first), and ROT13's and Caesar's own, 3.
            let named: Vec<u32> = (self.shift.captures_iter(text).take(3))
                .filter_map(|c| shift_number(c.get(1).or(c.get(2))?.as_str()))
                .collect();
            // Forward or back: "shifted left by 4" is a shift of 22 the other way.
            let shifts = |letters: usize, own: &[usize]| {
                let mut shifts = own.to_vec();
                let named_back = named.iter().map(|&n| n as usize % letters);
                for back in named_back.flat_map(|n| [n, (letters - n) % letters]) {
                    if back != 0 && !shifts.contains(&back) {
                        shifts.push(back);
                    }
                }
                shifts
            };
            // Plain letters write some Russian ones as Latin look-alikes: the original is
            // shifted, then made plain. With `ё` in the alphabet, as most ciphers count, and
            // in a short prompt without, as some tools do.
            if original.chars().any(is_russian_letter) {
                let alphabets = [&RUSSIAN[..], &RUSSIAN_WITHOUT_YO[..]];
                let short = text.len() <= BOTH_ALPHABETS_UP_TO;
                for alphabet in alphabets.into_iter().take(if short { 2 } else { 1 }) {
                    let russian = shifts(alphabet.len(), &[3]).into_iter();
                    rewritings.extend(russian.map(|shift| {
                        plain_letters(&russian_shifted_back(original, shift, alphabet)).into_owned()
                    }));
                }
            }
            let latin = shifts(26, &[13, 3]).into_iter();
            rewritings.extend(latin.map(|shift| shifted_back(text, shift as u32)));
        }
        if hinted(REVERSED_HINT_INDEX) {
            rewritings.push(text.chars().rev().collect());
            rewritings.push(text.split_whitespace().rev().collect::<Vec<_>>().join(" "));
        }
        if hinted(SPACED_HINT_INDEX) {
            rewritings.push(words_put_together(text));
        }
        // From the original: plain letters read some upside-down ones (`ɓ`) as others.
        rewritings.extend(
            (right_side_up(original).iter()).map(|righted| plain_letters(righted).into_owned()),
        );
        for rewritten in rewritings {
            let mut inner = self.phrases.phrase_rules(&rewritten);
            // Only a whole request: names such as DAN turn up by chance ("2 NAD+" backwards).
            inner.keep_only(&[
                IGNORE_INSTRUCTIONS_RULE,
                REVEAL_SYSTEM_PROMPT_RULE,
                ROLE_OVERRIDE_RULE,
            ]);
            // A request where one starts, not a sentence about one ("attackers write
            // i g n o r e…", a config key `prompt.ignore.previous.instructions`).
            inner.keep_full_weight();
            inner.keep_stronger_than(plain);
            if inner.any() {
                inner.fire(ENCODED_PAYLOAD_RULE, ENCODED_PAYLOAD.weight);
                return inner;
            }
        }
        Fired::default()
    }

    fn asks_to_decode_and_follow(&self, text: &str) -> bool {
        near(text, &self.decode, &self.follow, DECODE_REACH, &['\n'])
            || near(text, &self.follow, &self.encoded, FOLLOW_REACH, &['\n'])
    }
}

/// Whether a phrase is written as one identifier: snake_case, or lower-case kebab-case (a
/// command-line flag), and nothing else between its words. Emphasis (`**`, `` ` ``), capitals
/// between dashes and a name without gaps (`AntiGPT`) read as prose.
fn is_identifier(phrase: &str) -> bool {
    let joined =
        phrase.contains('_') || (phrase.contains('-') && !phrase.contains(char::is_uppercase));
    joined && !phrase.contains(|c: char| c.is_whitespace() || c == '*' || c == '`')
}

fn phrase_rule_weight(index: usize) -> u32 {
    PHRASE_RULES
        .get(index)
        .map_or(0, |phrase| phrase.rule.weight)
}

/// Whether the `reveal-system-prompt` match `found`, at `start` of `text`, is a request of its
/// own: not a question ("what is your system prompt?" is how the curious ask too), and at the
/// start of a sentence or after words that only lead into a request ("please", "now", "can
/// you", "I want you to"), not inside a sentence about one ("attackers ask models to reveal
/// your system prompt").
fn is_direct_request(text: &str, start: usize, found: &str) -> bool {
    let question = found
        .get(..4)
        .is_some_and(|word| word.eq_ignore_ascii_case("what"));
    !question && opens_a_request(text.get(..start).unwrap_or_default())
}

/// Whether what follows `before` begins a request: nothing but punctuation or words that lead
/// into one are between it and the start of its clause.
fn opens_a_request(before: &str) -> bool {
    // Only the words just before count: a prompt of one long sentence is not read back whole
    // for each match.
    let mut rest = tail(before, LOOK_BACK);
    // "I want you to…" asks; "I override the system prompt in my Modelfile" says.
    let mut addressed = false;
    loop {
        let trimmed =
            rest.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '_' | '`'));
        // A line's start is a clause's.
        if rest
            .get(trimmed.len()..)
            .is_some_and(|gap| gap.contains('\n'))
        {
            return true;
        }
        rest = trimmed;
        if let Some(shorter) = LEAD_IN_PHRASES
            .iter()
            .find_map(|phrase| strip_last_words(rest, phrase))
        {
            rest = shorter;
            continue;
        }
        let word_start = rest
            .char_indices()
            .rev()
            .find(|&(_, c)| !c.is_alphanumeric())
            .map_or(0, |(at, c)| at + c.len_utf8());
        let word = rest.get(word_start..).unwrap_or_default();
        let earlier = rest.get(..word_start).unwrap_or_default();
        // The text's start, or the end of a sentence or clause.
        if word.is_empty() {
            return true;
        }
        let previous = last_word(earlier);
        // "Can you ignore…" asks the model; "how do you ignore…", "if you ignore…" ask about it.
        if is_among(word, ADDRESSED) {
            if is_among(previous, QUESTIONS) || is_among(previous, DO) {
                return false;
            }
            addressed = true;
        }
        // "As your administrator, I override…" opens one; "I override the system prompt in my
        // Modelfile" and "how do I override…" say or ask.
        else if word == "I" || word == "i" {
            return addressed || earlier.trim_end().ends_with([',', ':']);
        } else if !word.chars().any(spaceless) {
            if !is_among(word, LEAD_INS) {
                return false;
            }
        }
        // Written without spaces: the lead-ins end the run of letters before the verb
        // ("请你", "现在请").
        else {
            let mut run = word;
            while let Some(shorter) =
                (SPACELESS_LEAD_INS.iter()).find_map(|lead_in| run.strip_suffix(lead_in))
            {
                run = shorter;
            }
            if !run.is_empty() {
                return false;
            }
        }
        rest = earlier;
    }
}

/// The matches of one rule weighed, at most.
const MAX_WEIGHED: usize = 64;

/// How far back, in bytes, the words before a match are read, and how far on those after it.
const LOOK_BACK: usize = 160;

/// The start of `text`, at most `bytes` long, cut at a character's end.
fn head(text: &str, bytes: usize) -> &str {
    let mut end = text.len().min(bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// The end of `text`, at most `bytes` long, cut at a character's start.
fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text.get(start..).unwrap_or_default()
}

/// The last word of `text`, or "" at a clause's end.
fn last_word(text: &str) -> &str {
    text.trim_end()
        .rsplit(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
}

/// Whether `c` is of a script written without spaces between words.
fn spaceless(c: char) -> bool {
    matches!(c, '\u{3040}'..='\u{30FF}' | '\u{3400}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}')
}

/// Whether a translated request for the system prompt is a question about it ("¿cuál es tu
/// prompt del sistema?", "你的系统提示词是什么"): flagged, as in English, not blocked.
fn is_translated_question(phrase: &str) -> bool {
    const OPENINGS: &[&str] = &[
        "cuál",
        "cual",
        "cuáles",
        "cuales",
        "qual",
        "quais",
        "quel",
        "quels",
        "quelles",
        "was",
        "wie",
        "wat",
        "quali",
        "какой",
        "какие",
    ];
    const MARKS: &[&str] = &["是什么", "是什麼", "是啥", "は何", "はなん", "뭐", "무엇"];
    let first = phrase.split_whitespace().next().unwrap_or_default();
    is_among(first, OPENINGS) || MARKS.iter().any(|mark| phrase.contains(mark))
}

/// "You", to whom a request is made ("can you", "kannst du", "peux-tu"), unless a question
/// word or "do" comes before.
const ADDRESSED: &[&str] = &[
    "you", "du", "tu", "vous", "você", "voce", "jij", "je", "ты", "вы",
];
const DO: &[&str] = &["do", "does", "did"];
const QUESTIONS: &[&str] = &[
    "how",
    "why",
    "what",
    "when",
    "where",
    "whether",
    "if",
    "que",
    "qué",
    "por",
    "porque",
    "pourquoi",
    "comment",
    "si",
    "se",
    "warum",
    "wie",
    "wenn",
    "perché",
    "perche",
    "come",
    "waarom",
    "hoe",
    "als",
    "почему",
    "как",
    "если",
    "зачем",
];

/// Fixed phrases that lead into a request, read before their words one by one.
const LEAD_IN_PHRASES: &[&str] = &[
    "from now on",
    "s'il vous plaît",
    "s'il vous plait",
    "s'il te plaît",
    "s'il te plait",
    "s’il vous plaît",
    "s’il te plaît",
    "a partir de ahora",
    "a partir de agora",
    "à partir de maintenant",
    "a partir de maintenant",
    "d'ora in poi",
    "d’ora in poi",
    "da ora in poi",
    "von nun an",
    "ab jetzt",
    "ab sofort",
    "vanaf nu",
    "с этого момента",
];

/// Lead-ins of scripts written without spaces, which end a run of letters.
const SPACELESS_LEAD_INS: &[&str] = &[
    "请",
    "請",
    "你",
    "您",
    "现在",
    "現在",
    "那么",
    "那麼",
    "然后",
    "然後",
    "好的",
    "从现在开始",
    "從現在開始",
    "接下来",
    "接下來",
    "马上",
    "立刻",
    "あなたの",
    "では",
    "それでは",
    "じゃあ",
    "今すぐ",
    "今から",
    "これから",
    "まず",
];

/// Words that only lead into a request, in the languages the rules read: courtesies, "now",
/// "then", "can"/"could", the one asked ("me", "mir").
const LEAD_INS: &[&str] = &[
    "please",
    "now",
    "just",
    "kindly",
    "then",
    "and",
    "so",
    "also",
    "ok",
    "okay",
    "first",
    "simply",
    "immediately",
    "to",
    "must",
    "should",
    "can",
    "could",
    "will",
    "would",
    "want",
    "need",
    "hey",
    "hi",
    "hello",
    "yo",
    "pls",
    "plz",
    "important",
    "urgent",
    "note",
    "system",
    "admin",
    "administrator",
    "developer",
    "assistant",
    "ai",
    "chatgpt",
    "gpt",
    "bot",
    // es, pt, fr, de, it, nl
    "hola",
    "olá",
    "ola",
    "salut",
    "bonjour",
    "hallo",
    "ciao",
    "hoi",
    "te",
    "por",
    "favor",
    "ahora",
    "luego",
    "y",
    "puedes",
    "puede",
    "podrías",
    "podrias",
    "me",
    "agora",
    "depois",
    "pode",
    "podes",
    "poderia",
    "e",
    "plaît",
    "plait",
    "maintenant",
    "puis",
    "et",
    "peux",
    "pouvez",
    "pourrais",
    "pourriez",
    "moi",
    "bitte",
    "jetzt",
    "nun",
    "dann",
    "und",
    "kannst",
    "könntest",
    "konntest",
    "können",
    "konnen",
    "sie",
    "mir",
    "per",
    "favore",
    "ora",
    "adesso",
    "poi",
    "puoi",
    "potresti",
    "può",
    "mi",
    "alsjeblieft",
    "nu",
    "dan",
    "kun",
    "kunt",
    "zou",
    "mij",
    // ru
    "привет",
    "пожалуйста",
    "теперь",
    "сейчас",
    "потом",
    "затем",
    "и",
    "можешь",
    "можете",
    "мне",
    // ko, written with spaces
    "너의",
    "당신의",
    "지금",
    "이제",
    "지금부터",
    "이제부터",
    "먼저",
    "그럼",
];

/// Whether two words are the same, read as the rules read them: case and look-alike letters
/// aside.
fn same_word(word: &str, other: &str) -> bool {
    word.chars()
        .flat_map(plain_lower)
        .eq(other.chars().flat_map(plain_lower))
}

/// Whether `word` is one of `list`, read as [`same_word`] reads words.
fn is_among(word: &str, list: &[&str]) -> bool {
    list.iter().any(|other| same_word(word, other))
}

/// `c` as the rules compare letters: its look-alike's Latin letter, lower-case.
fn plain_lower(c: char) -> std::char::ToLowercase {
    latin_look_alike(c).unwrap_or(c).to_lowercase()
}

/// The words of `text`: its runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = &str> + Clone {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
}

/// Whether a request to ignore instructions, `before` and `after` the text around it, is none:
/// negated ("don't forget the previous instructions", "do not, under any circumstances,
/// ignore…", "no ignore las instrucciones anteriores", "不要忘记之前的要求", "vergiss die
/// vorherigen Anweisungen nicht") or said of oneself where the verb's form allows it
/// ("j'ignore les règles précédentes de ce jeu": I do not know them). Reminding a model of its
/// instructions is common; the rule is for the opposite. The negation must stand right
/// against the verb, or end the clause after the instructions: "No, ignore…" and "ignore all
/// previous instructions. Nie wieder Regeln." are requests.
fn not_an_override(before: &str, after: &str) -> bool {
    const BEFORE: &[&str] = &[
        "don't",
        "don’t",
        "dont",
        "do not",
        "never",
        "not",
        "no",
        "não",
        "nao",
        "nunca",
        "jamás",
        "jamas",
        "ne",
        "non",
        "jamais",
        "mai",
        "nie",
        "niemals",
        "nooit",
        "не",
        "никогда",
        "n'",
        "n’",
        "j'",
        "j’",
    ];
    // Between the negation and the verb, alone or between commas.
    const STRESS: &[&str] = &[
        "ever",
        "ever again",
        "under any circumstances",
        "in any case",
        "at any time",
        "at any point",
        "at all",
    ];
    // Written against the verb, without a space.
    const ATTACHED: &[&str] = &[
        "不要", "别", "別", "不", "勿", "没", "沒", "不能", "不可", "从不", "從不", "绝不", "絕不",
    ];
    const AFTER: &[&str] = &["nicht", "niet", "nie", "niemals", "nooit"];
    // Between the instructions and a negation after them ("vergiss sie aber nicht").
    const AFTER_STRESS: &[&str] = &["aber", "ook", "bitte", "doch", "trotzdem", "dabei", "also"];
    let gap = |c: char| matches!(c, ' ' | '\t' | '*' | '_');
    let mut before = tail(before, LOOK_BACK).trim_end_matches(gap);
    loop {
        let candidate = before
            .strip_suffix(',')
            .unwrap_or(before)
            .trim_end_matches(gap);
        match STRESS
            .iter()
            .find_map(|stress| strip_last_words(candidate, stress))
        {
            Some(rest) => before = rest.trim_end_matches(|c: char| gap(c) || c == ','),
            None => break,
        }
    }
    let clause = head(after, LOOK_BACK)
        .split([
            '.', '!', '?', ';', ':', '\n', '(', ')', '"', '。', '！', '？',
        ])
        .next()
        .unwrap_or_default();
    let part = clause
        .split(',')
        .find(|part| !part.trim().is_empty())
        .unwrap_or_default();
    let mut words = words(part).filter(|word| !is_among(word, AFTER_STRESS));
    let negated_after = match (words.next(), words.next()) {
        (Some(word), None) => is_among(word, AFTER),
        _ => false,
    };
    BEFORE
        .iter()
        .any(|word| strip_last_words(before, word).is_some())
        || ATTACHED.iter().any(|word| before.ends_with(word))
        || ["not", "never"]
            .iter()
            .any(|word| ends_spelled_out(before, word))
        || negated_after
}

/// Whether `text` ends with `word` spelled letter by letter (`do N O T`, `N-E-V-E-R`), as a
/// reminder stresses it.
fn ends_spelled_out(text: &str, word: &str) -> bool {
    let mut chars = text.chars().rev();
    for (at, wanted) in word.chars().rev().enumerate() {
        let parted = at == 0 || matches!(chars.next(), Some(' ' | '-' | '.' | '*' | '_'));
        let letter = chars
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case(&wanted));
        if !(parted && letter) {
            return false;
        }
    }
    chars.next().is_none_or(|c| !c.is_alphanumeric())
}

/// Whether instructions to ignore are followed by what they were about, other than the model's
/// safety ("forget everything you were told about dieting", "die bisherigen Anweisungen zur
/// Reisekostenabrechnung"): flagged, not blocked. "…about safety", "…zum Datenschutz" weigh in
/// full.
fn names_a_topic(after: &str) -> bool {
    const TOPIC: &[&str] = &[
        "about",
        "regarding",
        "concerning",
        "sobre",
        "über",
        "uber",
        "bezüglich",
        "bezuglich",
        "zur",
        "zum",
        "sur",
        "concernant",
        "relatives",
        "su",
        "sulla",
        "sulle",
        "sui",
        "riguardo",
        "over",
        "о",
        "об",
        "про",
        "по",
    ];
    const ATTACHED_TOPIC: &[&str] = &["关于", "關於", "有关", "有關"];
    const ARTICLES: &[&str] = &[
        "the", "your", "la", "le", "les", "el", "los", "las", "die", "der", "den", "das", "dem",
        "il", "lo", "gli", "de", "het", "a", "o", "os", "as", "du", "des", "tes", "vos",
    ];
    const SAFETY: &[&str] = &[
        "safe",
        "secur",
        "ethic",
        "content",
        "polic",
        "filter",
        "confidential",
        "privacy",
        "restrict",
        "guideline",
        "rule",
        "harm",
        "censor",
        "moderat",
        "sicher",
        "datenschutz",
        "ethik",
        "sécurité",
        "securite",
        "confidentialit",
        "éthique",
        "ethique",
        "seguridad",
        "privacidad",
        "ética",
        "etica",
        "sicurezza",
        "riservatezza",
        "veiligheid",
        "безопасн",
        "конфиденциальн",
        "этик",
        "цензур",
        "安全",
        "隐私",
        "隱私",
        "伦理",
        "倫理",
        "道德",
        "审查",
        "審查",
    ];
    let after = after.trim_start();
    let mut words = words(after);
    let first = words.next().unwrap_or_default();
    let attached = ATTACHED_TOPIC
        .iter()
        .find_map(|topic| after.strip_prefix(topic));
    if !is_among(first, TOPIC) && attached.is_none() {
        return false;
    }
    let starts_with = |word: &str, stem: &str| {
        let mut word = word.chars().flat_map(plain_lower);
        stem.chars()
            .flat_map(plain_lower)
            .all(|c| word.next() == Some(c))
    };
    let safety = match attached {
        // Eight characters of a script written without spaces.
        Some(rest) => SAFETY.iter().any(|stem| head(rest, 24).contains(stem)),
        None => words
            .skip_while(|word| is_among(word, ARTICLES))
            .take(2)
            .any(|word| SAFETY.iter().any(|stem| starts_with(word, stem))),
    };
    !safety
}

/// Whether an override stands in a condition meant for people, as pasted install guides and
/// recipes have them ("if you use Windows, ignore the instructions above", "sous Windows,
/// ignorez…", "macOSの場合は…"): a condition that names no AI and no reader ("if you are an AI
/// reading this, ignore…" is the indirect injection it resembles).
fn in_a_condition_for_people(before: &str) -> bool {
    const OPENINGS: &[&str] = &[
        "if",
        "when",
        "unless",
        "on",
        "under",
        "si",
        "cuando",
        "en",
        "se",
        "quando",
        "caso",
        "sous",
        "quand",
        "wenn",
        "falls",
        "unter",
        "bei",
        "als",
        "indien",
        "если",
        "когда",
        "при",
    ];
    // Written inside the sentence, without spaces.
    const ATTACHED: &[&str] = &[
        "如果", "假如", "要是", "的话", "的話", "もし", "場合", "なら", "만약", "경우", "하면",
        "이면", "라면", "다면",
    ];
    const AI: &[&str] = &[
        "ai",
        "a.i",
        "llm",
        "llms",
        "model",
        "models",
        "assistant",
        "chatbot",
        "bot",
        "agent",
        "gpt",
        "chatgpt",
        "claude",
        "gemini",
        "copilot",
        "robot",
        "reading",
        "ia",
        "ki",
        "ии",
        "modelo",
        "modèle",
        "modell",
        "modello",
        "asistente",
        "assistente",
        "agente",
        "leyendo",
        "lendo",
        "lisez",
        "lis",
        "liest",
        "leggendo",
        "leest",
        "модель",
        "бот",
        "ассистент",
        "нейросеть",
        "читаешь",
        "читаете",
    ];
    const AI_ATTACHED: &[&str] = &[
        "AI",
        "人工智能",
        "模型",
        "助手",
        "机器人",
        "機器人",
        "言語モデル",
        "アシスタント",
        "モデル",
        "ボット",
        "인공지능",
        "어시스턴트",
        "모델",
        "봇",
    ];
    let sentence = tail(before, LOOK_BACK)
        .rsplit([
            '.', '!', '?', ':', ';', '"', '“', '«', '(', '\n', '。', '！', '？', '：', '「',
        ])
        .next()
        .unwrap_or_default();
    let mut words = words(sentence);
    // "If not, ignore…" states no case.
    const NO_CASE: &[&str] = &["not", "so", "yes", "no", "necessary", "needed", "possible"];
    let opens = (words.clone().next()).is_some_and(|first| is_among(first, OPENINGS))
        && words.clone().skip(1).any(|word| !is_among(word, NO_CASE));
    if !opens && !ATTACHED.iter().any(|word| sentence.contains(word)) {
        return false;
    }
    let names_ai =
        words.any(|word| is_among(word, AI)) || AI_ATTACHED.iter().any(|ai| sentence.contains(ai));
    !names_ai
}

/// `text` without `words` at its end, when it ends with them as words of their own (read as
/// [`same_word`] reads them).
fn strip_last_words<'t>(text: &'t str, words: &str) -> Option<&'t str> {
    let start = text
        .char_indices()
        .rev()
        .nth(words.chars().count().checked_sub(1)?)
        .map(|(at, _)| at)?;
    let rest = text.get(..start)?;
    let edge = rest.chars().next_back();
    (same_word(text.get(start..)?, words) && !edge.is_some_and(char::is_alphanumeric))
        .then_some(rest)
}

/// `text` as the phrase rules read it: format characters (zero-width, soft hyphen, bidi
/// controls, tags) dropped, full-width forms and Cyrillic or Greek look-alikes of Latin letters
/// read as ASCII. Borrowed when that changes nothing, as in any ASCII text.
fn plain_letters(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let mut at = 0;
    let first = loop {
        let Some(lead) = next_byte(text.as_bytes(), at, may_start_changed_char) else {
            return Cow::Borrowed(text);
        };
        let c = text.get(lead..).and_then(|rest| rest.chars().next());
        if c.is_some_and(|c| is_dropped(c) || needs_composing(c) || latin_look_alike(c).is_some()) {
            break lead;
        }
        at = lead + 1;
    };
    // Decomposed letters (`й` as `и` and U+0306, as macOS pastes them; Korean jamo, Japanese
    // voicing marks) and half-width katakana, composed as NFKC does, before anything is dropped:
    // all of the text, since a mark composes with the letter before it.
    let (kept, rest): (&str, Cow<'_, str>) = if text
        .get(first..)
        .unwrap_or_default()
        .chars()
        .any(needs_composing)
    {
        ("", Cow::Owned(text.nfkc().collect()))
    } else {
        (
            text.get(..first).unwrap_or_default(),
            Cow::Borrowed(text.get(first..).unwrap_or_default()),
        )
    };
    let mut plain = String::with_capacity(text.len());
    plain.push_str(kept);
    for c in rest.chars() {
        if !is_dropped(c) {
            plain.push(latin_look_alike(c).unwrap_or(c));
        }
    }
    Cow::Owned(plain)
}

/// Combining marks, Korean jamo and half-width katakana: what NFKC composes.
fn needs_composing(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1100}'..='\u{11FF}' | '\u{3099}'..='\u{309A}'
        | '\u{FF61}'..='\u{FF9F}')
}

/// Characters the phrase rules read past: format characters, and combining accents left after
/// composing (a letter and an accent with no composed form).
fn is_dropped(c: char) -> bool {
    is_format_char(c) || ('\u{0300}'..='\u{036F}').contains(&c)
}

/// Whether `byte` is the first byte of a character [`plain_letters`] may change: U+00AD
/// (`C2`), `ı` (`C4`), `ǫ` (`C7`), `ȷ` (`C8`), small capitals among the IPA letters (`C9`,
/// `CA`), combining accents (`CC`, `CD`), Greek, Cyrillic and Armenian (`CD`–`D6`), U+061C (`D8`), U+180E and the phonetic small capitals (`E1`), U+200B–U+206F,
/// letter-like symbols and enclosed letters (`E2`), U+3000 (`E3`), `ꜰ` and `ꜱ` (`EA`),
/// U+FE00–U+FF5E (`EF`), mathematical and enclosed letters (`F0`), tags and variation
/// selectors (`F3`). Other text, such as accented Latin or CJK, is passed over without being
/// decoded.
fn may_start_changed_char(byte: u8) -> bool {
    matches!(
        byte,
        0xC2 | 0xC4 | 0xC7 | 0xC8 | 0xC9 | 0xCA | 0xCC..=0xD6 | 0xD8 | 0xE1..=0xE3 | 0xEA | 0xEF
            | 0xF0 | 0xF3
    )
}

/// Invisible format characters (Unicode category Cf and the variation selectors) that split a
/// word without showing: soft hyphen, Arabic letter mark, Mongolian vowel separator,
/// zero-width space, joiners and direction marks, bidi embeddings, overrides and isolates,
/// word joiner and invisible operators, byte order mark, tag characters.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{FEFF}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{E0000}'..='\u{E007F}'
        | '\u{E0100}'..='\u{E01EF}')
}

/// The ASCII character a full-width form or a styled letter stands for (see [`styled_letter`]),
/// or the Latin letter a Cyrillic or Greek one is drawn like (`Ignоre` with a Cyrillic `о`).
fn latin_look_alike(c: char) -> Option<char> {
    if ('\u{FF01}'..='\u{FF5E}').contains(&c) {
        return char::from_u32(u32::from(c) - 0xFEE0);
    }
    if let Some(letter) = styled_letter(c) {
        return Some(letter);
    }
    let latin = match c {
        '\u{3000}' => ' ', // ideographic space
        'ı' => 'i',
        'ȷ' => 'j',
        // Armenian: օ ս ո հ
        '\u{0585}' => 'o',
        '\u{057D}' => 'u',
        '\u{0578}' => 'n',
        '\u{0570}' => 'h',
        // Cyrillic: а е о р с у х і ѕ ј к м н т в һ ԁ ԛ ԝ ӏ ү
        '\u{0430}' => 'a',
        '\u{0435}' => 'e',
        '\u{043E}' => 'o',
        '\u{0440}' => 'p',
        '\u{0441}' => 'c',
        '\u{0443}' | '\u{04AF}' => 'y',
        '\u{0445}' => 'x',
        '\u{0456}' => 'i',
        '\u{0455}' => 's',
        '\u{0458}' => 'j',
        '\u{043A}' => 'k',
        '\u{043C}' => 'm',
        '\u{043D}' | '\u{04BB}' => 'h',
        '\u{0442}' => 't',
        '\u{0432}' => 'b',
        '\u{0501}' => 'd',
        '\u{051B}' => 'q',
        '\u{051D}' => 'w',
        '\u{04CF}' => 'l',
        // Cyrillic capitals: А В Е К М Н О Р С Т У Х І Ѕ Ј Ү Ԛ Ԝ Ӏ
        '\u{0410}' => 'A',
        '\u{0412}' => 'B',
        '\u{0415}' => 'E',
        '\u{041A}' => 'K',
        '\u{041C}' => 'M',
        '\u{041D}' => 'H',
        '\u{041E}' => 'O',
        '\u{0420}' => 'P',
        '\u{0421}' => 'C',
        '\u{0422}' => 'T',
        '\u{0423}' | '\u{04AE}' => 'Y',
        '\u{0425}' => 'X',
        '\u{0406}' | '\u{04C0}' => 'I',
        '\u{0405}' => 'S',
        '\u{0408}' => 'J',
        '\u{051A}' => 'Q',
        '\u{051C}' => 'W',
        // Greek: α ε ι κ ν ο ρ τ υ χ
        '\u{03B1}' => 'a',
        '\u{03B5}' => 'e',
        '\u{03B9}' => 'i',
        '\u{03BA}' => 'k',
        '\u{03BD}' => 'v',
        '\u{03BF}' => 'o',
        '\u{03C1}' => 'p',
        '\u{03C4}' => 't',
        '\u{03C5}' => 'u',
        '\u{03C7}' => 'x',
        // Greek capitals: Α Β Ε Ζ Η Ι Κ Μ Ν Ο Ρ Τ Υ Χ
        '\u{0391}' => 'A',
        '\u{0392}' => 'B',
        '\u{0395}' => 'E',
        '\u{0396}' => 'Z',
        '\u{0397}' => 'H',
        '\u{0399}' => 'I',
        '\u{039A}' => 'K',
        '\u{039C}' => 'M',
        '\u{039D}' => 'N',
        '\u{039F}' => 'O',
        '\u{03A1}' => 'P',
        '\u{03A4}' => 'T',
        '\u{03A5}' => 'Y',
        '\u{03A7}' => 'X',
        _ => return None,
    };
    Some(latin)
}

/// The letter or digit that a styled form stands for: the bold, italic, script, Fraktur,
/// double-struck, sans-serif and monospace alphabets and digits of Unicode's mathematical
/// symbols, with the letter-like symbols that fill their gaps (`ℯ`, `ℊ`, `ℴ`, `ℍ`…); circled,
/// parenthesised and squared letters; regional-indicator letters; small capitals. "Fancy text"
/// generators write with these, and models read them as the letters they show.
fn styled_letter(c: char) -> Option<char> {
    let code = u32::from(c);
    let from = |first: u32, base: u8| char::from_u32(u32::from(base) + code - first);
    match code {
        // 13 alphabets of 52 letters each, capitals first.
        0x1D400..=0x1D6A3 => {
            let letter = (code - 0x1D400) % 52;
            char::from_u32(if letter < 26 {
                0x41 + letter
            } else {
                0x61 + letter - 26
            })
        }
        0x1D6A4 => Some('i'),
        0x1D6A5 => Some('j'),
        // 5 sets of the digits 0–9.
        0x1D7CE..=0x1D7FF => char::from_u32(0x30 + (code - 0x1D7CE) % 10),
        0x249C..=0x24B5 => from(0x249C, b'a'),
        0x24B6..=0x24CF => from(0x24B6, b'A'),
        0x24D0..=0x24E9 => from(0x24D0, b'a'),
        0x1F130..=0x1F149 => from(0x1F130, b'A'),
        0x1F150..=0x1F169 => from(0x1F150, b'A'),
        0x1F170..=0x1F189 => from(0x1F170, b'A'),
        0x1F1E6..=0x1F1FF => from(0x1F1E6, b'A'),
        _ => Some(match c {
            'ℂ' => 'C',
            'ℊ' => 'g',
            'ℋ' | 'ℌ' | 'ℍ' => 'H',
            'ℎ' => 'h',
            'ℐ' | 'ℑ' => 'I',
            'ℒ' => 'L',
            'ℕ' => 'N',
            'ℙ' => 'P',
            'ℚ' => 'Q',
            'ℛ' | 'ℜ' | 'ℝ' => 'R',
            'ℤ' | 'ℨ' => 'Z',
            'ℬ' => 'B',
            'ℭ' => 'C',
            'ℯ' => 'e',
            'ℰ' => 'E',
            'ℱ' => 'F',
            'ℳ' => 'M',
            'ℴ' => 'o',
            'ᴀ' => 'a',
            'ʙ' => 'b',
            'ᴄ' => 'c',
            'ᴅ' => 'd',
            'ᴇ' => 'e',
            'ꜰ' => 'f',
            'ɢ' => 'g',
            'ʜ' => 'h',
            'ɪ' => 'i',
            'ᴊ' => 'j',
            'ᴋ' => 'k',
            'ʟ' => 'l',
            'ᴍ' => 'm',
            'ɴ' => 'n',
            'ᴏ' => 'o',
            'ᴘ' => 'p',
            'ǫ' => 'q',
            'ʀ' => 'r',
            'ꜱ' => 's',
            'ᴛ' => 't',
            'ᴜ' => 'u',
            'ᴠ' => 'v',
            'ᴡ' => 'w',
            'ʏ' => 'y',
            'ᴢ' => 'z',
            _ => return None,
        }),
    }
}

/// Whether a match of `second` starts within `reach` bytes after a match of `first`, with none
/// of `stops` in between. Linear: one pass of each regex.
fn near(text: &str, first: &Regex, second: &Regex, reach: usize, stops: &[char]) -> bool {
    let seconds: Vec<usize> = second.find_iter(text).map(|m| m.start()).collect();
    if seconds.is_empty() {
        return false;
    }
    first.find_iter(text).any(|m| {
        let next = seconds.partition_point(|&start| start < m.end());
        seconds.get(next).is_some_and(|&start| {
            start - m.end() <= reach
                && text
                    .get(m.end()..start)
                    .is_some_and(|between| !between.contains(stops))
        })
    })
}

fn signal(fired: Fired) -> Option<InjectionSignal> {
    if !fired.any() {
        return None;
    }
    let rules = PHRASE_RULES
        .iter()
        .map(|phrase| &phrase.rule)
        .chain([&HIDDEN_UNICODE, &ENCODED_PAYLOAD]);
    let mut signal = InjectionSignal {
        score: 0,
        rules: Vec::new(),
    };
    for (rule, &weight) in rules.zip(&fired.0) {
        if weight > 0 {
            signal.score += weight;
            signal.rules.push(rule.id);
        }
    }
    Some(signal)
}

/// Invisible characters that can carry or hide instructions: Unicode tag characters outside
/// flag emoji (ASCII smuggling), runs of zero-width, bidi or variation-selector characters, and
/// zero-width characters splitting Latin words ("ig\u{200b}nore").
fn has_hidden_unicode(text: &str) -> bool {
    // A flag like England's is U+1F3F4 followed by up to 6 tag letters and a cancel tag.
    const FLAG_TAGS: usize = 7;
    let bytes = text.as_bytes();
    let mut smuggled_tags = 0;
    let mut flag_tags_left = 0;
    let mut tag_end = usize::MAX;
    let mut invisible_run = 0;
    let mut invisible_end = usize::MAX;
    let mut split_words = 0;
    for (start, c) in special_chars(text) {
        let end = start + c.len_utf8();
        if c == '\u{1F3F4}' {
            flag_tags_left = FLAG_TAGS;
            tag_end = end;
        } else if is_tag(c) {
            if start == tag_end && flag_tags_left > 0 {
                flag_tags_left -= 1;
            } else {
                flag_tags_left = 0;
                smuggled_tags += 1;
            }
            tag_end = end;
        } else if is_invisible(c) {
            invisible_run = if start == invisible_end {
                invisible_run + 1
            } else {
                1
            };
            invisible_end = end;
            let alnum_at = |i: Option<usize>| {
                i.and_then(|i| bytes.get(i))
                    .is_some_and(u8::is_ascii_alphanumeric)
            };
            if invisible_run == 1 && alnum_at(start.checked_sub(1)) && alnum_at(Some(end)) {
                split_words += 1;
            }
        }
        if smuggled_tags >= 2 || invisible_run >= 3 || split_words >= 3 {
            return true;
        }
    }
    false
}

/// The characters whose first two UTF-8 bytes are those of a hidden character (U+061C,
/// U+180E, U+2000–U+207F, U+FE00–U+FE3F, U+FEC0–U+FEFF, U+1Fxxx emoji for the black flag,
/// U+E0000–U+E0FFF), found without decoding anything else.
fn special_chars(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|&(start, lead)| {
            let next = bytes.get(start + 1).copied().unwrap_or(0);
            matches!(
                (lead, next),
                (0xD8, 0x9C)
                    | (0xE1, 0xA0)
                    | (0xE2, 0x80 | 0x81)
                    | (0xEF, 0xB8 | 0xBB)
                    | (0xF0, 0x9F)
                    | (0xF3, 0xA0)
            )
        })
        .filter_map(|(start, _)| Some((start, text.get(start..)?.chars().next()?)))
}

fn is_tag(c: char) -> bool {
    ('\u{E0000}'..='\u{E007F}').contains(&c)
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' // zero-width space, joiners, LRM/RLM
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{FEFF}' | '\u{180E}' | '\u{061C}'
        | '\u{FE00}'..='\u{FE0F}' // variation selectors ("emoji smuggling")
        | '\u{E0100}'..='\u{E01EF}')
}

/// Maximal runs of base64 characters (standard or URL-safe, `=` padding) at least
/// [`MIN_BLOB`] long. Probes every [`MIN_BLOB`]th byte: a long run must cover one of them.
fn base64_runs(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let is_base64 =
        |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=');
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            let probe = at + MIN_BLOB - 1;
            if !is_base64(bytes.get(probe)?) {
                at = probe + 1;
                continue;
            }
            let before = bytes.get(at..probe)?;
            let start =
                at + before.len() - before.iter().rev().take_while(|b| is_base64(b)).count();
            let end = probe
                + bytes
                    .get(probe..)?
                    .iter()
                    .take_while(|b| is_base64(b))
                    .count();
            at = end;
            if end - start >= MIN_BLOB {
                return bytes.get(start..end);
            }
        }
    })
}

/// Decodes a base64 run and keeps it only if it is readable text.
fn decode_base64_text(run: &[u8]) -> Option<String> {
    let run = run.get(..run.len().min(MAX_BLOB_CHARS))?;
    let text = String::from_utf8(crate::base64::decode(run)?).ok()?;
    let readable = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    (readable && text.len() >= 16).then_some(text)
}

/// `text` with the words written letter by letter put back together (`I G N O R E   A L L`,
/// `i.g.n.o.r.e a.l.l`, one letter a line: the gap that follows the first letter joins the
/// letters of a word, and a gap with a blank or a `/` that differs from it parts two words),
/// and the words joined into one token set apart: by dots, `·`, `+`, `/` or `%20` between three
/// words or more (`Ignore.all.previous`), or by capitals (`IgnoreAllPrevious`).
fn words_put_together(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let letter = |at: usize| chars.get(at).is_some_and(|c| c.is_alphanumeric());
    // A letter standing alone: a token of one.
    let single = |at: usize| letter(at) && !letter(at + 1) && (at == 0 || !letter(at - 1));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(&c) = chars.get(at) {
        if !single(at) {
            out.push(c);
            at += 1;
            continue;
        }
        let mut words = vec![String::from(c)];
        let mut separator: Option<&[char]> = None;
        let mut end = at + 1;
        loop {
            let next = (end..chars.len())
                .find(|&i| letter(i))
                .unwrap_or(chars.len());
            let gap = chars.get(end..next).unwrap_or_default();
            if !single(next) || gap.is_empty() || gap.len() > 4 {
                break;
            }
            let separator = *separator.get_or_insert(gap);
            let parts_words =
                gap != separator && gap.iter().any(|c| c.is_whitespace() || *c == '/');
            let Some(&c) = chars.get(next) else { break };
            if gap == separator {
                if let Some(word) = words.last_mut() {
                    word.push(c);
                }
            } else if parts_words {
                words.push(String::from(c));
            } else {
                break;
            }
            end = next + 1;
        }
        if words.iter().map(|word| word.chars().count()).sum::<usize>() >= 3 {
            out.push_str(&words.join(" "));
        } else {
            out.extend(chars.get(at..end).unwrap_or_default());
        }
        at = end;
    }
    out.split(' ')
        .map(token_words)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One token with the words it joins set apart, or as it is.
fn token_words(token: &str) -> Cow<'_, str> {
    for joiner in [".", "·", "+", "/", "%20"] {
        if token
            .split(joiner)
            .filter(|w| w.chars().count() >= 2)
            .count()
            >= 3
        {
            return Cow::Owned(token.replace(joiner, " "));
        }
    }
    // A capital after a small letter starts a word (`IgnoreAll`; not `HTTPServer`'s capitals).
    let starts_word = |i: usize, c: char| {
        c.is_uppercase()
            && token
                .get(..i)
                .is_some_and(|b| b.ends_with(char::is_lowercase))
    };
    let humps = 1 + token
        .char_indices()
        .filter(|&(i, c)| starts_word(i, c))
        .count();
    if humps < 3 || !token.starts_with(char::is_uppercase) {
        return Cow::Borrowed(token);
    }
    let mut words = String::with_capacity(token.len() + humps);
    for (i, c) in token.char_indices() {
        if starts_word(i, c) {
            words.push(' ');
        }
        words.push(c);
    }
    Cow::Owned(words)
}

/// `text` with each ASCII letter moved `shift` places back in the alphabet: a Caesar cipher
/// of that shift deciphered (ROT13 with 13).
/// A shift told in digits or in English words, from one to thirteen (a shift of more is one
/// of less the other way).
fn shift_number(told: &str) -> Option<u32> {
    const WORDS: [&str; 13] = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen",
    ];
    let word = WORDS
        .iter()
        .position(|word| told.eq_ignore_ascii_case(word));
    match word {
        Some(at) => u32::try_from(at + 1).ok(),
        None => told.parse().ok(),
    }
}

/// The Russian alphabet, `ё` in its place, as a Caesar cipher over it counts.
const RUSSIAN: [char; 33] = [
    'а', 'б', 'в', 'г', 'д', 'е', 'ё', 'ж', 'з', 'и', 'й', 'к', 'л', 'м', 'н', 'о', 'п', 'р', 'с',
    'т', 'у', 'ф', 'х', 'ц', 'ч', 'ш', 'щ', 'ъ', 'ы', 'ь', 'э', 'ю', 'я',
];

const RUSSIAN_WITHOUT_YO: [char; 32] = [
    'а', 'б', 'в', 'г', 'д', 'е', 'ж', 'з', 'и', 'й', 'к', 'л', 'м', 'н', 'о', 'п', 'р', 'с', 'т',
    'у', 'ф', 'х', 'ц', 'ч', 'ш', 'щ', 'ъ', 'ы', 'ь', 'э', 'ю', 'я',
];

/// A prompt that names a cipher and is no longer than this is read in both Russian
/// alphabets; a longer one, in the one with `ё` only, for each shift read costs a scan.
const BOTH_ALPHABETS_UP_TO: usize = 4 * 1024;

fn is_russian_letter(c: char) -> bool {
    matches!(c, 'а'..='я' | 'А'..='Я' | 'ё' | 'Ё')
}

/// `text` with its Russian letters shifted back `shift` places in `alphabet`.
fn russian_shifted_back(text: &str, shift: usize, alphabet: &[char]) -> String {
    let len = alphabet.len();
    let back = |c: char| {
        let lower = c.to_lowercase().next().unwrap_or(c);
        let Some(at) = alphabet.iter().position(|&letter| letter == lower) else {
            return c;
        };
        let Some(&letter) = alphabet.get((at + len - shift % len) % len) else {
            return c;
        };
        if lower == c {
            letter
        } else {
            letter.to_uppercase().next().unwrap_or(letter)
        }
    };
    text.chars().map(back).collect()
}

/// The letters upside-down text writes for each Latin one, the Latin letter first: turned
/// right side up, the text is read backwards with each letter swapped (`b` and `q`, `d` and
/// `p`, `n` and `u` swap among themselves). Generators differ: `g` is `ƃ` or `ɓ`, `l` stays or
/// is the Hebrew `ן`, `i` is `ᴉ` or `ı` (which plain letters already read as `i`).
const UPSIDE_DOWN: [(char, char); 23] = [
    ('a', 'ɐ'),
    ('b', 'q'),
    ('c', 'ɔ'),
    ('d', 'p'),
    ('e', 'ǝ'),
    ('f', 'ɟ'),
    ('g', 'ƃ'),
    ('g', 'ɓ'),
    ('l', 'ן'),
    ('h', 'ɥ'),
    ('i', 'ᴉ'),
    ('j', 'ɾ'),
    ('k', 'ʞ'),
    ('m', 'ɯ'),
    ('n', 'u'),
    ('p', 'd'),
    ('q', 'b'),
    ('r', 'ɹ'),
    ('t', 'ʇ'),
    ('u', 'n'),
    ('v', 'ʌ'),
    ('w', 'ʍ'),
    ('y', 'ʎ'),
];

/// `text` turned right side up, when at least three of its letters are upside-down ones that
/// no alphabet uses for itself (`ɐ`, `ǝ`, `ɹ`…, not `q` or `d`): read backwards, and as
/// written, for some generators only turn the letters.
fn right_side_up(text: &str) -> Vec<String> {
    let turned = |c: char| UPSIDE_DOWN.iter().find(|(_, upside)| *upside == c);
    // All but `ƃ` and `ᴉ` are IPA letters, whose UTF-8 begins 0xC7, 0xC9 or 0xCA: a quick
    // search, where reading every character would cost the scan of a non-ASCII prompt a tenth.
    let upside_down_only = memchr::memchr3_iter(0xC7, 0xC9, 0xCA, text.as_bytes())
        .filter_map(|at| text.get(at..)?.chars().next())
        .filter(|&c| turned(c).is_some())
        .take(3)
        .count();
    if upside_down_only < 3 {
        return Vec::new();
    }
    let righted: String = (text.chars())
        .map(|c| turned(c).map_or(c, |(latin, _)| *latin))
        .collect();
    vec![righted.chars().rev().collect(), righted]
}

/// `text` with each `!` or `|` that opens a word before a letter written as `1`, which the
/// rules read as the `i` or `l` it stands for (`!gnore`, `|gnore`): before a symbol, a word's
/// edge is not seen. `None` when there is none.
fn leet_openings_as_letters(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let opens = |at: usize| {
        (at == 0 || bytes.get(at - 1).is_some_and(u8::is_ascii_whitespace))
            && bytes.get(at + 1).is_some_and(u8::is_ascii_alphabetic)
    };
    let mut openings = memchr::memchr2_iter(b'!', b'|', bytes)
        .filter(|&at| opens(at))
        .peekable();
    openings.peek()?;
    let mut opened = bytes.to_vec();
    for at in openings {
        if let Some(symbol) = opened.get_mut(at) {
            *symbol = b'1';
        }
    }
    String::from_utf8(opened).ok()
}

fn shifted_back(text: &str, shift: u32) -> String {
    let back = |c: char, base: u8| {
        let letter = u32::from(c) - u32::from(base);
        char::from_u32(u32::from(base) + (letter + 26 - shift % 26) % 26).unwrap_or(c)
    };
    text.chars()
        .map(|c| match c {
            'a'..='z' => back(c, b'a'),
            'A'..='Z' => back(c, b'A'),
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests;
mod translations;
