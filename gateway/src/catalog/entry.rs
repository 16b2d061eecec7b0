//! A YAML catalog entry: the record's `name` next to the record's own fields.
//!
//! The `gateway:` section lists providers, models and routes as flat maps
//! (`{name: openai, kind: openai, api_key_env: ...}`) that are aurora-schema records
//! plus their name. `#[serde(flatten)]` cannot read that shape: it does not combine
//! with `deny_unknown_fields`, and it buffers the map, which loses the line and column
//! of an error and the key path `serde_path_to_error` reports. So [`Entry`] reads the
//! map itself and hands every key but `name` straight to the record's derived
//! `Deserialize`, which keeps both: `gateway.providers[0].kind: unknown variant ...
//! at line 4 column 11`, and an unknown key is refused by the record's own
//! `deny_unknown_fields`.
//!
//! Some record fields may be left out of the YAML (the file predates the replicated
//! records, and its documented keys stay valid): a left-out field is given a
//! placeholder ([`YamlEntry::OPTIONAL`]) and listed in [`Entry::absent`], and the file
//! reader fills it in from the name or the node's settings (`catalog::file`).

use std::fmt;
use std::marker::PhantomData;

use aurora_schema::{Model, Provider, Route};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// What a left-out field holds until the file reader fills it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placeholder {
    /// An empty string.
    Empty,
    /// The number 0.
    Zero,
}

/// A record type that can be written as a YAML catalog entry.
pub trait YamlEntry {
    /// Fields the YAML may leave out, with their placeholder. The others are the
    /// record's own business (`Option` fields and `#[serde(default)]` ones may be
    /// left out anyway; anything else missing is serde's `missing field` error).
    const OPTIONAL: &'static [(&'static str, Placeholder)];
}

impl YamlEntry for Provider {
    /// `base_url`: the kind's default; `timeout_ms`, `max_retries`: the node's
    /// `gateway.upstream`; `cooldown_ms`: 0.
    const OPTIONAL: &'static [(&'static str, Placeholder)] = &[
        ("base_url", Placeholder::Empty),
        ("timeout_ms", Placeholder::Zero),
        ("max_retries", Placeholder::Zero),
        ("cooldown_ms", Placeholder::Zero),
    ];
}

impl YamlEntry for Model {
    /// Both from the `provider/model` name.
    const OPTIONAL: &'static [(&'static str, Placeholder)] = &[
        ("provider_id", Placeholder::Empty),
        ("upstream_model", Placeholder::Empty),
    ];
}

impl YamlEntry for Route {
    /// `retries`: 0.
    const OPTIONAL: &'static [(&'static str, Placeholder)] = &[("retries", Placeholder::Zero)];
}

/// One entry as read from the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<T> {
    /// The `name` key: the record id.
    pub name: String,
    /// The record, with placeholders in the fields of `absent`.
    pub record: T,
    /// The [`YamlEntry::OPTIONAL`] fields the entry left out.
    pub absent: Vec<&'static str>,
}

impl<'de, T> Deserialize<'de> for Entry<T>
where
    T: Deserialize<'de> + YamlEntry,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor(PhantomData))
    }
}

struct EntryVisitor<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for EntryVisitor<T>
where
    T: Deserialize<'de> + YamlEntry,
{
    type Value = Entry<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map with `name` and the record's fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry<T>, A::Error> {
        let mut fields = Fields {
            inner: map,
            inner_done: false,
            name: None,
            seen: Vec::new(),
            optional: T::OPTIONAL,
            next_optional: 0,
            pending: None,
        };
        let record = T::deserialize(AsMap(&mut fields))?;
        let name = fields
            .name
            .ok_or_else(|| de::Error::missing_field("name"))?;
        let absent = T::OPTIONAL
            .iter()
            .map(|&(field, _)| field)
            .filter(|field| !fields.seen.iter().any(|s| s == field))
            .collect();
        Ok(Entry {
            name,
            record,
            absent,
        })
    }
}

/// The entry's map without `name`, then the placeholders of the left-out optional
/// fields.
struct Fields<A> {
    inner: A,
    /// `inner` has no more keys.
    inner_done: bool,
    name: Option<String>,
    seen: Vec<String>,
    optional: &'static [(&'static str, Placeholder)],
    /// Index into `optional` once `inner` is exhausted.
    next_optional: usize,
    /// The placeholder whose key was just handed out.
    pending: Option<Placeholder>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Fields<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        // The key is read and handed to the record inside the inner map's own call,
        // so `serde_path_to_error` sees the key (an unknown one is reported at its
        // path) and the YAML deserializer can add its location. The seed stays in
        // `slot` until a record field takes it.
        let mut slot = Some(seed);
        while !self.inner_done {
            let key = KeySeed {
                slot: &mut slot,
                seen: &mut self.seen,
            };
            match self.inner.next_key_seed(key)? {
                None => self.inner_done = true,
                Some(Key::Field(value)) => return Ok(Some(value)),
                Some(Key::Name) => {
                    if self.name.is_some() {
                        return Err(de::Error::duplicate_field("name"));
                    }
                    self.name = Some(self.inner.next_value()?);
                }
            }
        }
        let Some(seed) = slot else {
            return Err(de::Error::custom("a map key was read twice"));
        };
        while let Some(&(field, placeholder)) = self.optional.get(self.next_optional) {
            self.next_optional += 1;
            if !self.seen.iter().any(|s| s == field) {
                self.pending = Some(placeholder);
                return seed.deserialize(field.into_deserializer()).map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.pending.take() {
            None => self.inner.next_value_seed(seed),
            Some(Placeholder::Empty) => seed.deserialize("".into_deserializer()),
            Some(Placeholder::Zero) => seed.deserialize(0u64.into_deserializer()),
        }
    }
}

enum Key<V> {
    /// The `name` key (the record's seed was not used).
    Name,
    /// A record field, as the record's seed read it.
    Field(V),
}

struct KeySeed<'a, K> {
    slot: &'a mut Option<K>,
    seen: &'a mut Vec<String>,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = Key<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for KeySeed<'_, K> {
    type Value = Key<K::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if key == "name" {
            return Ok(Key::Name);
        }
        let Some(seed) = self.slot.take() else {
            return Err(E::custom("a map key was read twice"));
        };
        self.seen.push(key.to_owned());
        seed.deserialize(key.into_deserializer()).map(Key::Field)
    }
}

/// [`Fields`] as a deserializer of a map, for the record's derived `Deserialize`.
struct AsMap<'a, A>(&'a mut Fields<A>);

impl<'de, A: MapAccess<'de>> Deserializer<'de> for AsMap<'_, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_map(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
