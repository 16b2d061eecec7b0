//! Guardrails and the workflows that bind them.

use serde::{Deserialize, Serialize};

use aurora_core::{RecordError, RecordId};

use crate::checks::*;
use crate::limits::*;

/// What a guardrail checks. Each kind must do something: a deny list has at least
/// one pattern, a redaction at least one category, an allow list at least one model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GuardrailKind {
    /// Refuse a request whose input contains any of the substrings (1 to 256
    /// patterns, each 1 to 1024 bytes). Plain substrings, not regexes: matching
    /// stays linear and a pattern cannot be a ReDoS.
    DenyPatterns {
        patterns: Vec<String>,
        /// Compare after lowercasing both sides.
        #[serde(default)]
        case_insensitive: bool,
    },
    /// Refuse a request whose input is longer than `max` characters (at least 1).
    MaxInputChars { max: u32 },
    /// Rewrite matches of the chosen categories in requests before they go upstream.
    Redact {
        emails: bool,
        phone_numbers: bool,
        /// Strings that look like API keys or tokens.
        secrets: bool,
    },
    /// Refuse any model not in the list (1 to 256 public names, no duplicates).
    AllowedModels { models: Vec<String> },
}

impl GuardrailKind {
    /// Checks the parameters; paths start with `kind.` and the variant's serde name.
    pub fn validate(&self) -> Result<(), RecordError> {
        match self {
            GuardrailKind::DenyPatterns { patterns, .. } => {
                const F: &str = "kind.deny_patterns.patterns";
                if patterns.is_empty() {
                    return Err(invalid(F, "must have at least one pattern"));
                }
                if patterns.len() > MAX_VEC {
                    return Err(invalid(F, "at most 256 patterns"));
                }
                for (i, p) in patterns.iter().enumerate() {
                    if p.is_empty() {
                        return Err(invalid(format!("{F}[{i}]"), "must not be empty"));
                    }
                    check_max_str(p).map_err(|r| invalid(format!("{F}[{i}]"), r))?;
                }
            }
            GuardrailKind::MaxInputChars { max } => {
                if *max == 0 {
                    return Err(invalid("kind.max_input_chars.max", "must be at least 1"));
                }
            }
            GuardrailKind::Redact {
                emails,
                phone_numbers,
                secrets,
            } => {
                if !(*emails || *phone_numbers || *secrets) {
                    return Err(invalid(
                        "kind.redact",
                        "must enable at least one of emails, phone_numbers, secrets",
                    ));
                }
            }
            GuardrailKind::AllowedModels { models } => {
                const F: &str = "kind.allowed_models.models";
                if models.is_empty() {
                    return Err(invalid(F, "must list at least one model"));
                }
                check_id_list(
                    F,
                    models.iter().map(String::as_str),
                    MAX_VEC,
                    "at most 256 models",
                )?;
            }
        }
        Ok(())
    }
}

/// A check applied to requests. The record id is its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrail {
    pub kind: GuardrailKind,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Guardrail {
    pub fn validate(&self) -> Result<(), RecordError> {
        self.kind.validate()
    }
}

/// How a workflow picks among a route's targets.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingPolicy {
    /// At random, in proportion to the weights.
    Weighted,
    /// In the listed order; the next target only when the previous one failed.
    Ordered,
    /// The target with the fewest requests in flight on this node.
    LeastBusy,
}

/// What an auth key's requests go through: guardrails in order, then routing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// 1 to 1024 bytes, no control characters.
    pub name: String,
    /// Applied in this order: at most 32, no duplicates.
    #[serde(default)]
    pub guardrails: Vec<RecordId>,
    pub routing: RoutingPolicy,
}

impl Workflow {
    pub fn validate(&self) -> Result<(), RecordError> {
        check_name(&self.name).map_err(|r| invalid("name", r))?;
        check_id_list(
            "guardrails",
            self.guardrails.iter().map(RecordId::as_str),
            MAX_WORKFLOW_GUARDRAILS,
            "at most 32 guardrails",
        )
    }
}

// ---------------------------------------------------------------------------------
