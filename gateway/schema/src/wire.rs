//! The serde forms of [`Record`]: how a record gains a field without breaking the
//! bytes already stored or sent.
//!
//! postcard encodes a struct's fields by position with no field defaults, so a field
//! appended to a record cannot be read from bytes written before it (and inside an
//! `aurora_core::state::store::Entry` the next field's bytes would be misread). So:
//!
//! - **Binary (postcard)**: each record keeps its original layout under its original
//!   variant index. A record that *uses* a newer field (holds a non-empty value in
//!   it) is written under an appended variant with the full new layout. A record
//!   that does not use it is byte for byte what an older build wrote, so old stored
//!   entries decode, old peers keep reading such records, and digests do not move.
//!   Only records that use the new field are unreadable to an older build (it drops
//!   the message as malformed and counts it), which is why operators upgrade every
//!   node before setting a new field (docs/operations.md).
//! - **Human-readable (JSON, YAML)**: the plain shape with snake_case variant names
//!   (`{"auth_key": {...}}`); new fields carry `#[serde(default)]`.
//!
//! Appended variants so far: index 8, `AuthKeyV2` — [`AuthKey`] with
//! `max_parallel_requests`; index 9, `BudgetV2` — [`Budget`] with `on_partition`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use aurora_core::RecordId;

use crate::auth::AuthKey;
use crate::billing::{Budget, Pricing};
use crate::guardrail::{Guardrail, Workflow};
use crate::provider::{Model, Provider};
use crate::record::Record;
use crate::route::Route;

/// [`AuthKey`] as first defined (before `max_parallel_requests`), borrowed for writing.
#[derive(Serialize)]
struct AuthKeyV1Ref<'a> {
    name: &'a String,
    secret_hash: &'a String,
    key_prefix: &'a String,
    allowed_models: &'a Vec<String>,
    budget_id: &'a Option<RecordId>,
    workflow_id: &'a Option<RecordId>,
    rpm_limit: &'a Option<u32>,
    tpm_limit: &'a Option<u32>,
    expires_at_ms: &'a Option<u64>,
    disabled: &'a bool,
    metadata: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a AuthKey> for AuthKeyV1Ref<'a> {
    fn from(k: &'a AuthKey) -> Self {
        Self {
            name: &k.name,
            secret_hash: &k.secret_hash,
            key_prefix: &k.key_prefix,
            allowed_models: &k.allowed_models,
            budget_id: &k.budget_id,
            workflow_id: &k.workflow_id,
            rpm_limit: &k.rpm_limit,
            tpm_limit: &k.tpm_limit,
            expires_at_ms: &k.expires_at_ms,
            disabled: &k.disabled,
            metadata: &k.metadata,
        }
    }
}

/// [`AuthKey`] as first defined, for reading.
#[derive(Deserialize)]
struct AuthKeyV1 {
    name: String,
    secret_hash: String,
    key_prefix: String,
    allowed_models: Vec<String>,
    budget_id: Option<RecordId>,
    workflow_id: Option<RecordId>,
    rpm_limit: Option<u32>,
    tpm_limit: Option<u32>,
    expires_at_ms: Option<u64>,
    disabled: bool,
    metadata: BTreeMap<String, String>,
}

impl From<AuthKeyV1> for AuthKey {
    fn from(k: AuthKeyV1) -> Self {
        AuthKey {
            name: k.name,
            secret_hash: k.secret_hash,
            key_prefix: k.key_prefix,
            allowed_models: k.allowed_models,
            budget_id: k.budget_id,
            workflow_id: k.workflow_id,
            rpm_limit: k.rpm_limit,
            tpm_limit: k.tpm_limit,
            expires_at_ms: k.expires_at_ms,
            disabled: k.disabled,
            metadata: k.metadata,
            max_parallel_requests: None,
        }
    }
}

/// [`Budget`] as first defined (before `on_partition`), borrowed for writing.
#[derive(Serialize)]
struct BudgetV1Ref<'a> {
    name: &'a String,
    limit: &'a Option<crate::money::Money>,
    max_requests: &'a Option<u64>,
    period: &'a crate::calendar::BudgetPeriod,
}

