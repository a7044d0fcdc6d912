//! What an outbound message's `extra.whatsapp` asks for instead of text and media.

use crate::inbound::lax::{Json, Lax, Obj, Str};
use clawbridge_core::{ChannelData, OutboundMessage};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// A message other than text and media, carried in `extra` as
/// `{"whatsapp": {"template": {name, language, params: {k: v}}}}`,
/// `{"whatsapp": {"reaction": {message_id, emoji}}}` or `{"whatsapp": {"type": T, T: {...}}}`.
#[derive(Clone, Debug, PartialEq)]
pub enum OutboundSpec {
    /// A template (the only message allowed outside the 24-hour window).
    Template {
        /// The template's name.
        name: String,
        /// Its language code (`en_US` when not given).
        language: String,
        /// Body parameters by name (an empty name is positional), in name order.
        params: Vec<(String, String)>,
    },
    /// A reaction to a message (the one replied to when no id is given).
    Reaction {
        /// The message reacted to.
        message_id: Option<String>,
        /// The emoji; empty removes the reaction.
        emoji: String,
    },
    /// Any other message type with its object, sent as given.
    Message {
        /// The WhatsApp message type.
        kind: String,
        /// Its object.
        object: Value,
    },
    /// A `whatsapp` object with none of the above (refused when sent).
    Nothing,
}

/// The `extra` of an outbound message, as far as the spec goes.
#[derive(Default, Deserialize)]
#[serde(default)]
struct OutboundExtra {
    whatsapp: Obj<BTreeMap<String, Box<RawValue>>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TemplateFields<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    language: Str<'a>,
    #[serde(borrow)]
    params: Obj<BTreeMap<String, Json<'a>>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ReactionFields<'a> {
    #[serde(borrow)]
    message_id: Str<'a>,
    #[serde(borrow)]
    emoji: Str<'a>,
}

impl OutboundSpec {
    /// The spec in `msg.extra`, if it has a `whatsapp` object. Fields of unexpected types count as
    /// absent; a template is checked first, then a reaction, then a type.
    pub fn of(msg: &OutboundMessage) -> Option<Self> {
        let extra: OutboundExtra = msg.extra.decode().ok().flatten()?;
        let spec = extra.whatsapp.0?;
        if let Some(raw) = spec.get("template") {
            let fields: Lax<TemplateFields<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
            let fields = fields.0;
            return Some(Self::Template {
                name: fields.name.get().unwrap_or_default().to_owned(),
                language: fields.language.get().unwrap_or("en_US").to_owned(),
                params: fields.params.0.unwrap_or_default().into_iter().map(|(k, v)| (k, v.text())).collect(),
            });
        }
        if let Some(raw) = spec.get("reaction") {
            let fields: Lax<ReactionFields<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
            return Some(Self::Reaction {
                message_id: fields.0.message_id.get().map(str::to_owned),
                emoji: fields.0.emoji.get().unwrap_or_default().to_owned(),
            });
        }
        let kind = spec.get("type").and_then(|raw| serde_json::from_str::<Str<'_>>(raw.get()).ok());
        Some(match kind.as_ref().and_then(Str::get) {
            Some(kind) => {
                let object = spec.get(kind).and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or_default();
                Self::Message { kind: kind.to_owned(), object }
            }
            None => Self::Nothing,
        })
    }

    /// This spec as an outbound message's `extra`.
    pub fn to_extra(&self) -> ChannelData {
        // Strings, maps and JSON values only: encoding cannot fail.
        ChannelData::encode(self).unwrap_or_default()
    }
}

impl Serialize for OutboundSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Spec<'a>(&'a OutboundSpec);
        impl Serialize for Spec<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                match self.0 {
                    OutboundSpec::Template { name, language, params } => {
                        #[derive(Serialize)]
                        struct Template<'a> {
                            name: &'a str,
                            language: &'a str,
                            params: BTreeMap<&'a str, &'a str>,
                        }
                        let params = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                        map.serialize_entry("template", &Template { name, language, params })?;
                    }
                    OutboundSpec::Reaction { message_id, emoji } => {
                        #[derive(Serialize)]
                        struct Reaction<'a> {
                            #[serde(skip_serializing_if = "Option::is_none")]
                            message_id: Option<&'a str>,
                            emoji: &'a str,
                        }
                        map.serialize_entry("reaction", &Reaction { message_id: message_id.as_deref(), emoji })?;
                    }
                    OutboundSpec::Message { kind, object } => {
                        map.serialize_entry("type", kind)?;
                        map.serialize_entry(kind, object)?;
                    }
                    OutboundSpec::Nothing => {}
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("whatsapp", &Spec(self))?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(extra: Value) -> Option<OutboundSpec> {
        let mut msg =
            OutboundMessage::reply_text(&clawbridge_core::InboundMessage::text("whatsapp", "a", "1", "m", ""), "");
        msg.extra = extra.into();
        OutboundSpec::of(&msg)
    }

    #[test]
    fn reads_the_three_forms_leniently() {
        assert_eq!(
            spec(json!({"whatsapp":{"template":{"name":"reengage","params":{"b":"x","a":2,"":"first"}}}})),
            Some(OutboundSpec::Template {
                name: "reengage".into(),
                language: "en_US".into(),
                params: vec![("".into(), "first".into()), ("a".into(), "2".into()), ("b".into(), "x".into())],
            })
        );
        assert_eq!(
            spec(json!({"whatsapp":{"template":null,"reaction":{}}})),
            Some(OutboundSpec::Template { name: String::new(), language: "en_US".into(), params: vec![] }),
            "a template key wins whatever its value"
        );
        assert_eq!(
            spec(json!({"whatsapp":{"reaction":{"emoji":"👍","message_id":7}}})),
            Some(OutboundSpec::Reaction { message_id: None, emoji: "👍".into() })
        );
        assert_eq!(
            spec(json!({"whatsapp":{"type":"location","location":{"latitude":1.5}}})),
            Some(OutboundSpec::Message { kind: "location".into(), object: json!({"latitude":1.5}) })
        );
        assert_eq!(spec(json!({"whatsapp":{"type":5}})), Some(OutboundSpec::Nothing));
        assert_eq!(spec(json!({"whatsapp":"template"})), None);
        assert_eq!(spec(json!({"phone":"1"})), None);
        assert_eq!(spec(json!("text")), None);
        assert_eq!(spec(Value::Null), None);
    }

    #[test]
    fn a_written_spec_reads_back() {
        for written in [
            OutboundSpec::Template {
                name: "t".into(),
                language: "de".into(),
                params: vec![("n".into(), "Ann".into())],
            },
            OutboundSpec::Reaction { message_id: Some("wamid.1".into()), emoji: "🎉".into() },
            OutboundSpec::Reaction { message_id: None, emoji: String::new() },
            OutboundSpec::Message { kind: "sticker".into(), object: json!({"id":"S"}) },
        ] {
            let mut msg =
                OutboundMessage::reply_text(&clawbridge_core::InboundMessage::text("whatsapp", "a", "1", "m", ""), "");
            msg.extra = written.to_extra();
            assert_eq!(OutboundSpec::of(&msg), Some(written));
        }
    }
}
