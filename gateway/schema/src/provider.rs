//! Upstream providers and the models they serve.

use serde::{Deserialize, Serialize};

use aurora_core::{RecordError, RecordId};

use crate::checks::*;
use crate::limits::*;

/// The upstream protocol a provider speaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// `/chat/completions` of OpenAI and the many servers that copy it (vLLM,
    /// Ollama, Groq, ...). Also read as `openai`, the name the YAML catalog has always
    /// used (serde aliases only matter to self-describing formats: postcard encodes
    /// the variant index, JSON output still says `open_ai_compatible`).
    #[serde(alias = "openai")]
    OpenAiCompatible,
    /// Anthropic's Messages API, translated both ways by the gateway.
    Anthropic,
    /// The gateway's built-in deterministic mock; it needs no URL or key.
    Mock,
}

/// An upstream endpoint. The record id is the provider's name (the `openai` of
/// `openai/gpt-4o-mini`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub kind: ProviderKind,
    /// `http(s)://host[:port][/path][?query]`; required unless `kind` is `mock`, for
    /// which it may be empty.
    pub base_url: String,
    /// The NAME of the environment variable that holds the upstream key on each
    /// node. The key itself is never replicated.
    pub api_key_env: Option<String>,
    /// Per attempt, 1 to 600,000 ms.
    pub timeout_ms: u32,
    /// Retries per target on 429/5xx/timeouts, at most 10.
    pub max_retries: u8,
    /// How long a failing target is skipped, at most one day; 0 disables cooldown.
    pub cooldown_ms: u32,
}

impl Provider {
    pub fn validate(&self) -> Result<(), RecordError> {
        if !(self.kind == ProviderKind::Mock && self.base_url.is_empty()) {
            check_url(&self.base_url).map_err(|r| invalid("base_url", r))?;
        }
        if let Some(env) = &self.api_key_env {
            check_env_name(env).map_err(|r| invalid("api_key_env", r))?;
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(invalid("timeout_ms", "must be 1 to 600000"));
        }
        if self.max_retries > MAX_RETRIES {
            return Err(invalid("max_retries", "at most 10"));
        }
        if self.cooldown_ms > MAX_COOLDOWN_MS {
            return Err(invalid("cooldown_ms", "at most 86400000 (one day)"));
        }
        Ok(())
    }
}

/// A model clients can name. The record id is its public name (by convention
/// `provider/model`); aliases share the same namespace as model and route names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub provider_id: RecordId,
    /// The id sent upstream (`gpt-4o-mini`, `claude-sonnet-4-5`): 1 to 1024 bytes,
    /// no whitespace or control characters.
    pub upstream_model: String,
    /// Other public names: at most 256, id alphabet, no duplicates, not the model's
    /// own name.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Tokens; at least 1 when known.
    pub context_window: Option<u32>,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Model {
    pub fn validate(&self) -> Result<(), RecordError> {
        self.provider_id
            .validate()
            .map_err(|e| invalid("provider_id", e.reason()))?;
        check_max_str(&self.upstream_model).map_err(|r| invalid("upstream_model", r))?;
        if self.upstream_model.is_empty() {
            return Err(invalid("upstream_model", "must not be empty"));
        }
        if self
            .upstream_model
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "upstream_model",
                "must not contain whitespace or control characters",
            ));
        }
        check_id_list(
            "aliases",
            self.aliases.iter().map(String::as_str),
            MAX_VEC,
            "at most 256 aliases",
        )?;
        if self.context_window == Some(0) {
            return Err(invalid("context_window", "must be at least 1"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