impl<'a> From<&'a Budget> for BudgetV1Ref<'a> {
    fn from(b: &'a Budget) -> Self {
        Self {
            name: &b.name,
            limit: &b.limit,
            max_requests: &b.max_requests,
            period: &b.period,
        }
    }
}

/// [`Budget`] as first defined, for reading.
#[derive(Deserialize)]
struct BudgetV1 {
    name: String,
    limit: Option<crate::money::Money>,
    max_requests: Option<u64>,
    period: crate::calendar::BudgetPeriod,
}

impl From<BudgetV1> for Budget {
    fn from(b: BudgetV1) -> Self {
        Budget {
            name: b.name,
            limit: b.limit,
            max_requests: b.max_requests,
            period: b.period,
            on_partition: Default::default(),
        }
    }
}

/// [`Budget`] with `on_partition`, as written under `BudgetV2`: every field, in
/// order.
#[derive(Serialize)]
struct BudgetV2Ref<'a> {
    name: &'a String,
    limit: &'a Option<crate::money::Money>,
    max_requests: &'a Option<u64>,
    period: &'a crate::calendar::BudgetPeriod,
    on_partition: &'a aurora_core::quota::OnPartition,
}

/// [`BudgetV2Ref`], read.
#[derive(Deserialize)]
struct BudgetV2 {
    name: String,
    limit: Option<crate::money::Money>,
    max_requests: Option<u64>,
    period: crate::calendar::BudgetPeriod,
    on_partition: aurora_core::quota::OnPartition,
}

impl From<BudgetV2> for Budget {
    fn from(b: BudgetV2) -> Self {
        Budget {
            name: b.name,
            limit: b.limit,
            max_requests: b.max_requests,
            period: b.period,
            on_partition: b.on_partition,
        }
    }
}

