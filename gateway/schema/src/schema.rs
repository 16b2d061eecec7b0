//! Records to bytes and back, and [`GatewaySchema`]: the [`Schema`] a gateway node
//! is built with.
//!
//! A record's bytes are its postcard encoding (see [`crate::wire`]), exactly what
//! was stored inside an entry before the core became record-agnostic; the core
//! length-prefixes them.

use std::sync::Arc;

use aurora_core::Command;
use aurora_core::{CollectionId, RecordBytes, RecordError, RecordId, Schema};

use crate::record::{Collection, Record};

/// Bytes that are not a record of the collection they were filed under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// No record decodes from the bytes, or bytes are left over after one.
    #[error("the bytes of a record of {collection} do not decode as one")]
    Malformed { collection: CollectionId },
    /// A record of another collection (or of a collection this schema lacks).
    #[error("a record of `{found}` filed under {expected}")]
    WrongCollection {
        expected: CollectionId,
        found: Collection,
    },
}

/// The bytes of `record`, as the core replicates them.
pub fn encode(record: &Record) -> RecordBytes {
    // Encoding into a Vec fails only for types postcard cannot write (sequences of
    // unknown length, which no record holds): a bug here, never an empty record.
    RecordBytes::new(
        postcard::to_allocvec(record).expect("a record encodes into a Vec without error"),
    )
}

/// The record in `bytes`, filed under `collection`: the bytes must hold exactly one
/// record, of that collection. Shape only; [`Record::validate_with_id`] checks rules.
pub fn decode(collection: CollectionId, bytes: &[u8]) -> Result<Record, SchemaError> {
    let malformed = SchemaError::Malformed { collection };
    let (record, rest) =
        postcard::take_from_bytes::<Record>(bytes).map_err(|_| malformed.clone())?;
    if !rest.is_empty() {
        return Err(malformed);
    }
    if record.collection().id() != collection {
        return Err(SchemaError::WrongCollection {
            expected: collection,
            found: record.collection(),
        });
    }
    Ok(record)
}

/// The command that writes `record` under `id` in its collection.
pub fn put(id: RecordId, record: &Record) -> Command {
    Command::Put {
        collection: record.collection().id(),
        id,
        record: encode(record),
    }
}

/// The command that deletes record `id` of `collection`.
pub fn delete(collection: Collection, id: RecordId) -> Command {
    Command::Delete {
        collection: collection.id(),
        id,
    }
}

/// The gateway's collections as the core sees them: a record is well formed when it
/// decodes as one of its collection and passes [`Record::validate_with_id`]; budgets
/// own the usage counters, by [`crate::BudgetPeriod`].
#[derive(Debug, Default, Clone, Copy)]
pub struct GatewaySchema;

impl GatewaySchema {
    /// The schema as [`aurora_core::Node::new`] takes it.
    pub fn arc() -> Arc<dyn Schema> {
        Arc::new(GatewaySchema)
    }
}

impl Schema for GatewaySchema {
    fn validate(
        &self,
        collection: CollectionId,
        id: &RecordId,
        bytes: &[u8],
    ) -> Result<(), RecordError> {
        let record = decode(collection, bytes).map_err(|e| match e {
            SchemaError::Malformed { .. } => {
                RecordError::invalid("record", "does not decode as a record of its collection")
            }
            SchemaError::WrongCollection { .. } => {
                RecordError::invalid("record", "is a record of another collection")
            }
        })?;
        record.validate_with_id(id)
    }

    fn collection_name(&self, collection: CollectionId) -> Option<&'static str> {
        Collection::from_id(collection).map(Collection::name)
    }

    fn usage_owner(&self) -> Option<CollectionId> {
        Some(Collection::Budgets.id())
    }

    fn period_index(&self, bytes: &[u8], wall_ms: u64) -> Option<u64> {
        match decode(Collection::Budgets.id(), bytes).ok()? {
            Record::Budget(b) => Some(b.period.index(wall_ms)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Budget, BudgetPeriod, Money};

    fn budget(period: BudgetPeriod) -> Record {
        Record::Budget(Budget {
            name: "team a".into(),
            limit: Some(Money::ZERO),
            max_requests: None,
            period,
            on_partition: Default::default(),
        })
    }

    #[test]
    fn bytes_round_trip_and_are_read_whole() {
        let r = budget(BudgetPeriod::Daily);
        let bytes = encode(&r);
        let c = Collection::Budgets.id();
        assert_eq!(decode(c, bytes.as_slice()), Ok(r));
        let mut longer = bytes.as_slice().to_vec();
        longer.push(0);
        assert_eq!(
            decode(c, &longer),
            Err(SchemaError::Malformed { collection: c })
        );
        assert_eq!(
            decode(c, &bytes.as_slice()[..bytes.len() - 1]),
            Err(SchemaError::Malformed { collection: c })
        );
        assert_eq!(
            decode(Collection::Models.id(), bytes.as_slice()),
            Err(SchemaError::WrongCollection {
                expected: Collection::Models.id(),
                found: Collection::Budgets,
            })
        );
    }

    #[test]
    fn the_schema_refuses_what_the_store_must_not_merge() {
        let s = GatewaySchema;
        let id = RecordId::new("team-a").expect("id");
        let bytes = encode(&budget(BudgetPeriod::Hourly));
        let budgets = Collection::Budgets.id();
        assert_eq!(s.validate(budgets, &id, bytes.as_slice()), Ok(()));
        let e = s
            .validate(Collection::Models.id(), &id, bytes.as_slice())
            .expect_err("another collection's record");
        assert_eq!(e.field(), "record");
        let e = s
            .validate(budgets, &id, &[0xff, 0xff])
            .expect_err("garbage");
        assert_eq!(e.field(), "record");
        let unnamed = encode(&Record::Budget(Budget {
            name: String::new(),
            limit: None,
            max_requests: None,
            period: BudgetPeriod::Total,
            on_partition: Default::default(),
        }));
        let e = s
            .validate(budgets, &id, unnamed.as_slice())
            .expect_err("a rule broken");
        assert_eq!(e.field(), "name");
        assert!(s.validate(CollectionId(8), &id, bytes.as_slice()).is_err());
    }

    #[test]
    fn budgets_own_usage_by_their_period() {
        let s = GatewaySchema;
        assert_eq!(s.usage_owner(), Some(Collection::Budgets.id()));
        let hourly = encode(&budget(BudgetPeriod::Hourly));
        assert_eq!(
            s.period_index(hourly.as_slice(), 3 * 3_600_000 + 5),
            Some(3)
        );
        let model = encode(&Record::Model(crate::Model {
            provider_id: RecordId::new("p").expect("id"),
            upstream_model: "m".into(),
            aliases: Vec::new(),
            context_window: None,
            enabled: true,
        }));
        assert_eq!(s.period_index(model.as_slice(), 0), None);
        assert_eq!(s.collection_name(Collection::Pricing.id()), Some("pricing"));
        assert_eq!(s.collection_name(CollectionId(99)), None);
        for c in Collection::ALL {
            assert_eq!(Collection::from_id(c.id()), Some(c));
        }
    }
}
