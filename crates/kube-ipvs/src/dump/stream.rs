//! Streaming decode of dump documents (YAML or JSON): a document's `items` are visited one by one
//! and each is converted to its typed object at once, so memory follows the typed objects, not a
//! tree of values of the whole file (which took 2 GB for 97,000 Services).
//!
//! serde_saphyr's multi-document API deserializes a `Deserialize` type per document, not a seed,
//! so the document visitor reaches the dump it fills through a thread-local sink, installed for
//! the duration of one parse by [`collect`].

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{ClusterDump, LIST_KINDS};

/// The dump of the parse running on this thread, and the origin named in its reports.
struct Sink {
    dump: ClusterDump,
    origin: String,
}

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

fn with_sink(f: impl FnOnce(&mut Sink)) {
    SINK.with_borrow_mut(|s| {
        if let Some(s) = s.as_mut() {
            f(s);
        }
    });
}

/// Runs `parse` with a fresh sink; the objects it collected, or its error (and nothing).
fn collect(
    origin: &str,
    parse: impl FnOnce() -> Result<(), String>,
) -> Result<ClusterDump, String> {
    let outer = SINK.replace(Some(Sink {
        dump: ClusterDump::default(),
        origin: origin.to_owned(),
    }));
    let res = parse();
    let sink = SINK.replace(outer);
    res.map(|()| sink.map(|s| s.dump).unwrap_or_default())
}

/// Every JSON value of `text` (one, or several concatenated).
pub(super) fn json(text: &str, origin: &str) -> Result<ClusterDump, String> {
    collect(origin, || {
        for doc in serde_json::Deserializer::from_str(text).into_iter::<Doc>() {
            doc.map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// Every YAML document of `text`.
pub(super) fn yaml(text: &str, origin: &str) -> Result<ClusterDump, String> {
    collect(origin, || {
        serde_saphyr::from_str_multiple_with_options::<Doc, Docs>(text, yaml_options(text.len()))
            .map(|Docs| ())
            .map_err(|e| e.to_string())
    })
}

/// The YAML budget for `len` bytes of text. Without aliases a document cannot hold more nodes
/// than bytes (a node takes at least one character), nor more scalar bytes than it has, so
/// these limits grow with the input: a 50,000-Service dump with 200,000 endpoints (about
/// 12 million nodes in 90 MB) parses. Aliases stay bounded by serde_saphyr's defaults (50,000
/// aliases, 1,000,000 replayed events, and the alias/anchor ratio), and their expansion counts
/// against the same linear node limit, so an alias bomb ("billion laughs") stops after work
/// proportional to its size. The defaults remain the floor for small inputs.
pub fn yaml_options(len: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = budget.max_nodes.max(len);
    // Start and end events per collection, one per scalar, a few per document.
    budget.max_events = budget.max_events.max(len.saturating_mul(2));
    // `---\n{}\n` is the smallest document.
    budget.max_documents = budget.max_documents.max(len / 7);
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(len);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Collects nothing: the documents went to the sink.
#[derive(Default)]
struct Docs;

impl Extend<Doc> for Docs {
    fn extend<T: IntoIterator<Item = Doc>>(&mut self, iter: T) {
        iter.into_iter().for_each(drop);
    }
}

/// One document, delivered to the sink while it is parsed.
struct Doc;

impl<'de> de::Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocVisitor).map(|()| Doc)
    }
}

struct DocVisitor;

fn not_an_object(what: &str) {
    with_sink(|s| {
        s.dump.bad.push(super::BadObject {
            origin: s.origin.clone(),
            kind: String::new(),
            name: String::new(),
            message: format!("document is {what}, not an object"),
            object: None,
        });
    });
}

impl<'de> Visitor<'de> for DocVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object or List")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut fields = Map::new();
        let mut items: Option<Items> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" && items.is_none() {
                let item_kind = fields
                    .get("kind")
                    .and_then(Value::as_str)
                    .and_then(list_item_kind);
                items = Some(map.next_value_seed(ItemsSeed { item_kind })?);
            } else {
                let v: Value = map.next_value()?;
                fields.insert(key, v);
            }
        }
        with_sink(|s| finish(s, fields, items));
        Ok(())
    }

    /// A document that is a bare sequence of objects.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            with_sink(|s| s.dump.add_object(v, &s.origin, None));
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        not_an_object("a boolean");
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        not_an_object("a number");
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        not_an_object("a number");
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        not_an_object("a number");
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        not_an_object("a string");
        Ok(())
    }
}

/// The kind of a List's items (`ServiceList` -> `Service`; none for kubectl's `List`).
fn list_item_kind(kind: &str) -> Option<String> {
    LIST_KINDS
        .contains(&kind)
        .then(|| kind.strip_suffix("List"))
        .flatten()
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
}

/// What a document's `items` held.
enum Items {
    /// A sequence: its items with their own kind (or the List's, known before `items`) are
    /// converted; the others wait for the List's kind.
    Seq {
        converted: ClusterDump,
        kindless: Vec<Value>,
    },
    /// Not a sequence.
    Not(&'static str),
}

/// The document is complete: commit its List items, or add it as one object.
fn finish(s: &mut Sink, fields: Map<String, Value>, items: Option<Items>) {
    let kind = fields.get("kind").and_then(Value::as_str);
    let is_list = kind.is_some_and(|k| LIST_KINDS.contains(&k));
    match items {
        Some(Items::Seq {
            converted,
            kindless,
        }) if is_list => {
            s.dump.append(converted);
            let item_kind = kind.and_then(list_item_kind);
            for v in kindless {
                s.dump.add_object(v, &s.origin, item_kind.as_deref());
            }
        }
        Some(Items::Not(found)) if is_list => s.dump.bad.push(super::BadObject {
            origin: s.origin.clone(),
            kind: kind.unwrap_or_default().to_owned(),
            name: String::new(),
            message: format!("items: expected a sequence, found {found}"),
            object: None,
        }),
        // Not a List (no kind read has `items`, and a PodList or the like is ignored whole).
        _ => s.dump.add_object(Value::Object(fields), &s.origin, None),
    }
}

struct ItemsSeed {
    item_kind: Option<String>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Items;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Items, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Items;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
        let mut origin = String::new();
        with_sink(|s| origin.clone_from(&s.origin));
        let mut converted = ClusterDump::default();
        let mut kindless = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            if v.get("kind").is_some() || self.item_kind.is_some() {
                converted.add_object(v, &origin, self.item_kind.as_deref());
            } else {
                kindless.push(v);
            }
        }
        Ok(Items::Seq {
            converted,
            kindless,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Items::Not("a mapping"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Items, E> {
        Ok(Items::Seq {
            converted: ClusterDump::default(),
            kindless: Vec::new(),
        })
    }
    fn visit_none<E: de::Error>(self) -> Result<Items, E> {
        self.visit_unit()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Items, E> {
        Ok(Items::Not("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Items, E> {
        Ok(Items::Not("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Items, E> {
        Ok(Items::Not("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Items, E> {
        Ok(Items::Not("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Items, E> {
        Ok(Items::Not("a string"))
    }
}