/// The binary form, written. Variant order is the postcard index: append only.
#[derive(Serialize)]
#[serde(rename = "Record")]
enum BinaryOut<'a> {
    AuthKey(AuthKeyV1Ref<'a>),
    Provider(&'a Provider),
    Model(&'a Model),
    Route(&'a Route),
    Guardrail(&'a Guardrail),
    Workflow(&'a Workflow),
    Pricing(&'a Pricing),
    Budget(BudgetV1Ref<'a>),
    AuthKeyV2(&'a AuthKey),
    BudgetV2(BudgetV2Ref<'a>),
}

/// The binary form, read.
#[derive(Deserialize)]
#[serde(rename = "Record")]
enum BinaryIn {
    AuthKey(AuthKeyV1),
    Provider(Provider),
    Model(Model),
    Route(Route),
    Guardrail(Guardrail),
    Workflow(Workflow),
    Pricing(Pricing),
    Budget(BudgetV1),
    AuthKeyV2(AuthKey),
    BudgetV2(BudgetV2),
}

/// The human-readable form, written.
#[derive(Serialize)]
#[serde(rename = "Record", rename_all = "snake_case")]
enum TextOut<'a> {
    AuthKey(&'a AuthKey),
    Provider(&'a Provider),
    Model(&'a Model),
    Route(&'a Route),
    Guardrail(&'a Guardrail),
    Workflow(&'a Workflow),
    Pricing(&'a Pricing),
    Budget(&'a Budget),
}

/// The human-readable form, read.
#[derive(Deserialize)]
#[serde(rename = "Record", rename_all = "snake_case")]
enum TextIn {
    AuthKey(AuthKey),
    Provider(Provider),
    Model(Model),
    Route(Route),
    Guardrail(Guardrail),
    Workflow(Workflow),
    Pricing(Pricing),
    Budget(Budget),
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            let text = match self {
                Record::AuthKey(r) => TextOut::AuthKey(r),
                Record::Provider(r) => TextOut::Provider(r),
                Record::Model(r) => TextOut::Model(r),
                Record::Route(r) => TextOut::Route(r),
                Record::Guardrail(r) => TextOut::Guardrail(r),
                Record::Workflow(r) => TextOut::Workflow(r),
                Record::Pricing(r) => TextOut::Pricing(r),
                Record::Budget(r) => TextOut::Budget(r),
            };
            return text.serialize(serializer);
        }
        let binary = match self {
            Record::AuthKey(r) if r.max_parallel_requests.is_some() => BinaryOut::AuthKeyV2(r),
            Record::AuthKey(r) => BinaryOut::AuthKey(r.into()),
            Record::Provider(r) => BinaryOut::Provider(r),
            Record::Model(r) => BinaryOut::Model(r),
            Record::Route(r) => BinaryOut::Route(r),
            Record::Guardrail(r) => BinaryOut::Guardrail(r),
            Record::Workflow(r) => BinaryOut::Workflow(r),
            Record::Pricing(r) => BinaryOut::Pricing(r),
            Record::Budget(r) if r.on_partition != Default::default() => {
                BinaryOut::BudgetV2(BudgetV2Ref {
                    name: &r.name,
                    limit: &r.limit,
                    max_requests: &r.max_requests,
                    period: &r.period,
                    on_partition: &r.on_partition,
                })
            }
            Record::Budget(r) => BinaryOut::Budget(r.into()),
        };
        binary.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            return Ok(match TextIn::deserialize(deserializer)? {
                TextIn::AuthKey(r) => Record::AuthKey(r),
                TextIn::Provider(r) => Record::Provider(r),
                TextIn::Model(r) => Record::Model(r),
                TextIn::Route(r) => Record::Route(r),
                TextIn::Guardrail(r) => Record::Guardrail(r),
                TextIn::Workflow(r) => Record::Workflow(r),
                TextIn::Pricing(r) => Record::Pricing(r),
                TextIn::Budget(r) => Record::Budget(r),
            });
        }
        Ok(match BinaryIn::deserialize(deserializer)? {
            BinaryIn::AuthKey(r) => Record::AuthKey(r.into()),
            BinaryIn::AuthKeyV2(r) => Record::AuthKey(r),
            BinaryIn::Provider(r) => Record::Provider(r),
            BinaryIn::Model(r) => Record::Model(r),
            BinaryIn::Route(r) => Record::Route(r),
            BinaryIn::Guardrail(r) => Record::Guardrail(r),
            BinaryIn::Workflow(r) => Record::Workflow(r),
            BinaryIn::Pricing(r) => Record::Pricing(r),
            BinaryIn::Budget(r) => Record::Budget(r.into()),
            BinaryIn::BudgetV2(r) => Record::Budget(r.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(max_parallel_requests: Option<u32>) -> AuthKey {
        AuthKey {
            name: "k".into(),
            secret_hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            key_prefix: "sk-aur".into(),
            allowed_models: vec!["m".into()],
            budget_id: Some(RecordId::new("b").expect("id")),
            workflow_id: None,
            rpm_limit: Some(5),
            tpm_limit: None,
            expires_at_ms: Some(7),
            disabled: false,
            metadata: BTreeMap::from([("team".into(), "x".into())]),
            max_parallel_requests,
        }
    }

    /// The original derive of the auth-key record, as older builds wrote it.
    #[derive(Serialize)]
    enum OldRecord {
        AuthKey(OldKey),
    }

    #[derive(Serialize)]
    struct OldKey {
        name: String,
        secret_hash: String,
        key_prefix: String,
        allowed_models: Vec<String>,
        budget_id: Option<RecordId>,
        workflow_id: Option<RecordId>,
        rpm_limit: Option<u32>,
        tpm_limit: Option<u32>,
        expires_at_ms: Option<u64>,
        disabled: bool,
        metadata: BTreeMap<String, String>,
    }

    fn old_bytes() -> Vec<u8> {
        let k = key(None);
        postcard::to_allocvec(&OldRecord::AuthKey(OldKey {
            name: k.name,
            secret_hash: k.secret_hash,
            key_prefix: k.key_prefix,
            allowed_models: k.allowed_models,
            budget_id: k.budget_id,
            workflow_id: k.workflow_id,
            rpm_limit: k.rpm_limit,
            tpm_limit: k.tpm_limit,
            expires_at_ms: k.expires_at_ms,
            disabled: k.disabled,
            metadata: k.metadata,
        }))
        .expect("encode")
    }

    #[test]
    fn a_key_stored_by_an_older_build_still_decodes() {
        let record: Record = postcard::from_bytes(&old_bytes()).expect("old bytes decode");
        assert_eq!(record, Record::AuthKey(key(None)));
    }

    #[test]
    fn a_key_without_the_new_field_is_written_as_before() {
        let bytes = postcard::to_allocvec(&Record::AuthKey(key(None))).expect("encode");
        assert_eq!(bytes, old_bytes());
    }

    #[test]
    fn a_key_with_the_new_field_round_trips_under_the_appended_variant() {
        let record = Record::AuthKey(key(Some(2)));
        let bytes = postcard::to_allocvec(&record).expect("encode");
        assert_eq!(bytes[0], 8, "variant AuthKeyV2");
        assert_eq!(
            postcard::from_bytes::<Record>(&bytes).expect("decode"),
            record
        );
        // JSON keeps the plain shape, and the field may be left out.
        let json = serde_json::to_value(&record).expect("json");
        assert_eq!(json["auth_key"]["max_parallel_requests"], 2);
        let mut without = json.clone();
        if let Some(k) = without["auth_key"].as_object_mut() {
            k.remove("max_parallel_requests");
        }
        assert_eq!(
            serde_json::from_value::<Record>(without).expect("json decode"),
            Record::AuthKey(key(None))
        );
    }

    fn budget(on_partition: aurora_core::quota::OnPartition) -> Budget {
        Budget {
            name: "b".into(),
            limit: Some(crate::money::Money::from_nanos(5)),
            max_requests: Some(100),
            period: crate::calendar::BudgetPeriod::Daily,
            on_partition,
        }
    }

    /// The original derive of the budget record, as older builds wrote it (index 7).
    #[derive(Serialize)]
    enum OldBudgetRecord {
        _A,
        _B,
        _C,
        _D,
        _E,
        _F,
        _G,
        Budget(OldBudget),
    }

    #[derive(Serialize)]
    struct OldBudget {
        name: String,
        limit: Option<crate::money::Money>,
        max_requests: Option<u64>,
        period: crate::calendar::BudgetPeriod,
    }

    #[test]
    fn a_budget_keeps_its_old_bytes_and_gains_on_partition_under_the_appended_variant() {
        use aurora_core::quota::OnPartition;
        let old = postcard::to_allocvec(&OldBudgetRecord::Budget(OldBudget {
            name: "b".into(),
            limit: Some(crate::money::Money::from_nanos(5)),
            max_requests: Some(100),
            period: crate::calendar::BudgetPeriod::Daily,
        }))
        .expect("encode");
        let plain = Record::Budget(budget(OnPartition::SpendLeased));
        assert_eq!(postcard::to_allocvec(&plain).expect("encode"), old);
        assert_eq!(postcard::from_bytes::<Record>(&old).expect("decode"), plain);
        let closed = Record::Budget(budget(OnPartition::FailClosed));
        let bytes = postcard::to_allocvec(&closed).expect("encode");
        assert_eq!(bytes[0], 9, "variant BudgetV2");
        assert_eq!(
            postcard::from_bytes::<Record>(&bytes).expect("decode"),
            closed
        );
        let json = serde_json::to_value(&closed).expect("json");
        assert_eq!(json["budget"]["on_partition"], "fail_closed");
        // Left out, it is the default.
        let mut json = serde_json::to_value(&plain).expect("json");
        assert_eq!(json["budget"]["on_partition"], "spend_leased");
        if let Some(b) = json["budget"].as_object_mut() {
            b.remove("on_partition");
        }
        assert_eq!(
            serde_json::from_value::<Record>(json).expect("decode"),
            plain
        );
    }
}
